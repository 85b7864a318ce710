import Foundation
import Logging
@testable import StackVaultCore
import Synchronization
import Testing

/// A lock store in memory, with the same contract as `DockerLockStore` (atomic create by name).
final class InMemoryLockStore: LockStore {
    struct State {
        var locks: [String: StoredLock] = [:]  // by name
        var containers: [String: Bool] = [:]  // container id -> running
        var renewals = 0
        var removals = 0
        var nextID = 0
        var journals: [String: StopJournal] = [:]  // lock id -> journal
    }

    let state = Mutex(State())

    func create(name: String, record: LockRecord) async throws -> String? {
        state.withLock { state in
            guard state.locks[name] == nil else { return nil }
            state.nextID += 1
            let id = "lock-\(state.nextID)"
            state.locks[name] = StoredLock(id: id, record: record, expiresAt: record.expiresAt)
            return id
        }
    }

    func read(name: String) async throws -> StoredLock? { state.withLock { $0.locks[name] } }

    func renew(id: String, holder: String, until: Date) async throws -> Bool {
        state.withLock { state in
            guard let name = state.locks.first(where: { $0.value.id == id })?.key else { return false }
            state.locks[name]!.expiresAt = until
            state.renewals += 1
            return true
        }
    }

    func remove(id: String) async throws {
        state.withLock { state in
            if let name = state.locks.first(where: { $0.value.id == id })?.key {
                state.locks[name] = nil
                state.removals += 1
            }
        }
    }

    func isContainerRunning(_ id: String) async throws -> Bool? { state.withLock { $0.containers[id] } }

    func writeJournal(id: String, _ journal: StopJournal) async throws -> Bool {
        state.withLock { state in
            guard state.locks.values.contains(where: { $0.id == id }) else { return false }
            state.journals[id] = journal
            return true
        }
    }

    func readJournal(id: String) async throws -> StopJournal? { state.withLock { $0.journals[id] } }

    func lockNames() async throws -> [String] { lockNames }

    /// Puts a lock of another holder in place.
    func plant(stack: String, holder: HolderIdentity, expiresAt: Date) {
        let record = LockRecord(stack: stack, holder: holder, acquiredAt: expiresAt.addingTimeInterval(-60),
                                expiresAt: expiresAt)
        state.withLock { $0.locks[StackLocker.lockName(for: stack)] = StoredLock(id: "planted-\(stack)", record: record,
                                                                                  expiresAt: expiresAt) }
    }

    var lockNames: [String] { state.withLock { Array($0.locks.keys) } }

    /// What `isContainerRunning` answers, per container id.
    func setRunning(_ running: [String: Bool]) {
        state.withLock { $0.containers.merge(running) { $1 } }
    }
}

/// Records log lines (and their metadata), to check what was said.
final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    struct Event {
        var message: String
        var metadata: Logger.Metadata
    }

    private let lines = Mutex<[String]>([])
    private let logged = Mutex<[Event]>([])
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append("\(event.level) \(event.message)") }
        logged.withLock { $0.append(Event(message: "\(event.message)", metadata: event.metadata ?? [:])) }
    }

    var recorded: [String] { lines.withLock { $0 } }
    var events: [Event] { logged.withLock { $0 } }

    var logger: Logger { Logger(label: "test") { _ in self } }
}

@Suite struct StackLockerTests {
    /// Another process, in another PID namespace (so only its lease and container tell whether it lives).
    static func identity(_ name: String, pid: Int32 = 999_999, namespace: String? = "pid:[elsewhere]",
                         container: String? = nil) -> HolderIdentity {
        HolderIdentity(id: name, pid: pid, pidNamespace: namespace, container: container)
    }

    let store = InMemoryLockStore()
    let log = RecordingLogHandler()

    /// A locker in this process (a live PID of this namespace) under its own holder id.
    func locker(_ name: String, ttl: Duration = .seconds(60)) -> StackLocker {
        let me = HolderIdentity.current()
        return StackLocker(store: store, identity: Self.identity(name, pid: me.pid, namespace: me.pidNamespace),
                           ttl: ttl, logger: log.logger)
    }

    /// Two tasks of one process (the daemon's backup and its drill): with identities of their own, the second is
    /// turned away; with one shared identity it would have broken the first one's lock as stale.
    @Test func anotherTaskOfTheSameProcessWithItsOwnIdentityIsTurnedAway() async throws {
        let daemon = StackLocker(store: store, identity: .current(), ttl: .seconds(60), logger: log.logger)
        let drills = daemon.withOwnIdentity()
        #expect(drills.identity.id != daemon.identity.id && drills.identity.pid == daemon.identity.pid)
        let inside = AsyncStream<Void>.makeStream()
        let leave = AsyncStream<Void>.makeStream()
        async let backup = daemon.withLock(on: "app") { () async -> Bool in
            inside.continuation.yield()
            for await _ in leave.stream { break }
            return true
        }
        for await _ in inside.stream { break }
        let drill = try await drills.withLock(on: "app", purpose: "drill") { true }
        guard case .busy = drill else {
            Issue.record("the drill broke the lock of the backup in progress")
            leave.continuation.yield()
            _ = try await backup
            return
        }
        #expect(!log.recorded.contains { $0.contains("breaking the stale lock") }, "\(log.recorded)")
        leave.continuation.yield()
        guard case .ran = try await backup else {
            Issue.record("the backup did not run")
            return
        }
    }

    @Test func aSecondHolderIsTurnedAwayWhileTheFirstRuns() async throws {
        let first = locker("first"), second = locker("second")
        let inside = AsyncStream<Void>.makeStream()
        let leave = AsyncStream<Void>.makeStream()
        async let firstOutcome = first.withLock(on: "app") { () async -> String in
            inside.continuation.yield()
            for await _ in leave.stream { break }
            return "first ran"
        }
        for await _ in inside.stream { break }
        let secondOutcome = try await second.withLock(on: "app") { "second ran" }
        guard case .busy(let lock) = secondOutcome else {
            Issue.record("the second holder ran while the first held the lock")
            return
        }
        #expect(lock.record.holder.id == "first")
        leave.continuation.yield()
        guard case .ran(let value) = try await firstOutcome else {
            Issue.record("the first holder did not run")
            return
        }
        #expect(value == "first ran")
        #expect(store.lockNames.isEmpty, "the lock was not released")
        // Free again: the second one gets it now.
        guard case .ran = try await second.withLock(on: "app", { "second ran" }) else {
            Issue.record("the lock stayed taken")
            return
        }
    }

    @Test func concurrentHoldersNeverOverlap() async throws {
        final class Counts: Sendable {
            let value = Mutex((inside: 0, maximum: 0, ran: 0))
        }
        let counts = Counts()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                let locker = locker("holder-\(index)")
                group.addTask {
                    _ = try await locker.withLock(on: "app") {
                        counts.value.withLock { $0.inside += 1; $0.maximum = max($0.maximum, $0.inside) }
                        try? await Task.sleep(for: .milliseconds(20))
                        counts.value.withLock { $0.inside -= 1; $0.ran += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = counts.value.withLock { $0 }
        #expect(final.maximum == 1)
        #expect(final.ran >= 1)
    }

    @Test func anExpiredLeaseIsBroken() async throws {
        store.plant(stack: "app", holder: Self.identity("crashed"), expiresAt: Date().addingTimeInterval(-1))
        guard case .ran = try await locker("me").withLock(on: "app", { 1 }) else {
            Issue.record("an expired lock was respected")
            return
        }
        #expect(log.recorded.contains { $0.contains("breaking the stale lock") && $0.contains("lease expired") })
    }

    @Test func aLiveLeaseIsRespected() async throws {
        store.plant(stack: "app", holder: Self.identity("alive"), expiresAt: Date().addingTimeInterval(30))
        guard case .busy = try await locker("me").withLock(on: "app", { 1 }) else {
            Issue.record("a live lock was broken")
            return
        }
        #expect(store.lockNames == [StackLocker.lockName(for: "app")])
    }

    @Test func aHolderProcessThatExitedIsDetectedAtOnce() async throws {
        // A process of our own PID namespace that has exited.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        let mine = HolderIdentity.current()
        store.plant(stack: "app", holder: Self.identity("gone", pid: process.processIdentifier,
                                                        namespace: mine.pidNamespace),
                    expiresAt: Date().addingTimeInterval(3600))
        let locker = StackLocker(store: store, identity: mine, logger: log.logger)
        guard case .ran = try await locker.withLock(on: "app", { 1 }) else {
            Issue.record("the lock of an exited process was respected")
            return
        }
        #expect(log.recorded.contains { $0.contains("holder process \(process.processIdentifier) has exited") })
    }

    @Test func aHolderContainerThatStoppedIsDetectedAtOnce() async throws {
        store.state.withLock { $0.containers["c-stopped"] = false; $0.containers["c-running"] = true }
        store.plant(stack: "a", holder: Self.identity("x", container: "c-stopped"), expiresAt: .distantFuture)
        store.plant(stack: "b", holder: Self.identity("y", container: "c-running"), expiresAt: .distantFuture)
        store.plant(stack: "c", holder: Self.identity("z", container: "c-removed"), expiresAt: .distantFuture)
        let locker = locker("me")
        guard case .ran = try await locker.withLock(on: "a", { 1 }) else { Issue.record("a"); return }
        guard case .busy = try await locker.withLock(on: "b", { 1 }) else { Issue.record("b"); return }
        guard case .ran = try await locker.withLock(on: "c", { 1 }) else { Issue.record("c"); return }
    }

    @Test func renewalKeepsALongRunAlive() async throws {
        // A 10 s lease renewed every third of it: a renewal may be held up by almost 7 s on a loaded 2-core
        // machine (CI) before the lease lapses (600 ms and 3 s leases both lapsed there under load).
        let holder = locker("long", ttl: .seconds(10))
        let other = locker("other", ttl: .seconds(10))
        let inside = AsyncStream<Void>.makeStream()
        async let outcome = holder.withLock(on: "app") { () async -> Int in
            inside.continuation.yield()
            try? await Task.sleep(for: .seconds(16))
            return 1
        }
        for await _ in inside.stream { break }
        try await Task.sleep(for: .seconds(12))  // past the first lease
        guard case .busy(let lock) = try await other.withLock(on: "app", { 2 }) else {
            Issue.record("a renewed lock was broken")
            return
        }
        #expect(lock.expiresAt > Date())
        _ = try await outcome
        #expect(store.state.withLock { $0.renewals } >= 2)
    }

    @Test func theLockIsReleasedWhenTheRunIsCancelled() async throws {
        let locker = locker("me")
        let inside = AsyncStream<Void>.makeStream()
        let task = Task {
            try await locker.withLock(on: "app") { () async -> Bool in
                inside.continuation.yield()
                try? await Task.sleep(for: .seconds(30))
                return Task.isCancelled
            }
        }
        for await _ in inside.stream { break }
        task.cancel()
        guard case .ran(let sawCancellation) = try await task.value else {
            Issue.record("the body did not run")
            return
        }
        #expect(sawCancellation)
        #expect(store.lockNames.isEmpty)
    }

    @Test func lockNames() {
        #expect(StackLocker.lockName(for: "svtest_app-1") == "stackvault-lock.svtest_app-1")
        let odd = StackLocker.lockName(for: "my stack/ü")
        #expect(odd.hasPrefix("stackvault-lock.my_stack__."))
        #expect(odd != StackLocker.lockName(for: "my stack/ä"))
    }

    @Test func ownContainerFromMountInfo() {
        let id = String(repeating: "ab12", count: 16)
        let inContainer = """
            22 27 0:21 / /proc rw,relatime - proc proc rw
            128 110 254:0 /var/lib/docker/containers/\(id)/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
            129 110 254:0 /var/lib/docker/containers/\(id)/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
            """
        #expect(HolderIdentity.ownContainerID(mountInfo: inContainer) == id)
        let onHost = """
            22 27 0:21 / /proc rw,relatime - proc proc rw
            300 27 0:50 / /var/lib/docker/containers/\(id)/mounts/shm rw - tmpfs shm rw
            """
        #expect(HolderIdentity.ownContainerID(mountInfo: onHost) == nil)
    }

    @Test func dockerLockLabelsRoundTrip() throws {
        let record = LockRecord(stack: "app", holder: Self.identity("h/1/x", pid: 7, container: "c1"),
                                acquiredAt: Date(timeIntervalSince1970: 1_700_000_000),
                                expiresAt: Date(timeIntervalSince1970: 1_700_000_060))
        #expect(DockerLockStore.record(from: DockerLockStore.labels(of: record)) == record)
        #expect(DockerLockStore.record(from: ["org.stackvault.lock.stack": "app"]) == nil)
        // A restore says so; a lock from before purposes existed reads as a backup.
        var restoring = record
        restoring.purpose = "restore"
        #expect(DockerLockStore.record(from: DockerLockStore.labels(of: restoring)) == restoring)
        #expect(restoring.busyDescription.hasPrefix("another StackVault (h/1/x"))
        #expect(restoring.busyDescription.contains("has been running a restore of it since "
            + "\(restoring.acquiredAt.iso8601)"))
        #expect(restoring.acquiredAt == Date(timeIntervalSince1970: 1_700_000_000))
        var old = DockerLockStore.labels(of: record)
        old["org.stackvault.lock.purpose"] = nil
        #expect(DockerLockStore.record(from: old)?.purpose == "backup")
    }

    /// The lease file goes into the lock container as a tar; GNU tar must read it back.
    @Test func leaseTarIsReadableByTar() throws {
        let content = "stackvault-lease holder=h expires=2024-01-15T10:17:30Z\n"
        let tar = try DockerLockStore.tar(name: "stackvault-lease", contents: Array(content.utf8))
        #expect(tar.count % 512 == 0)
        #expect(DockerLockStore.leaseExpiry(inTar: tar) == Date(timeIntervalSince1970: 1_705_313_850))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lease-\(UUID().uuidString).tar")
        try Data(tar).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar", "-xOf", path.path, "stackvault-lease"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(String(decoding: out, as: UTF8.self) == content)
    }
}
