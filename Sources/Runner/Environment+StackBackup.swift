import Foundation
import StackVaultCore

extension Environment {
    /// The backup of one stack as the environment configures it (`ZSTD_LEVEL`, `ZSTD_THREADS`, `MIN_FREE_SPACE`,
    /// `STOP_TIMEOUT`, `STACKVAULT_WORK_DIR`, `RETENTION_KEEP_*`, `TZ`, `AGE_*`); a non-nil argument wins over its
    /// variable. Archives go to this host's folder of the target (`STACKVAULT_HOST` or the Docker engine's name), so
    /// retention counts this host's archives only.
    func makeStackBackup(target: String?, level: Int? = nil, threads: Int? = nil, workDir: String? = nil)
        async throws -> StackBackup
    {
        let host = try await host()
        let settings = CompressionSettings(
            level: try EnvironmentValue.integer(level.map { _ in "--level" } ?? "ZSTD_LEVEL",
                                                level.map(String.init) ?? variables["ZSTD_LEVEL"],
                                                range: ZstdCompressor.levels),
            threads: try threads ?? EnvironmentValue.integer("ZSTD_THREADS", variables["ZSTD_THREADS"],
                                                             range: 0...Int.max, unit: "threads (0: all cores)") ?? 0)
        let compressor = try CompressorRegistry().compressor(named: "zstd", settings: settings)
        let minimumFree = try variables["MIN_FREE_SPACE"]
            .flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
            .map { try ByteSize.parse($0, variable: "MIN_FREE_SPACE") }
        let work = workDir ?? variables["STACKVAULT_WORK_DIR"]
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("stackvault")
        var configuration = BackupConfiguration(
            workDirectory: work, minimumFreeBytes: minimumFree ?? 1 << 30,
            stopTimeoutSeconds: try stopTimeoutSeconds(), hostName: host,
            retention: try RetentionPolicy.fromEnvironment(variables))
        configuration.recipients = try AgeConfiguration.fromEnvironment(variables).recipients
        return StackBackup(
            docker: docker, storage: try catalog(target).storage(forHost: host), compressor: compressor,
            configuration: configuration,
            logger: logger)
    }
}

extension Environment {
    /// `STOP_TIMEOUT`: seconds Docker gives a container to stop before it kills it; 30 when unset.
    func stopTimeoutSeconds() throws -> Int {
        try EnvironmentValue.integer("STOP_TIMEOUT", variables["STOP_TIMEOUT"], range: 0...3600, unit: "seconds") ?? 30
    }

    /// The keys that open encrypted archives (`AGE_IDENTITY_FILE`, `AGE_PASSPHRASE*`); empty when none is set.
    func ageIdentities() throws -> [any AgeIdentity] {
        try AgeConfiguration.fromEnvironment(variables).identities
    }
}
