import Foundation
import Logging
import StackVaultCore
import StackVaultTestKit
import Synchronization
import Testing

/// `DrillEngine`'s verdicts with the in-memory Docker fake and a dump strategy whose server "holds" what the test
/// says: the comparison of recorded and replayed contents, and the drill containers' lifecycle.
@Suite struct DrillEngineTests {
    /// A dump strategy whose replay does nothing and whose server reports `replayed`.
    struct FakeDump: DrillStrategy {
        let type = "fake-dump"
        let labelKey = "backup.database.fake-dump"
        let requirement = ContainerRequirement.running
        let replayed: DumpContents

        func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec] { [] }
        func backup(_ component: ComponentSpec, container: ContainerDetails, context: BackupContext,
                    into archive: any ArchiveSink) async throws -> ComponentRecord {
            throw StackVaultError(.invalidLabel, "not used")
        }
        func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
            "replay"
        }
        func restore(_ component: Manifest.ManifestComponent, into container: ContainerDetails,
                     context: RestoreContext) async throws {}
        func drillEnvironment(password: String) -> [String] { ["FAKE_PASSWORD=\(password)"] }
        func waitUntilReady(_ container: ContainerDetails, docker: any DockerEngine, timeout: Duration) async throws {}
        func replayedContents(of expected: DumpContents, in container: ContainerDetails, docker: any DockerEngine)
            async throws -> DumpContents { replayed }
    }

    struct NoSource: RestoreSource {
        func readFile(_ archivePath: String, into sink: any ByteSink) throws {}
        func writeTree(_ archivePath: String, as top: String, layout: TreeTarLayout, into sink: any ByteSink) throws {}
    }

    static let recorded = DumpContents(databases: ["shop", "postgres"], tables: [
        .init(database: "shop", schema: "public", name: "items", rows: 3000),
        .init(database: "shop", schema: "public", name: "orders", rows: 12),
        .init(database: "postgres", schema: "public", name: "empty", rows: 0),
    ])

    static func manifest(image: String? = "postgres:15") -> Manifest {
        var component = Manifest.ManifestComponent(
            service: "db", container: "app-db-1", type: "fake-dump", archivePath: "db/database/dump.sql",
            kind: .file, sizeBytes: 10, entries: 1, sha256: "")
        component.image = image
        component.imageID = image.map { _ in "sha256:abc" }
        component.contents = recorded
        return Manifest(toolVersion: "test", host: "h", stack: "app", archiveName: "a.tar.zst",
                        compression: "zstd", startedAt: Date(), finishedAt: Date(), components: [component])
    }

    static func drill(replayed: DumpContents, docker: FakeDockerEngine = FakeDockerEngine(),
                      manifest: Manifest = manifest()) async throws -> DrillReport {
        let engine = DrillEngine(docker: docker, strategies: try StrategyRegistry([FakeDump(replayed: replayed)]),
                                 stopTimeoutSeconds: 1, logger: Logger(label: "test"))
        return try await engine.drill(manifest, name: "a.tar.zst", origin: "test", source: NoSource())
    }

    @Test func equalContentsPassAndTheContainerIsRemoved() async throws {
        let docker = FakeDockerEngine()
        let report = try await Self.drill(replayed: Self.recorded, docker: docker)
        #expect(report.passed, "\(report.checks)")
        #expect(report.checks.first?.checked.contains { $0.contains("3 table(s), 3012 row(s)") } == true)
        let created = try #require(docker.created.first)
        #expect(created.image == "sha256:abc" && created.networkDisabled && created.memoryLimitBytes == 2 << 30)
        #expect(created.labels[DrillEngine.label] == "a.tar.zst")
        #expect(created.environment.contains { $0.hasPrefix("FAKE_PASSWORD=") && $0.count == 14 + 32 })
        #expect(docker.containers.isEmpty, "drill containers left: \(docker.containers.map(\.name))")
    }

    @Test func aTableThatLostRowsAMissingTableAndAMissingDatabaseAreEachNamed() async throws {
        let replayed = DumpContents(databases: ["shop"], tables: [
            .init(database: "shop", schema: "public", name: "items", rows: 2999),
        ])
        let report = try await Self.drill(replayed: replayed)
        #expect(!report.passed)
        let problems = report.checks.flatMap(\.problems)
        #expect(problems.contains("table shop.public.items: 3000 rows in the dump, 2999 after the replay"))
        #expect(problems.contains("table shop.public.orders is missing after the replay"))
        #expect(problems.contains("database postgres is missing after the replay"))
    }

    @Test func aMissingImageFailsNamingItAndCreatesNothing() async throws {
        let docker = FakeDockerEngine()
        docker.removeImage("sha256:abc")
        let report = try await Self.drill(replayed: Self.recorded, docker: docker)
        #expect(!report.passed)
        #expect(report.checks.first?.problems.first?.contains("postgres:15 (sha256:abc), no longer exists") == true)
        #expect(docker.created.isEmpty)
    }

    @Test func anArchiveWithoutImagesCannotBeDrilled() async throws {
        let report = try await Self.drill(replayed: Self.recorded, manifest: Self.manifest(image: nil))
        #expect(!report.passed)
        #expect(report.checks.first?.problems.first?.contains("records no image") == true)
    }
}
