public import Logging
import Foundation

/// Backs up one stack of a plan into one archive, as named steps (see `StackBackupSteps`): check the plan, open the
/// archive, dump, stop and copy, seal and verify, store, prune.
///
/// Never throws: the outcome (`StackOutcome`) says what happened and what was measured, also on failure.
public struct StackBackup: Sendable {
    public let docker: any DockerEngine
    public let storage: any StorageBackend
    public let compressor: any Compressor
    public let configuration: BackupConfiguration
    public let logger: Logger

    public init(
        docker: any DockerEngine,
        storage: any StorageBackend,
        compressor: any Compressor,
        configuration: BackupConfiguration,
        logger: Logger
    ) {
        self.docker = docker
        self.storage = storage
        self.compressor = compressor
        self.configuration = configuration
        self.logger = logger
    }

    /// Backs up `stack` and reports the outcome. On failure the steps' cleanups have run (partial archive removed,
    /// a verified but unstored archive kept as `.unsent`), and containers stopped for the copy run again.
    public func backup(_ stack: StackPlan) async -> StackOutcome {
        let started = ContinuousClock.now
        var log = logger
        log[metadataKey: "stack"] = "\(stack.name)"
        log.info("backing up stack \(stack.name) (\(stack.services.count) service(s))")
        let steps = StackBackupSteps(settings: self, stack: stack, logger: log)
        do {
            let stored = try await steps.run()
            let measures = steps.measures
            let duration = (ContinuousClock.now - started).seconds
            log.info("\("stack \(stack.name) done: \(stored.name), \(ByteCount(stored.sizeBytes)), ")\(String(format: "%.1f s, downtime %.1f s", duration, measures.downtime))")
            return StackOutcome(
                stack: stack.name, status: .succeeded, archive: stored.name, sizeBytes: stored.sizeBytes,
                durationSeconds: duration, downtimeSeconds: measures.downtime, bytesRead: measures.bytesRead,
                bytesWritten: measures.bytesWritten, containersStopped: measures.containersStopped,
                services: stack.services.count, warnings: stack.warnings, archivesInTarget: measures.archivesInTarget)
        } catch {
            let cause = error is CancellationError
                ? "stopped (SIGTERM/SIGINT) before it ended" : "\(error)"
            let message = cause + steps.unwind().joined()
            let measures = steps.measures
            log.error("stack \(stack.name) failed: \(message)")
            return StackOutcome(
                stack: stack.name, status: .failed, durationSeconds: (ContinuousClock.now - started).seconds,
                detail: message, downtimeSeconds: measures.downtime, bytesRead: measures.bytesRead,
                bytesWritten: measures.bytesWritten, containersStopped: measures.containersStopped,
                services: stack.services.count, warnings: stack.warnings)
        }
    }
}

/// What one stack's backup measured: for the summary, the state file and the metrics.
struct StackMeasures: Sendable {
    /// Seconds from the first stop to the last start of the stopped containers.
    var downtime = 0.0
    /// The archive's tar stream (dumps, directories, headers) before compression.
    var bytesRead: Int64 = 0
    /// The compressed archive.
    var bytesWritten: Int64 = 0
    var containersStopped = 0
    /// The stack's archives in this host's folder of the target after the store and the prune (nil: not counted).
    var archivesInTarget: Int?
}

/// A step failed with a message that already says what and where.
struct StackFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension Result {
    var failureDescription: String? {
        if case .failure(let error) = self { return "\(error)" }
        return nil
    }
}

extension Duration {
    /// The duration in seconds (fractions included).
    package var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
