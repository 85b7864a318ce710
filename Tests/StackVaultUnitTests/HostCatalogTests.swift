import Foundation
import StackVaultCore
import StackVaultStorage
import StackVaultTestKit
import Testing

/// A folder of an object store, as `s3://bucket/prefix/<host>` is of `s3://bucket/prefix`: every name gets the
/// prefix `<folder>/` in `base`.
struct FolderView: StorageBackend {
    let base: InMemoryStorageBackend
    let folder: String

    var description: String { "\(base.description)\(folder)" }
    var capabilities: StorageCapabilities { base.capabilities }
    var localDirectory: String? { nil }
    func store(localPath: String, as name: String) async throws -> StoredObject {
        var stored = try await base.store(localPath: localPath, as: "\(folder)/\(name)")
        stored.name = name
        return stored
    }
    func list(prefix: String) async throws -> [StoredObject] {
        try await base.list(prefix: "\(folder)/\(prefix)").map { object in
            var object = object
            object.name = String(object.name.dropFirst(folder.count + 1))
            return object
        }
    }
    func read(_ name: String, into sink: any ByteSink) async throws { try await base.read("\(folder)/\(name)", into: sink) }
    func delete(_ name: String) async throws { try await base.delete("\(folder)/\(name)") }
}

extension InMemoryStorageBackend {
    /// Stores one byte as `name`.
    func put(_ name: String) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sv-put-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        _ = try await store(localPath: file.path, as: name)
    }
}

@Suite struct HostCatalogTests {
    static func name(_ stack: String, _ stamp: String) -> String {
        "backup-\(stack)-\(stamp)-\(UUID().uuidString.lowercased()).tar.zst"
    }

    @Test func thisHostIsSTACKVAULT_HOSTElseTheEnginesName() async throws {
        #expect(try await ArchiveHost.resolve(environment: ["STACKVAULT_HOST": "alpha"]) { "engine" } == "alpha")
        #expect(try await ArchiveHost.resolve(environment: [:]) { "engine-1.example" } == "engine-1.example")
        let bad = await #expect(throws: StackVaultError.self) {
            try await ArchiveHost.resolve(environment: ["STACKVAULT_HOST": "../etc"]) { "x" }
        }
        #expect(bad?.message.contains("STACKVAULT_HOST '../etc'") == true)
        let down = await #expect(throws: StackVaultError.self) {
            try await ArchiveHost.resolve(environment: [:]) { throw StackVaultError(.dockerUnreachable, "no socket") }
        }
        #expect(down?.message.contains("set STACKVAULT_HOST") == true)
        #expect(!ArchiveHost.isValid("a/b") && !ArchiveHost.isValid(".hidden") && !ArchiveHost.isValid(""))
    }

    /// A local target: `<dir>/<host>/backup-...`, one unfiled archive at the top.
    @Test func localTargetKeepsHostsApart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sv-hosts-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let root = LocalDirectoryBackend(directory: directory.path)
        let catalog = HostCatalog(root: root) { LocalDirectoryBackend(directory: directory.path + "/" + $0) }
        let a1 = Self.name("app", "20261101-010000"), b1 = Self.name("app", "20261101-020000")
        let a2 = Self.name("app", "20261101-030000"), b2 = Self.name("app", "20261101-040000")
        let old = Self.name("app", "20261001-010000")
        for (host, name) in [("alpha", a1), ("beta", b1), ("alpha", a2), ("beta", b2)] {
            let folder = directory.appendingPathComponent(host)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data("x".utf8).write(to: folder.appendingPathComponent(name))
        }
        try Data("x".utf8).write(to: directory.appendingPathComponent(old))

        let all = try await catalog.allArchives()
        #expect(all.map(\.listing.name) == [b2, a2, b1, a1, old])
        #expect(all.map(\.host) == ["beta", "alpha", "beta", "alpha", nil])
        #expect(try await catalog.hosts() == ["alpha", "beta"])
        #expect(try await catalog.archives(ofHost: "alpha").map(\.listing.name) == [a2, a1])

        let latest = try await catalog.select(name: nil, latest: true, stack: "app", host: "alpha")
        #expect(latest.name == a2 && latest.host == "alpha")
        let other = await #expect(throws: StackVaultError.self) {
            _ = try await catalog.select(name: b1, latest: false, stack: nil, host: "alpha")
        }
        #expect(other?.message.contains("--host beta") == true)
        let unfiled = try await catalog.select(name: old, latest: false, stack: nil, host: "alpha")
        #expect(unfiled.host == nil && unfiled.storage.description == root.description)
        let none = await #expect(throws: StackVaultError.self) {
            _ = try await catalog.select(name: nil, latest: true, stack: "app", host: "gamma")
        }
        #expect(none?.message.contains("hosts that have: alpha, beta") == true)
        #expect(none?.message.contains("from before host folders") == true)
    }

    /// `verify`/`restore`/`drill --latest --stack nope` (issue #20): the message names the missing stack and the
    /// stacks this host does have archives of, not "no archives at all".
    @Test func latestOfAMissingStackNamesTheStacksThatExist() async throws {
        let root = InMemoryStorageBackend()
        let catalog = HostCatalog(root: root) { FolderView(base: root, folder: $0) }
        try await root.put("alpha/" + Self.name("app", "20261101-010000"))
        try await root.put("alpha/" + Self.name("db", "20261101-020000"))
        try await root.put("beta/" + Self.name("web", "20261101-030000"))
        let nope = await #expect(throws: StackVaultError.self) {
            _ = try await catalog.select(name: nil, latest: true, stack: "nope", host: "alpha")
        }
        let message = nope?.message ?? ""
        #expect(message.contains("the host 'alpha' has no archive of the stack 'nope'"), "\(message)")
        #expect(message.contains("(stacks it has archives of: app, db)"), "\(message)")
        #expect(!message.contains("hosts that have"), "\(message)")
        let empty = await #expect(throws: StackVaultError.self) {
            _ = try await catalog.select(name: nil, latest: true, stack: "web", host: "gamma")
        }
        #expect(empty?.message.contains("(it has no archives at all there); hosts that have: beta") == true,
                "\(String(describing: empty))")
    }

    /// A, B, A, B and A, B, B with keep-last 2 in one object store: each host keeps its own last two.
    @Test(arguments: [["alpha", "beta", "alpha", "beta"], ["alpha", "beta", "beta"]])
    func retentionIsPerHost(_ order: [String]) async throws {
        let root = InMemoryStorageBackend()
        let catalog = HostCatalog(root: root) { FolderView(base: root, folder: $0) }
        var written: [String: [String]] = [:]
        for (index, host) in order.enumerated() {
            let name = Self.name("app", "2026110\(index + 1)-010000")
            try await root.put("\(host)/\(name)")
            let storage = try catalog.storage(forHost: host)
            written[host, default: []].append(name)
            _ = try await Pruner(storage: storage, policy: RetentionPolicy(keepLast: 2), logger: .init(label: "t"))
                .prune(stacks: ["app"], dryRun: false, protecting: [name])
        }
        let left = try await catalog.allArchives()
        for (host, names) in written {
            #expect(Set(left.filter { $0.host == host }.map(\.listing.name)) == Set(names.suffix(2)))
        }
        #expect(left.count == written.values.map { min($0.count, 2) }.reduce(0, +))
    }

    @Test func statusSummarizesPerHostAndStack() {
        let now = ArchiveName.parse(Self.name("x", "20261102-000000"))!.date
        func archive(_ host: String?, _ stack: String, _ stamp: String, _ size: Int64) -> HostedArchive {
            let name = Self.name(stack, stamp)
            return HostedArchive(host: host, listing: ArchiveListing(
                name: name, stack: stack, date: ArchiveName.parse(name)!.date, sizeBytes: size))
        }
        let statuses = StackStatus.summarize([
            archive("beta", "app", "20261101-000000", 10), archive(nil, "app", "20261001-000000", 5),
            archive("alpha", "app", "20261101-120000", 7), archive("alpha", "app", "20261031-120000", 3),
            archive("alpha", "db", "20261101-230000", 1),
        ], now: now)
        #expect(statuses.map { "\($0.host ?? "-")/\($0.stack)" } == ["alpha/app", "alpha/db", "beta/app", "-/app"])
        #expect(statuses[0].archives == 2 && statuses[0].totalBytes == 10 && statuses[0].lastSizeBytes == 7)
        #expect(statuses[0].ageSeconds == 12 * 3600)
        #expect(StackStatus.describeAge(12 * 3600) == "12h 0m")
        #expect(StackStatus.describeAge(3 * 86_400 + 7200) == "3d 2h")
    }
}

extension HostCatalogTests {
    /// In an object store, `allArchives` reads one listing: `<host>/backup-...` belong to the host, `backup-...` at
    /// the top to none; deeper keys, invalid host names and other objects are not archives of the target.
    @Test func objectStoreListingSplitsAtTheFirstSlash() async throws {
        let root = InMemoryStorageBackend()
        let catalog = HostCatalog(root: root) { FolderView(base: root, folder: $0) }
        let hosted = Self.name("app", "20261101-010000"), unfiled = Self.name("app", "20261001-010000")
        try await root.put("alpha/" + hosted)
        try await root.put(unfiled)
        try await root.put("alpha/deeper/" + Self.name("app", "20261102-010000"))
        try await root.put(".hidden/" + Self.name("app", "20261103-010000"))
        try await root.put("alpha/notes.txt")
        let all = try await catalog.allArchives()
        #expect(all.map(\.listing.name) == [hosted, unfiled])
        #expect(all.map(\.host) == ["alpha", nil])
        #expect(try await catalog.unfiledArchives().map(\.listing.name) == [unfiled])
        let bad = #expect(throws: StackVaultError.self) { _ = try catalog.storage(forHost: "../x") }
        #expect(bad?.message.contains("'../x'") == true)
    }
}

@Suite struct StackStatusDrillTests {
    @Test func aDaemonsDrillRecordsGoToItsOwnHostsStacksOnly() throws {
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let status = { (host: String?, stack: String) in
            StackStatus(host: host, stack: stack, archives: 1, totalBytes: 10, lastArchive: "a", lastTime: time,
                        lastSizeBytes: 10, ageSeconds: 60)
        }
        var state = DaemonState(schedule: "0 3 * * *", timeZone: "UTC", host: "web1", pid: 1, daemonStartedAt: time)
        state.drills = ["app": DrillRecord(archive: "a", finishedAt: time, passed: true, problems: [],
                                           lastSuccessAt: time)]
        let statuses = StackStatus.adding(drillsOf: state, to: [status("web1", "app"), status("web2", "app"),
                                                                status("web1", "db"), status(nil, "app")])
        #expect(statuses.map { $0.lastDrill?.passed } == [true, nil, nil, nil])
        #expect(StackStatus.adding(drillsOf: nil, to: [status("web1", "app")])[0].lastDrill == nil)
    }
}
