import Foundation
import StackVaultCore
import StackVaultStorage
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// The pure parts of `list`, `verify` and `restore`: archive selection, container mapping, the plan and its
/// dry-run text, the choice of how a directory is replaced.
@Suite struct RestorePlanTests {
    static let uuid = "0f0e0d0c-0b0a-4908-8706-050403020100"

    static func object(_ stack: String, _ time: String, size: Int64 = 10) -> StoredObject {
        StoredObject(name: "backup-\(stack)-\(time)-\(uuid).tar.zst", sizeBytes: size)
    }

    // MARK: - Selection

    @Test func listingsAreNewestFirstAndIgnoreForeignObjects() {
        let objects = [
            Self.object("app", "20261101-020000"), Self.object("app", "20261127-020000"),
            Self.object("app-2", "20261130-020000"), Self.object("db", "20261115-120000"),
            StoredObject(name: ".backup-app-20261201-000000-\(Self.uuid).tar.zst.partial", sizeBytes: 1),
            StoredObject(name: "backup-app-20261201-000000-\(Self.uuid).tar.zst.unsent", sizeBytes: 1),
            StoredObject(name: "notes.txt", sizeBytes: 1),
        ]
        let all = ArchiveCatalog.listings(objects)
        #expect(all.map(\.stack) == ["app-2", "app", "db", "app"])
        #expect(all.first?.name.contains("20261130") == true)
        // A stack name that is a prefix of another selects only its own archives.
        let app = ArchiveCatalog.listings(objects, stack: "app")
        #expect(app.map(\.name) == [Self.object("app", "20261127-020000").name, Self.object("app", "20261101-020000").name])
    }

    @Test func latestPicksTheNewestOfTheStackAndNamesWhatExists() throws {
        let objects = [Self.object("app", "20261101-020000"), Self.object("app", "20261127-020000"),
                       Self.object("db", "20261130-020000")]
        #expect(try ArchiveCatalog.latest(objects, stack: "app", target: "file:///b").name.contains("20261127"))
        #expect(try ArchiveCatalog.latest(objects, stack: nil, target: "file:///b").stack == "db")
        let error = #expect(throws: StackVaultError.self) {
            try ArchiveCatalog.latest(objects, stack: "web", target: "file:///b")
        }
        #expect(error?.message.contains("stacks with archives: app, db") == true, "\(String(describing: error))")
        #expect(throws: StackVaultError.self) { try ArchiveCatalog.latest([], stack: nil, target: "file:///b") }
    }

    /// A stack without archives in a target that has others: the message lists them (it once said "no archives
    /// at all", from a listing narrowed to the missing stack's prefix).
    @Test func selectLatestOfAMissingStackListsTheStacksThere() async throws {
        let storage = InMemoryStorageBackend()
        try await storage.put(Self.object("app", "20261101-020000").name)
        try await storage.put(Self.object("db", "20261101-030000").name)
        let error = await #expect(throws: StackVaultError.self) {
            _ = try await ArchiveCatalog.select(name: nil, latest: true, stack: "nope", storage: storage)
        }
        #expect(error?.message.contains("no archive of the stack 'nope' (stacks with archives: app, db)") == true,
                "\(String(describing: error))")
    }

    @Test func selectNeedsExactlyOneOfNameAndLatest() async throws {
        let storage = LocalDirectoryBackend(directory: "/nonexistent-\(UUID().uuidString)")
        #expect(try await ArchiveCatalog.select(name: "x.tar.zst", latest: false, stack: nil, storage: storage)
            == "x.tar.zst")
        await #expect(throws: StackVaultError.self) {
            _ = try await ArchiveCatalog.select(name: "x", latest: true, stack: nil, storage: storage)
        }
        await #expect(throws: StackVaultError.self) {
            _ = try await ArchiveCatalog.select(name: nil, latest: false, stack: nil, storage: storage)
        }
    }

    // MARK: - Mapping

    @Test func mapOptionsParse() throws {
        #expect(try RestoreOptions.parseMap(["db=staging_db_1", " files = x=y "]) == ["db": "staging_db_1", "files": "x=y"])
        for bad in [["db"], ["=x"], ["db="], ["db=a", "db=b"]] {
            #expect(throws: StackVaultError.self, "\(bad)") { try RestoreOptions.parseMap(bad) }
        }
    }

    static let candidates: [ContainerDetails] = [
        .fake(name: "app_db_1", project: "app", service: "db"),
        .fake(name: "app_web_1", project: "app", service: "web"),
        .fake(name: "app_web_2", project: "app", service: "web"),
        .fake(name: "staging_db_1", project: "staging", service: "db"),
        .fake(name: "lonely"),
        .fake(name: "lonely-copy"),
    ]

    @Test(arguments: [
        // service, source stack, target stack, map, expected container
        ("db", "app", "app", [:], "app_db_1"),
        ("db", "app", "staging", [:], "staging_db_1"),
        ("app_web_2", "app", "app", [:], "app_web_2"),  // a replica is archived under its container name
        ("db", "app", "app", ["db": "lonely"], "lonely"),
        ("db", "app", "app", ["db": "id-staging_db_1"], "staging_db_1"),
        ("lonely", "lonely", "lonely", [:], "lonely"),  // a standalone container is its own stack
        ("lonely", "lonely", "lonely-copy", [:], "lonely-copy"),
    ] as [(String, String, String, [String: String], String)])
    func containersAreResolved(service: String, source: String, target: String, map: [String: String],
                               expected: String) throws {
        let container = try RestorePlanner.resolve(service: service, sourceStack: source, targetStack: target,
                                                   map: map, candidates: Self.candidates)
        #expect(container.name == expected)
    }

    @Test func unresolvableAndAmbiguousServicesAskForAMap() {
        let ambiguous = #expect(throws: StackVaultError.self) {
            try RestorePlanner.resolve(service: "web", sourceStack: "app", targetStack: "app", map: [:],
                                       candidates: Self.candidates)
        }
        #expect(ambiguous?.message.contains("app_web_1, app_web_2") == true)
        #expect(ambiguous?.message.contains("--map web=CONTAINER") == true)
        let missing = #expect(throws: StackVaultError.self) {
            try RestorePlanner.resolve(service: "cache", sourceStack: "app", targetStack: "prod", map: [:],
                                       candidates: Self.candidates)
        }
        #expect(missing?.message.contains("no container belongs to a Compose project of that name") == true)
        #expect(throws: StackVaultError.self) {
            try RestorePlanner.resolve(service: "db", sourceStack: "app", targetStack: "app", map: ["db": "nope"],
                                       candidates: Self.candidates)
        }
        // A service name never falls back to a standalone container of that name inside a Compose stack.
        #expect(throws: StackVaultError.self) {
            try RestorePlanner.resolve(service: "lonely", sourceStack: "app", targetStack: "app", map: [:],
                                       candidates: Self.candidates)
        }
    }

    // MARK: - The plan

    static func manifest() -> Manifest {
        func component(_ service: String, _ type: String, _ path: String, source: String? = nil,
                       kind: ComponentRecord.Kind = .file) -> Manifest.ManifestComponent {
            Manifest.ManifestComponent(service: service, container: "app_\(service)_1", type: type,
                                       name: source == nil ? nil : "data", sourcePath: source, archivePath: path,
                                       kind: kind, sizeBytes: 2048, entries: kind == .file ? 1 : 7, sha256: "00")
        }
        return Manifest(
            toolVersion: "0.1.0", host: "prodhost", stack: "app",
            archiveName: "backup-app-20261127-020000-\(uuid).tar.zst", compression: "zstd",
            startedAt: Date(timeIntervalSince1970: 1_795_744_800), finishedAt: Date(timeIntervalSince1970: 1_795_744_860),
            components: [
                component("files", "volume-path", "files/volumes/data", source: "/data", kind: .tree),
                component("db", "pg_dumpall", "db/database/pg_dumpall.sql"),
                component("maria", "mariadb-dump", "maria/mariadb_dump/all_databases.sql"),
            ])
    }

    static func containers(dbRunning: Bool = true) -> [ContainerDetails] {
        var files = ContainerDetails.fake(name: "app_files_1", project: "app", service: "files")
        files.mounts = [ContainerMount(type: "volume", destination: "/data")]
        return [
            .fake(name: "app_db_1", project: "app", service: "db", running: dbRunning,
                  environment: ["POSTGRES_USER": "app"]),
            .fake(name: "app_maria_1", project: "app", service: "maria"), files,
        ]
    }

    @Test func dumpsComeFirstAndTheDryRunSaysWhatHappensToExistingData() throws {
        let plan = try RestorePlanner.plan(manifest: Self.manifest(), origin: "file:///backups/x", options: .init(),
                                           strategies: try BuiltinStrategies.registry(), containers: Self.containers())
        #expect(plan.steps.map(\.service) == ["db", "maria", "files"])
        #expect(plan.steps.map(\.requirement) == [.running, .running, .stopped])
        #expect(plan.containersToStop == ["app_files_1"])
        let text = plan.rendered()
        let flat = text.replacingOccurrences(of: "\n     ", with: " ")
        #expect(text.hasPrefix("Restore backup-app-20261127-020000-\(Self.uuid).tar.zst\n  from file:///backups/x\n"))
        // In the zone of TZ, named (`2026-11-27 02:00:00 UTC` when TZ is unset).
        let taken = DisplayTime.named(Date(timeIntervalSince1970: 1_795_744_800))
        #expect(text.contains("taken \(taken) on prodhost"), "\(text)")
        #expect(text.contains("1. service db -> container app_db_1 (running, keeps running)"))
        #expect(text.contains("3. service files -> container app_files_1 (stopped meanwhile, started again afterwards)"))
        #expect(flat.contains("with psql as app."))
        #expect(flat.contains("except app, which keeps its own"))
        #expect(flat.contains("every database except mysql, information_schema, performance_schema and sys"))
        #expect(flat.contains("replace the content of /data with files/volumes/data (7 entries, 2.0 KiB)"))
        #expect(flat.contains("It is on the mount /data"))
        #expect(flat.components(separatedBy: "EXISTING DATA IS REPLACED").count == 4)
        #expect(text.hasSuffix("Stopped during the restore and started again: app_files_1.\n"
            + "Nothing else on this host is changed.\n"))
        #expect(text.split(separator: "\n").allSatisfy { $0.count <= 110 })
    }

    @Test func servicesCanBeChosenAndMappedIntoAnotherStack() throws {
        var staging = ContainerDetails.fake(name: "copy", project: "staging", service: "files", running: false)
        staging.mounts = [ContainerMount(type: "bind", destination: "/")]
        let plan = try RestorePlanner.plan(
            manifest: Self.manifest(), origin: "o",
            options: RestoreOptions(services: ["files"], intoStack: "staging"),
            strategies: try BuiltinStrategies.registry(), containers: Self.containers() + [staging])
        #expect(plan.targetStack == "staging")
        #expect(plan.steps.map(\.container) == ["copy"])
        #expect(plan.containersToStop.isEmpty, "a stopped container is not stopped, nor started")
        #expect(plan.rendered().contains("(not running, stays stopped)"))
    }

    @Test func impossiblePlansAreRefusedBeforeAnythingIsTouched() throws {
        let registry = try BuiltinStrategies.registry()
        let unknownService = #expect(throws: StackVaultError.self) {
            try RestorePlanner.plan(manifest: Self.manifest(), origin: "o", options: .init(services: ["cache"]),
                                    strategies: registry, containers: Self.containers())
        }
        #expect(unknownService?.message.contains("its services: files, db, maria") == true)
        let stopped = #expect(throws: StackVaultError.self) {
            try RestorePlanner.plan(manifest: Self.manifest(), origin: "o", options: .init(),
                                    strategies: registry, containers: Self.containers(dbRunning: false))
        }
        #expect(stopped?.message.contains("is not running") == true)
        // Two services into one container that would have to run and be stopped at once.
        let both = #expect(throws: StackVaultError.self) {
            try RestorePlanner.plan(manifest: Self.manifest(), origin: "o",
                                    options: .init(containerMap: ["files": "app_db_1"]),
                                    strategies: registry, containers: Self.containers())
        }
        #expect(both?.message.contains("at once") == true)
        // A nested mount point below the restored directory.
        var nested = ContainerDetails.fake(name: "app_files_1", project: "app", service: "files")
        nested.mounts = [ContainerMount(type: "volume", destination: "/data/uploads")]
        let mount = #expect(throws: StackVaultError.self) {
            try RestorePlanner.plan(manifest: Self.manifest(), origin: "o", options: .init(services: ["files"]),
                                    strategies: registry, containers: [nested])
        }
        #expect(mount?.message.contains("contains the mount point /data/uploads") == true)
        // A strategy this stackvault does not know.
        var manifest = Self.manifest()
        manifest.components[0].type = "redis-rdb"
        #expect(throws: StackVaultError.self) {
            try RestorePlanner.plan(manifest: manifest, origin: "o", options: .init(), strategies: registry,
                                    containers: Self.containers())
        }
    }

    // MARK: - How a directory is replaced

    @Test func theReplacementMethodFollowsTheMounts() throws {
        func method(_ path: String, _ mounts: [(String, String)]) throws -> DirectoryReplacement.Method {
            try DirectoryReplacement.method(for: path, mounts: mounts.map { ContainerMount(type: $0.0, destination: $0.1) })
        }
        #expect(try method("/data", [("volume", "/data")]) == .helperContainer(mount: "/data"))
        #expect(try method("/srv/uploads", [("bind", "/srv"), ("volume", "/srv/uploads")])
            == .helperContainer(mount: "/srv/uploads"))
        #expect(try method("/srv/uploads/img", [("bind", "/srv")]) == .helperContainer(mount: "/srv"))
        #expect(try method("/data", [("volume", "/database")]) == .writableLayer)
        #expect(try method("/data", []) == .writableLayer)
        #expect(throws: StackVaultError.self) { try method("/srv", [("volume", "/srv/uploads")]) }
        #expect(throws: StackVaultError.self) { try method("/run/cache", [("tmpfs", "/run")]) }
    }
}
