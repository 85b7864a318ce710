import Foundation
import StackVaultCore
import Testing

@Suite struct DaemonHealthTests {
    static func date(_ text: String) -> Date { CronFixtures.utc(text) }

    /// A daily 02:00 UTC daemon started Monday 2024-01-15 01:00.
    static func state(lastRun: RunRecord? = nil, current: RunStart? = nil) -> DaemonState {
        var state = DaemonState(schedule: "0 2 * * *", timeZone: "UTC", host: "h", pid: 1,
                                daemonStartedAt: date("2024-01-15 01:00"))
        state.lastRun = lastRun
        state.currentRun = current
        state.nextRunDue = date("2024-01-16 02:00")
        return state
    }

    static func run(due: String, outcome: RunOutcome, stacks: [StackOutcome] = [], error: String? = nil)
        -> RunRecord
    {
        RunRecord(trigger: .schedule, due: date(due), startedAt: date(due),
                  finishedAt: date(due).addingTimeInterval(600), outcome: outcome, error: error, stacks: stacks)
    }

    func verdict(_ state: DaemonState, at now: String) -> HealthReport {
        HealthCheck.evaluate(state, now: Self.date(now))
    }

    @Test func healthyWhileWaitingForTheFirstRun() {
        // Started Monday 01:00: first run due Monday 02:00; overdue from Tuesday 02:00.
        #expect(verdict(Self.state(), at: "2024-01-15 01:30").healthy)
        #expect(verdict(Self.state(), at: "2024-01-16 01:59").healthy)
        let late = verdict(Self.state(), at: "2024-01-16 02:00")
        #expect(!late.healthy)
        #expect(late.message.contains("no backup run has ended since 2024-01-15T01:00:00+00:00"))
        #expect(late.message.contains("the run due 2024-01-15T02:00:00+00:00 should have ended by "
            + "2024-01-16T02:00:00+00:00"))
    }

    @Test func containersADeadStackVaultLeftStoppedAreUnhealthy() {
        var state = Self.state()
        state.containersLeftStopped = ["shop-web-1: Docker could not start it"]
        let verdict = verdict(state, at: "2024-01-15 01:30")
        #expect(!verdict.healthy)
        #expect(verdict.message.contains("shop-web-1") && verdict.message.contains("still down"))
    }

    @Test func aSucceededRunIsGoodUntilTheSecondScheduleTimeAfterItsDueTime() {
        let state = Self.state(lastRun: Self.run(due: "2024-01-15 02:00", outcome: .succeeded,
                                                 stacks: [.init(stack: "app", status: .succeeded)]))
        let ok = verdict(state, at: "2024-01-16 12:00")  // Tuesday's run may still be going
        #expect(ok.healthy)
        #expect(ok.message.contains("1 stack(s) backed up"))
        #expect(verdict(state, at: "2024-01-17 01:59").healthy)
        #expect(!verdict(state, at: "2024-01-17 02:00").healthy)
    }

    @Test func aFailedRunIsUnhealthyAtOnceAndNamesTheStack() {
        let state = Self.state(lastRun: Self.run(
            due: "2024-01-15 02:00", outcome: .failed,
            stacks: [.init(stack: "app", status: .succeeded),
                     .init(stack: "shop", status: .failed, detail: "pg_dumpall failed in service db")]))
        let report = verdict(state, at: "2024-01-15 02:20")
        #expect(!report.healthy)
        #expect(report.message.contains("failed: stack shop: pg_dumpall failed in service db"))
        #expect(!report.message.contains("stack app"))
    }

    @Test func aRunThatCouldNotListContainersIsUnhealthy() {
        let state = Self.state(lastRun: Self.run(due: "2024-01-15 02:00", outcome: .failed,
                                                 error: "cannot list the containers: cannot connect"))
        #expect(verdict(state, at: "2024-01-15 02:20").message.contains("cannot connect"))
    }

    @Test func anInterruptedRunIsUnhealthy() {
        let state = Self.state(lastRun: Self.run(due: "2024-01-15 02:00", outcome: .interrupted))
        let report = verdict(state, at: "2024-01-15 03:00")
        #expect(!report.healthy)
        #expect(report.message.contains("interrupted"))
    }

    @Test func skippedStacksDoNotFailARun() {
        let state = Self.state(lastRun: Self.run(due: "2024-01-15 02:00", outcome: .succeeded,
                                                 stacks: [.init(stack: "app", status: .skipped, detail: "held")]))
        let report = verdict(state, at: "2024-01-15 03:00")
        #expect(report.healthy)
        #expect(report.message.contains("1 skipped"))
    }

    @Test func aRunInProgressMovesTheDeadlineUntilItOverstays() {
        let state = Self.state(
            lastRun: Self.run(due: "2024-01-15 02:00", outcome: .succeeded),
            current: RunStart(trigger: .schedule, due: Self.date("2024-01-16 02:00"),
                              startedAt: Self.date("2024-01-16 02:00")))
        #expect(verdict(state, at: "2024-01-17 12:00").healthy)
        let stuck = verdict(state, at: "2024-01-18 02:00")
        #expect(!stuck.healthy)
        #expect(stuck.message.contains("a backup run has been going since 2024-01-16T02:00:00+00:00"))
    }

    @Test func aRestartedDaemonCountsFromItsStartButRemembersFailures() {
        var state = Self.state(lastRun: Self.run(due: "2024-01-01 02:00", outcome: .succeeded))
        state.daemonStartedAt = Self.date("2024-01-15 01:00")
        #expect(verdict(state, at: "2024-01-15 12:00").healthy)
        state.lastRun = Self.run(due: "2024-01-01 02:00", outcome: .failed)
        #expect(!verdict(state, at: "2024-01-15 12:00").healthy)
    }

    @Test func timesAreShownInTheScheduleZone() {
        var state = Self.state(lastRun: Self.run(due: "2024-07-01 00:00", outcome: .failed))
        state.timeZone = "Europe/Berlin"
        #expect(verdict(state, at: "2024-07-01 00:30").message.contains("due 2024-07-01T02:00:00+02:00"))
    }

    @Test func stateFileRoundTripsAtomically() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sv-state-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = StateFile(path: directory.appendingPathComponent("sub/state.json").path)
        let state = Self.state(lastRun: Self.run(due: "2024-01-15 02:00", outcome: .succeeded,
                                                 stacks: [.init(stack: "a", status: .succeeded, archive: "x.tar.zst",
                                                                sizeBytes: 10, durationSeconds: 1.5)]))
        try file.write(state)
        try file.write(state)
        #expect(try file.read() == state)
        // Nothing but the state file is left in its directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("sub").path)
            == ["state.json"])
        let json = try String(contentsOfFile: file.path, encoding: .utf8)
        #expect(json.contains("\"due\" : \"2024-01-15T02:00:00Z\""))
    }

    @Test func stateFileErrorsSayWhatToDo() {
        let missing = StateFile(path: "/nonexistent-\(UUID().uuidString)/state.json")
        #expect { try missing.read() } throws: { "\($0)".contains("does not exist") && "\($0)".contains("STATE_FILE") }
        #expect(StateFile(environment: [:]).path == "/var/lib/stackvault/state.json")
        #expect(StateFile(environment: ["STATE_FILE": "/tmp/x.json"]).path == "/tmp/x.json")
    }
}
