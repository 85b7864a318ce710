import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// The daemon's run and its state, against the in-memory Docker engine and lock store.
@Suite struct BackupRunTests {
    let docker = FakeDockerEngine(containers: [
        .fake(name: "app_db_1", project: "app", service: "db",
              labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
              environment: ["POSTGRES_PASSWORD": "pw"]),
        .fake(name: "shop_db_1", project: "shop", service: "db",
              labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
              environment: ["POSTGRES_PASSWORD": "pw"]),
        .fake(name: "broken_x_1", project: "broken", service: "x",
              labels: ["backup.enable": "true", "backup.volume-path.data": "relative/path"]),
    ])
    let target = FileManager.default.temporaryDirectory.appendingPathComponent("sv-daemon-\(UUID().uuidString)")
    let store = InMemoryLockStore()
    let log = RecordingLogHandler()

    init() {
        docker.setExecResult(.init(stdout: StackBackupTests.pgDump), for: "app_db_1")
        docker.setExecResult(.init(stdout: StackBackupTests.pgDump), for: "shop_db_1")
    }

    func runner(stacks: [String]) throws -> BackupRun {
        let strategies = try BuiltinStrategies.registry()
        let stackBackup = StackBackup(
            docker: docker, storage: LocalDirectoryBackend(directory: target.path),
            compressor: try ZstdCompressor(settings: .init(level: 1, threads: 1)),
            configuration: BackupConfiguration(workDirectory: target.path, minimumFreeBytes: 0, hostName: "testhost"),
            logger: log.logger)
        let me = HolderIdentity.current()
        let locker = StackLocker(store: store, identity: me, logger: log.logger)
        return BackupRun(docker: docker, strategies: strategies, stackBackup: stackBackup, locker: locker,
                         stackFilter: stacks, logger: log.logger)
    }

    var archives: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: target.path)) ?? []).filter { $0.hasSuffix(".tar.zst") }
    }

    @Test func backsUpEachStackAndSkipsOnesAnotherStackVaultHolds() async throws {
        defer { try? FileManager.default.removeItem(at: target) }
        store.plant(stack: "shop", holder: StackLockerTests.identity("other-daemon", container: nil),
                    expiresAt: Date().addingTimeInterval(60))
        let due = Date()
        let record = try await runner(stacks: ["app", "shop"]).run(trigger: .schedule, due: due)
        #expect(record.outcome == .succeeded)
        #expect(record.due == due)
        #expect(record.stacks.map(\.stack) == ["app", "shop"])
        #expect(record.stacks.map(\.status) == [.succeeded, .skipped])
        #expect(record.stacks[1].detail?.contains("other-daemon") == true)
        #expect(archives.count == 1 && archives[0].hasPrefix("backup-app-"))
        #expect(store.lockNames == [StackLocker.lockName(for: "shop")], "the run's own lock was not released")
        let lines = log.recorded
        #expect(lines.contains {
            $0.hasPrefix("info backup run started (scheduled") && $0.contains("2 stack(s): app, shop")
        })
        #expect(lines.contains { $0.hasPrefix("warning stack shop skipped: another StackVault") })
        #expect(lines.contains {
            $0.hasPrefix("info backup run finished") && $0.contains("1 stack(s) backed up, 0 failed, 1 skipped")
        })
    }

    @Test func aFailingStackFailsTheRunButNotTheOthers() async throws {
        defer { try? FileManager.default.removeItem(at: target) }
        let record = try await runner(stacks: []).run(trigger: .start, due: Date())
        #expect(record.outcome == .failed)
        #expect(record.stacks.map(\.stack) == ["app", "broken", "shop"])
        #expect(record.stacks.map(\.status) == [.succeeded, .failed, .succeeded])
        #expect(record.stacks[1].detail?.contains("label problems") == true)
        #expect(archives.count == 2)
        #expect(log.recorded.contains { $0.hasPrefix("error backup run finished") })
    }

    @Test func anUnknownStackFailsTheRun() async throws {
        defer { try? FileManager.default.removeItem(at: target) }
        let record = try await runner(stacks: ["app", "nosuch"]).run(trigger: .schedule, due: Date())
        #expect(record.outcome == .failed)
        #expect(record.stacks.first { $0.stack == "nosuch" }?.status == .failed)
    }

    /// The daemon with BACKUP_ON_START: the state file goes from "running" to the run's record, and health
    /// follows it.
    @Test func daemonRecordsItsRunsForHealth() async throws {
        defer { try? FileManager.default.removeItem(at: target) }
        let file = StateFile(path: target.appendingPathComponent("state/state.json").path)
        let schedule = try CronSchedule("0 2 * * *")
        let started = Date()
        let store = DaemonStateStore(
            state: DaemonState(schedule: "0 2 * * *", timeZone: "UTC", host: "h", pid: getpid(),
                               daemonStartedAt: started),
            file: file, logger: log.logger)
        let daemon = BackupDaemon(schedule: schedule, runner: try runner(stacks: ["app"]), state: store,
                                  backupOnStart: true, logger: log.logger)
        try await store.save()
        let task = Task { try await daemon.run() }
        var state = try file.read()
        for _ in 0..<100 where state.lastRun == nil {
            try await Task.sleep(for: .milliseconds(50))
            state = try file.read()
        }
        task.cancel()
        _ = await task.result
        let last = try #require(state.lastRun)
        #expect(last.trigger == .start && last.outcome == .succeeded)
        #expect(state.currentRun == nil)
        #expect(state.lastSuccessAt != nil)
        #expect(state.nextRunDue == schedule.next(after: started))
        #expect(HealthCheck.evaluate(state, now: Date()).healthy)

        // A failing run turns health red.
        let failing = DaemonStateStore(state: state, file: file, logger: log.logger)
        let failedRun = try await runner(stacks: ["broken"]).run(trigger: .schedule, due: Date())
        await failing.update { $0.lastRun = failedRun }
        let report = HealthCheck.evaluate(try file.read(), now: Date())
        #expect(!report.healthy)
        #expect(report.message.contains("stack broken"))
    }
}
