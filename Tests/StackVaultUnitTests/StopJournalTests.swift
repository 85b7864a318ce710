import Foundation
import Logging
@testable import StackVaultCore
import Synchronization
import Testing
import StackVaultTestKit

/// The stop journal in a stack's lock: what a run stops is recorded before the stop, and whoever takes the lock of a
/// dead run starts those containers again and removes its partial archives.
@Suite struct StopJournalTests {
    let store = InMemoryLockStore()
    let log = RecordingLogHandler()

    @Test func theJournalTextRoundTripsAndIgnoresTarFraming() throws {
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        let journal = StopJournal(stopped: [StoppedContainer(id: "abc", name: "shop-web-1"),
                                            StoppedContainer(id: "def", name: "shop-worker-1")],
                                  stoppedAt: time, partials: ["/backups/h/.backup-shop-x.partial"])
        // Docker returns the file inside a tar: a header before it, NUL padding after it.
        let framed = "stackvault-journal\0\0\00000644\0ustar\0" + journal.text + String(repeating: "\0", count: 300)
        let parsed = try #require(StopJournal(parsing: framed))
        #expect(parsed == journal)
        #expect(StopJournal(parsing: "no journal here") == nil)
    }

    @Test func aRunRecordsWhatItStopsBeforeStoppingAndClearsItAfterStartingThem() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "web"), .fake(name: "worker")])
        let me = HolderIdentity.current()
        let locker = StackLocker(store: store, identity: me, logger: log.logger, docker: docker)
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 1, logger: log.logger,
                                           stopMarginSeconds: 1, pollInterval: .milliseconds(10))
        let containers = [StoppedContainer(id: "id-web", name: "web"), StoppedContainer(id: "id-worker", name: "worker")]
        let seenWhileStopped = Mutex<StopJournal?>(nil)
        let store = self.store
        let outcome = try await locker.withLock(on: "shop") { () async -> Bool in
            let held = HeldLock.current
            _ = try? await stopGuard.run(containers, stack: "shop", purpose: "backup") {
                let journal = try await store.readJournal(id: held?.id ?? "")
                seenWhileStopped.withLock { $0 = journal }
            }
            let after = try? await store.readJournal(id: held?.id ?? "")
            return after?.stopped.isEmpty == true
        }
        let journal = seenWhileStopped.withLock { $0 }
        guard case .ran(let clearedAfterwards) = outcome else {
            Issue.record("the lock was not taken")
            return
        }
        #expect(clearedAfterwards, "the journal still lists the containers after they were started again")
        #expect(journal?.stopped == containers)
        #expect(journal?.stoppedAt != nil)
        #expect(docker.isRunning("web") && docker.isRunning("worker"))
    }

    @Test func takingTheLockOfADeadRunStartsWhatItStoppedAndRemovesItsPartialArchive() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "web", running: false),
                                                   .fake(name: "worker", running: false),
                                                   .fake(name: "userStopped", running: false)])
        let partial = FileManager.default.temporaryDirectory.appendingPathComponent(
            ".backup-shop-\(UUID().uuidString).partial").path
        FileManager.default.createFile(atPath: partial, contents: Data("half".utf8))
        // A dead holder: a PID of this namespace that does not exist.
        let me = HolderIdentity.current()
        let dead = HolderIdentity(id: "dead", pid: 999_999, pidNamespace: me.pidNamespace, container: nil)
        store.plant(stack: "shop", holder: dead, expiresAt: Date().addingTimeInterval(60))
        _ = try await store.writeJournal(id: "planted-shop", StopJournal(
            stopped: [StoppedContainer(id: "id-web", name: "web"), StoppedContainer(id: "id-worker", name: "worker")],
            stoppedAt: Date().addingTimeInterval(-90), partials: [partial]))
        let recovered = Mutex<[String: Int]>([:])
        let locker = StackLocker(store: store, identity: me, logger: log.logger, docker: docker,
                                 onRecovered: { stack, count in recovered.withLock { $0[stack, default: 0] += count } })

        let outcome = try await locker.withLock(on: "shop") {
            docker.isRunning("web") && docker.isRunning("worker")
        }
        guard case .ran(let runningInside) = outcome else {
            Issue.record("the stale lock was not broken")
            return
        }
        #expect(runningInside, "the containers were not running again when the body ran")
        #expect(!docker.isRunning("userStopped"), "a container StackVault did not stop was started")
        #expect(!FileManager.default.fileExists(atPath: partial))
        #expect(recovered.withLock { $0 } == ["shop": 2])
        let warning = log.recorded.first { $0.contains("died while its containers were stopped") } ?? ""
        #expect(warning.hasPrefix("warning") && warning.contains("web, worker") && warning.contains("s down"),
                "\(log.recorded)")
        #expect(store.lockNames.isEmpty)
    }

    @Test func theDaemonAtStartRecoversStaleLocksAndLeavesLiveOnes() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "web", running: false),
                                                   .fake(name: "db", running: false)])
        let me = HolderIdentity.current()
        let dead = HolderIdentity(id: "dead", pid: 999_999, pidNamespace: me.pidNamespace, container: nil)
        let live = HolderIdentity(id: "live", pid: me.pid, pidNamespace: me.pidNamespace, container: nil)
        store.plant(stack: "shop", holder: dead, expiresAt: Date().addingTimeInterval(60))
        store.plant(stack: "erp", holder: live, expiresAt: Date().addingTimeInterval(60))
        _ = try await store.writeJournal(id: "planted-shop", StopJournal(
            stopped: [StoppedContainer(id: "id-web", name: "web")], stoppedAt: Date()))
        _ = try await store.writeJournal(id: "planted-erp", StopJournal(
            stopped: [StoppedContainer(id: "id-db", name: "db")], stoppedAt: Date()))
        let locker = StackLocker(store: store, identity: me, logger: log.logger, docker: docker)

        let failures = await locker.recoverAbandonedLocks()
        #expect(failures.isEmpty)
        #expect(docker.isRunning("web"))
        #expect(!docker.isRunning("db"), "a live holder's stopped container was started")
        #expect(store.lockNames == [StackLocker.lockName(for: "erp")])
    }

    @Test func healthFindsWhatADeadHolderLeftStoppedAndNothingOfLiveOnesOrRunningContainers() async throws {
        let me = HolderIdentity.current()
        let dead = HolderIdentity(id: "dead", pid: 999_999, pidNamespace: me.pidNamespace, container: nil)
        let live = HolderIdentity(id: "live", pid: me.pid, pidNamespace: me.pidNamespace, container: nil)
        store.plant(stack: "shop", holder: dead, expiresAt: Date().addingTimeInterval(60))
        store.plant(stack: "erp", holder: live, expiresAt: Date().addingTimeInterval(60))
        store.plant(stack: "blog", holder: dead, expiresAt: Date().addingTimeInterval(60))
        store.setRunning(["id-web": false, "id-worker": true, "id-db": false, "id-blog": true])
        let time = Date(timeIntervalSince1970: 1_700_000_000)
        _ = try await store.writeJournal(id: "planted-shop", StopJournal(
            stopped: [StoppedContainer(id: "id-web", name: "web"), StoppedContainer(id: "id-worker", name: "worker")],
            stoppedAt: time))
        _ = try await store.writeJournal(id: "planted-erp", StopJournal(
            stopped: [StoppedContainer(id: "id-db", name: "db")], stoppedAt: time))
        // Its containers already run again (started by hand): nothing to report.
        _ = try await store.writeJournal(id: "planted-blog", StopJournal(
            stopped: [StoppedContainer(id: "id-blog", name: "blog")], stoppedAt: time))
        let locker = StackLocker(store: store, identity: me, logger: log.logger)

        let found = try await locker.abandonedStops()
        #expect(found == ["stack shop: a dead backup (dead) stopped web at \(time.iso8601)"], "\(found)")
        #expect(store.lockNames.count == 3, "abandonedStops changed the locks")
    }

    @Test func drillAndHelperContainersOfAGoneProcessAreRemovedAndOthersKept() async throws {
        let me = HolderIdentity.current()
        let dead = HolderIdentity(id: "dead", pid: 999_999, pidNamespace: me.pidNamespace, container: nil)
        let live = HolderIdentity(id: "live", pid: me.pid, pidNamespace: me.pidNamespace, container: nil)
        let made = { (maker: HolderIdentity) in maker.labels(prefix: StackLocker.makerLabel) }
        let docker = FakeDockerEngine(containers: [
            .fake(name: "drill-dead", labels: [DrillEngine.label: "a"].merging(made(dead)) { $1 }),
            .fake(name: "helper-dead", running: false,
                  labels: [HelperImage.containerLabel: "web"].merging(made(dead)) { $1 }),
            .fake(name: "drill-live", labels: [DrillEngine.label: "b"].merging(made(live)) { $1 }),
            .fake(name: "helper-old", running: false, labels: [HelperImage.containerLabel: "web"]),
            .fake(name: "app", labels: made(dead)),
        ])
        let locker = StackLocker(store: store, identity: me, logger: log.logger, docker: docker)
        let removed = await locker.removeOrphanedContainers(docker: docker)
        #expect(Set(removed) == ["drill-dead", "helper-dead"])
        #expect(Set(docker.containers.map(\.name)) == ["drill-live", "helper-old", "app"])
        #expect(HolderIdentity(labels: made(dead), prefix: StackLocker.makerLabel) == dead)
    }

    /// A PID reused by another process (or a PID namespace number reused after a container restart): the holder's
    /// start time tells them apart.
    @Test func aHolderWhosePIDIsAnotherProcessNowIsGone() async throws {
        let me = HolderIdentity.current()
        let started = try #require(me.startTime)
        let locker = StackLocker(store: store, identity: me, logger: log.logger)
        var reused = me
        reused.id = "earlier"
        reused.startTime = started - 1
        #expect(try await locker.whyGone(reused)?.contains("that PID is another process now") == true)
        var same = me
        same.id = "other task"
        #expect(try await locker.whyGone(same) == nil)
    }

    @Test func aLockTakenInAnEarlierLifeOfThisContainerIsStale() async throws {
        let locker = StackLocker(store: store, identity: HolderIdentity(id: "now", pid: 7, pidNamespace: "pid:[2]",
                                                                         container: "c1"), logger: log.logger)
        let earlier = StoredLock(id: "l", record: LockRecord(
            stack: "s", holder: HolderIdentity(id: "before", pid: 7, pidNamespace: "pid:[1]", container: "c1"),
            acquiredAt: Date(), expiresAt: Date().addingTimeInterval(60)), expiresAt: Date().addingTimeInterval(60))
        #expect(try await locker.staleness(of: earlier)?.contains("earlier life of this container") == true)
    }

    @Test func stalePartialArchivesOfTheStackAreRemovedAndOthersKept() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("partials-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let old = Date().addingTimeInterval(-600)
        func file(_ stack: String, modified: Date) throws -> String {
            let path = directory.appendingPathComponent(".\(ArchiveName.make(stack: stack, date: old)).partial").path
            FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
            try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: path)
            return path
        }
        let stale = try file("shop", modified: old)
        let fresh = try file("shop", modified: Date())
        let other = try file("shop-2", modified: old)
        let removed = PartialArchives.removeStale(in: directory.path, stack: "shop", olderThan: 60, logger: log.logger)
        #expect(removed == [stale])
        #expect(FileManager.default.fileExists(atPath: fresh) && FileManager.default.fileExists(atPath: other))
    }
}
