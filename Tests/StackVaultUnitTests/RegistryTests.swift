import StackVaultCore
import StackVaultStorage
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// A strategy that exists only in this test: adding one is one type plus one entry in the list.
struct RedisSaveStrategy: BackupStrategy {
    let type = "redis-save"
    let labelKey = "backup.database.redis"
    let requirement = ContainerRequirement.running

    func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec] {
        [ComponentSpec(type: type, archivePath: "\(service)/redis/dump.rdb")]
    }

    func backup(_ component: ComponentSpec, container: ContainerDetails, context: BackupContext,
                into archive: any ArchiveSink) async throws -> ComponentRecord {
        try await archive.addFile(at: component.archivePath, mode: 0o600) { sink in
            _ = try await context.docker.exec(in: container.id, command: ["redis-cli", "--rdb", "-"],
                                              environment: [], stdout: sink, stderr: sink)
        }
    }
}

@Suite struct RegistryTests {
    @Test func builtinsAreRegisteredByLabelKey() throws {
        let registry = try BuiltinStrategies.registry()
        #expect(registry.strategy(forLabelKey: "backup.database.pg_dumpall")?.type == "pg_dumpall")
        #expect(registry.strategy(forLabelKey: "backup.database.mariadb-dump")?.type == "mariadb-dump")
        #expect(registry.strategy(forLabelKey: "backup.volume-path.data")?.type == "volume-path")
        #expect(registry.strategy(forLabelKey: "backup.volume-path.") == nil)
        #expect(registry.strategy(forLabelKey: "backup.database.redis") == nil)
    }

    @Test func aNewStrategyIsOneTypeAndOneLine() async throws {
        let registry = try StrategyRegistry(BuiltinStrategies.all + [RedisSaveStrategy()])
        let docker = FakeDockerEngine(containers: [
            .fake(name: "cache", labels: ["backup.enable": "true", "backup.database.redis": "true"]),
        ])
        docker.setExecResult(.init(stdout: "REDIS0011..."), for: "cache")
        let plan = try await Planner(docker: docker, strategies: registry).makePlan()
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.strategies.map(\.archivePath) == ["cache/redis/dump.rdb"])
        #expect(service.warnings.isEmpty)

        let sink = InMemoryArchiveSink()
        let strategy = try #require(registry.strategy(forType: "redis-save"))
        let container = try await docker.inspectContainer("cache")
        _ = try await strategy.backup(service.strategies[0], container: container,
                                      context: BackupContext(docker: docker, logger: .init(label: "t"), stack: "cache",
                                                             service: "cache"),
                                      into: sink)
        #expect(sink.files["cache/redis/dump.rdb"] == Array("REDIS0011...".utf8))
    }

    @Test func duplicateKeysAreRefused() throws {
        #expect(throws: StackVaultError.self) {
            try StrategyRegistry(BuiltinStrategies.all + [PgDumpAllStrategy()])
        }
        #expect(throws: StackVaultError.self) {
            try StorageRegistry(BuiltinStorageBackends.all + [LocalDirectoryBackend.factory])
        }
        #expect(throws: StackVaultError.self) {
            try CompressorRegistry([ZstdCompressor.self, ZstdCompressor.self])
        }
    }

    @Test func storageBackendsAreChosenByScheme() throws {
        let registry = try BuiltinStorageBackends.registry()
        let local = try registry.backend(for: "file:///var/backups", environment: [:])
        #expect(local.description == "file:///var/backups")
        #expect(local.capabilities.isLocalDirectory)
        let plain = try registry.backend(for: "/srv/b", environment: [:])
        #expect(plain.localDirectory == "/srv/b")
        let error = #expect(throws: StackVaultError.self) {
            try registry.backend(for: "ftp://user:hunter2@host/x", environment: [:])
        }
        #expect(error?.message.contains("ftp://") == true)
        #expect(error?.message.contains("hunter2") == false)
    }

    @Test func compressorsByName() throws {
        let registry = try CompressorRegistry()
        #expect(registry.names == ["zstd"])
        #expect(throws: StackVaultError.self) { try registry.compressor(named: "lz4", settings: .init()) }
    }
}
