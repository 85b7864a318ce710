import Foundation
import Logging
import StackVaultCore
import StackVaultMetrics
import StackVaultTestKit
import Synchronization
import Testing

/// Runs asked of the daemon (`stackvault run-now`, SIGUSR1): the stack selection (`--stack`, `STACKS`), the request
/// files, the pid file, how the state records requested runs, and the scheduler's queue of one.
@Suite struct RunRequestTests {
    static func date(_ text: String) -> Date { CronFixtures.utc(text) }

    static func temporary() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sv-runnow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    // MARK: - STACKS and --stack

    @Test func stacksIsACommaOrSpaceSeparatedListOfNames() throws {
        #expect(try StackSelection.parse("app,shop") == ["app", "shop"])
        #expect(try StackSelection.parse(" app  shop,\tdb_1 , ") == ["app", "shop", "db_1"])
        #expect(try StackSelection.parse("app,app,web.1") == ["app", "web.1"])
        #expect(try StackSelection.parse("") == [])
        #expect(try StackSelection.parse(nil) == [])
    }

    @Test func aBadStacksValueNamesTheVariableTheNameAndTheForm() {
        #expect {
            try StackSelection.parse("app;shop")
        } throws: { error in
            let text = "\(error)"
            return (error as? StackVaultError)?.code == .invalidConfiguration && text.contains("STACKS='app;shop'")
                && text.contains("'app;shop' is not a stack name") && text.contains("commas or spaces")
        }
        #expect(throws: StackVaultError.self) { try StackSelection.parse("-app") }
    }

    @Test func theOptionWinsOverTheVariableWhichWinsOverEverything() throws {
        let environment = ["STACKS": "app, shop"]
        let fromOption = try StackSelection.resolve(options: ["db", "db"], environment: environment)
        #expect(fromOption == StackSelection(stacks: ["db"], source: .option))
        let fromVariable = try StackSelection.resolve(options: [], environment: environment)
        #expect(fromVariable == StackSelection(stacks: ["app", "shop"], source: .variable))
        #expect(fromVariable.description == "stacks app, shop (from STACKS)")
        #expect(fromVariable.contains("shop") && !fromVariable.contains("db"))
        let all = try StackSelection.resolve(options: [], environment: ["STACKS": " "])
        #expect(all.isAll && all.source == .all && all.contains("anything"))
        #expect(all.description == "every labelled stack")
    }

    // MARK: - Requests

    static func request(_ id: String, _ stacks: [String], at time: String = "2024-01-15 10:00") -> RunRequest {
        RunRequest(id: id, stacks: stacks, requestedAt: date(time), source: "run-now")
    }

    @Test func oneRunServesAllRequestsWithTheUnionOfTheirStacks() {
        #expect(RunRequest.stackFilter(serving: [Self.request("a", ["app"]), Self.request("b", ["shop", "app"])])
            == ["app", "shop"])
        #expect(RunRequest.stackFilter(serving: [Self.request("a", ["app"]), Self.request("b", [])]) == nil)
        #expect(RunRequest.outside(["app", "shop"], ["app", "db", "x"]) == ["db", "x"])
        #expect(RunRequest.outside([], ["anything"]) == [])
    }

    @Test func requestFilesAreTakenOnceOldestFirstAndJunkIsRemoved() throws {
        let directory = try Self.temporary()
        defer { try? FileManager.default.removeItem(at: directory) }
        let inbox = RunRequestInbox(stateFile: StateFile(path: directory.appendingPathComponent("state.json").path))
        #expect(inbox.directory == directory.appendingPathComponent("state.json.requests").path)
        #expect(inbox.takeAll().requests.isEmpty, "a missing directory is an empty inbox")
        try inbox.put(Self.request("zz-late", ["shop"], at: "2024-01-15 10:05"))
        try inbox.put(Self.request("aa-early", [], at: "2024-01-15 10:00"))
        try inbox.put(Self.request("gone", ["app"]))
        #expect(inbox.withdraw("gone"))
        #expect(!inbox.withdraw("gone"))
        try Data("not json".utf8).write(to: URL(fileURLWithPath: inbox.directory + "/junk.json"))

        let (requests, unreadable) = inbox.takeAll()
        #expect(requests.map(\.id) == ["aa-early", "zz-late"])
        #expect(requests.last?.stacks == ["shop"])
        #expect(unreadable.count == 1 && unreadable[0].hasPrefix("junk.json:"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: inbox.directory).isEmpty)
        #expect(inbox.takeAll().requests.isEmpty)
    }

    @Test func aRequestThatCannotBeLeftSaysWhereAndWhatToDo() throws {
        let directory = try Self.temporary()
        defer { try? FileManager.default.removeItem(at: directory) }
        let blocker = directory.appendingPathComponent("state.json.requests")
        try Data().write(to: blocker)  // a file where the directory should be
        let inbox = RunRequestInbox(stateFile: StateFile(path: directory.appendingPathComponent("state.json").path))
        #expect {
            try inbox.put(Self.request("x", []))
        } throws: { error in
            "\(error)".contains(blocker.path) && "\(error)".contains("docker exec <sidecar> stackvault run-now")
        }
    }

    // MARK: - The pid file

    @Test func thePidFileNamesTheDaemonAndIsRemovedOnlyByItsOwner() throws {
        let directory = try Self.temporary()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = DaemonPIDFile(stateFile: StateFile(path: directory.appendingPathComponent("state.json").path))
        #expect(pidFile.path.hasSuffix("/state.json.pid"))
        #expect {
            try pidFile.runningDaemon()
        } throws: { error in
            let text = "\(error)"
            return text.contains("no StackVault daemon is running") && text.contains(pidFile.path)
                && text.contains("docker exec <sidecar> stackvault run-now") && text.contains("stackvault daemon")
        }
        try pidFile.write(pid: getpid())
        #expect(pidFile.read() == getpid())
        #expect(try pidFile.runningDaemon() == getpid())
        pidFile.remove(ifNaming: getpid() + 1)
        #expect(pidFile.read() == getpid(), "a daemon removed another one's pid file")
        pidFile.remove(ifNaming: getpid())
        #expect(pidFile.read() == nil)
    }

    @Test func aPidFileLeftByAKilledDaemonIsReportedAsSuch() throws {
        let directory = try Self.temporary()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = DaemonPIDFile(stateFile: StateFile(path: directory.appendingPathComponent("state.json").path))
        try pidFile.write(pid: Int32.max)  // above any pid_max: no such process
        #expect {
            try pidFile.runningDaemon()
        } throws: { error in
            "\(error)".contains("process \(Int32.max), named in \(pidFile.path), does not exist")
        }
    }

    // MARK: - The state

    /// A daily 02:00 UTC daemon of `app` and `shop`, started Monday 2024-01-15 01:00.
    static func state(selection: [String]? = ["app", "shop"]) -> DaemonState {
        var state = DaemonState(schedule: "0 2 * * *", timeZone: "UTC", host: "h", pid: 1,
                                daemonStartedAt: date("2024-01-15 01:00"))
        state.selectedStacks = selection
        return state
    }

    static func record(_ trigger: RunTrigger, due: String, _ stacks: [(String, StackOutcome.Status)]) -> RunRecord {
        let outcomes = stacks.map {
            StackOutcome(stack: $0.0, status: $0.1, detail: $0.1 == .failed ? "disk full" : nil)
        }
        return RunRecord(trigger: trigger, due: date(due), startedAt: date(due),
                         finishedAt: date(due).addingTimeInterval(60),
                         outcome: outcomes.contains { $0.status == .failed } ? .failed : .succeeded, stacks: outcomes)
    }

    @Test func aRequestOutsideTheSelectionIsRefusedAndNamesTheStacks() {
        var state = Self.state()
        let accepted = state.accept([Self.request("ok", ["app"]), Self.request("bad", ["app", "db"])],
                                    now: Self.date("2024-01-15 10:00"))
        #expect(accepted.map(\.id) == ["ok"])
        #expect(state.request("ok")?.phase == .queued)
        let refused = state.request("bad")
        #expect(refused?.phase == .finished && refused?.succeeded == false)
        #expect(refused?.error == "not in the daemon's selection (app, shop): db")
        #expect(refused?.summaries.map(\.stack) == ["(all)"])
    }

    @Test func aRequestedRunIsRecordedLikeAScheduledOneWithEachRequestsStacks() {
        var state = Self.state()
        _ = state.accept([Self.request("one", ["app"]), Self.request("all", [])], now: Self.date("2024-01-15 10:00"))
        let at = Self.date("2024-01-15 10:00")
        let start = RunStart(trigger: .request, due: at, startedAt: at)
        state.runStarted(start, requests: ["one", "all"])
        #expect(state.currentRun == start)
        #expect(state.request("one")?.phase == .running)
        let record = Self.record(.request, due: "2024-01-15 10:00", [("app", .succeeded), ("shop", .failed)])
        state.runEnded(record, requests: ["one", "all"], wholeSelection: true)

        #expect(state.currentRun == nil && state.lastRun == record)
        #expect(state.lastSuccessAt == nil)
        let one = state.request("one")
        #expect(one?.phase == .finished && one?.outcome == .failed && one?.succeeded == true)
        #expect(one?.results.map(\.stack) == ["app"])
        let all = state.request("all")
        #expect(all?.results.map(\.stack) == ["app", "shop"] && all?.succeeded == false)
        #expect(!HealthCheck.evaluate(state, now: Self.date("2024-01-15 10:05")).healthy)
    }

    @Test func aRunOfSomeStacksKeepsTheOthersFailuresUntilARunCoversThem() {
        var state = Self.state()
        state.containersLeftStopped = ["app-web-1: no such container"]
        state.runEnded(Self.record(.schedule, due: "2024-01-15 02:00", [("app", .failed), ("shop", .failed)]),
                       requests: [], wholeSelection: true)
        // run-now --stack shop: shop is fine again, app is not.
        state.runEnded(Self.record(.request, due: "2024-01-15 10:00", [("shop", .succeeded)]),
                       requests: [], wholeSelection: false)
        #expect(state.lastRun?.succeeded == true)
        #expect(state.unresolvedFailures == [UnresolvedFailure(stack: "app", due: Self.date("2024-01-15 02:00"),
                                                                error: "disk full")])
        #expect(state.containersLeftStopped != nil, "a run of some stacks did not take every lock")
        state.containersLeftStopped = nil  // (health would report those first)
        let report = HealthCheck.evaluate(state, now: Self.date("2024-01-15 10:05"))
        #expect(!report.healthy)
        #expect(report.message.contains("stack app failed in the run due 2024-01-15T02:00"), "\(report.message)")

        // Another partial run, of shop again, keeps app's failure; one of app resolves it.
        state.runEnded(Self.record(.request, due: "2024-01-15 11:00", [("shop", .succeeded)]),
                       requests: [], wholeSelection: false)
        #expect(state.unresolvedFailures?.map(\.stack) == ["app"])
        state.runEnded(Self.record(.request, due: "2024-01-15 12:00", [("app", .succeeded)]),
                       requests: [], wholeSelection: false)
        #expect(state.unresolvedFailures == nil)
        #expect(HealthCheck.evaluate(state, now: Self.date("2024-01-15 12:05")).healthy)

        // A scheduled run covers the whole selection: it clears both.
        state.runEnded(Self.record(.request, due: "2024-01-15 13:00", [("shop", .failed)]), requests: [],
                       wholeSelection: false)
        state.runEnded(Self.record(.schedule, due: "2024-01-16 02:00", [("app", .succeeded), ("shop", .succeeded)]),
                       requests: [], wholeSelection: true)
        #expect(state.unresolvedFailures == nil)
        state.containersLeftStopped = ["app-web-1: no such container"]
        state.runEnded(Self.record(.schedule, due: "2024-01-17 02:00", [("app", .succeeded), ("shop", .succeeded)]),
                       requests: [], wholeSelection: true)
        #expect(state.containersLeftStopped == nil)
    }

    @Test func onlyTheNewestFinishedRequestsAreKept() {
        var state = Self.state(selection: nil)
        for index in 0..<(DaemonState.finishedRequestsKept + 5) {
            _ = state.accept([Self.request("r\(index)", [])], now: Self.date("2024-01-15 10:00"))
            state.runEnded(Self.record(.request, due: "2024-01-15 10:00", [("app", .succeeded)]),
                           requests: ["r\(index)"], wholeSelection: true)
        }
        _ = state.accept([Self.request("waiting", [])], now: Self.date("2024-01-15 10:00"))
        #expect(state.requests?.count == DaemonState.finishedRequestsKept + 1)
        #expect(state.requests?.first?.id == "r5" && state.requests?.last?.id == "waiting")
    }

    // MARK: - The scheduler's queue of one

    @Test func requestsDuringARunAddUpToOneMoreRunAndRunsNeverOverlap() async throws {
        let journal = RunSchedulerTests.Journal()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self)
        let far: @Sendable (Date) -> Date? = { $0.addingTimeInterval(86_400) }
        let scheduler = RunScheduler(nextDue: far, logger: Logger(label: "test"))
        let job = journal.job(duration: .milliseconds(300))
        let task = Task { try await scheduler.run(runAtStart: false, wakeups: wakeups, job: job) }
        let count = { journal.entries.withLock { $0.count } }
        wake.yield()
        while count() < 1 { try await Task.sleep(for: .milliseconds(10)) }
        for _ in 0..<5 { wake.yield() }  // during the first run
        while count() < 2 { try await Task.sleep(for: .milliseconds(10)) }
        // The second run ends; nothing more was asked for, so nothing more runs.
        while journal.running.withLock({ $0.now }) > 0 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        _ = await task.result
        #expect(count() == 2)
        #expect(journal.entries.withLock { $0.map(\.trigger) } == [.request, .request])
        #expect(journal.running.withLock { $0.maximum } == 1)
    }

    @Test func aRequestDuringAStartUpRunWaitsForIt() async throws {
        let journal = RunSchedulerTests.Journal()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self)
        let scheduler = RunScheduler(nextDue: { $0.addingTimeInterval(86_400) }, logger: Logger(label: "test"))
        let task = Task {
            try await scheduler.run(runAtStart: true, wakeups: wakeups, job: journal.job(duration: .milliseconds(200)))
        }
        while journal.entries.withLock({ $0.count }) < 1 { try await Task.sleep(for: .milliseconds(10)) }
        wake.yield()
        while journal.entries.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        _ = await task.result
        #expect(journal.entries.withLock { $0.map(\.trigger) } == [.start, .request])
        #expect(journal.running.withLock { $0.maximum } == 1)
    }

    @Test func aRequestWaitingAtShutdownStartsNoRun() async throws {
        let journal = RunSchedulerTests.Journal()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self)
        let scheduler = RunScheduler(nextDue: { $0.addingTimeInterval(86_400) }, logger: Logger(label: "test"))
        let task = Task {
            try await scheduler.run(runAtStart: false, wakeups: wakeups, job: journal.job(duration: .seconds(30)))
        }
        wake.yield()
        while journal.entries.withLock({ $0.count }) < 1 { try await Task.sleep(for: .milliseconds(10)) }
        wake.yield()  // waits behind the first run
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        _ = await task.result
        #expect(journal.entries.withLock { $0.count } == 1, "a run started after shutdown")
        #expect(journal.cancelledRuns.withLock { $0 } == 1)
    }

    @Test func requestsLeftAtShutdownAreFinishedWithTheReason() {
        var state = Self.state()
        _ = state.accept([Self.request("late", ["app"])], now: Self.date("2024-01-15 10:00"))
        state.abandon(["late"], because: "not run: the daemon was stopped", now: Self.date("2024-01-15 10:01"))
        let late = state.request("late")
        #expect(late?.phase == .finished && late?.succeeded == false)
        #expect(late?.summaries.first?.error == "not run: the daemon was stopped")
    }

    // MARK: - The daemon, end to end with fakes

    @Test func aRequestedRunGoesToTheStateFileAndTheMetricsLikeAScheduledOne() async throws {
        let fixture = BackupRunTests()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        let directory = try Self.temporary()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = StateFile(path: directory.appendingPathComponent("state.json").path)
        var initial = DaemonState(schedule: "0 3 1 1 *", timeZone: "UTC", host: "testhost", pid: getpid(),
                                  daemonStartedAt: Date())
        initial.selectedStacks = ["app", "shop"]
        let store = DaemonStateStore(state: initial, file: file, logger: fixture.log.logger)
        let metrics = BackupMetrics(host: "testhost")
        let daemon = BackupDaemon(
            schedule: try CronSchedule("0 3 1 1 *", timeZone: try ScheduleTimeZone(identifier: "UTC")),
            runner: try fixture.runner(stacks: ["app", "shop"]), state: store, backupOnStart: false,
            logger: fixture.log.logger, onRunEnded: { metrics.record($0) })
        let task = Task { try await daemon.run() }
        defer { task.cancel() }

        await daemon.submit([Self.request("mine", ["app"]), Self.request("wrong", ["broken"])])
        var state = try file.read()
        let deadline = Date().addingTimeInterval(30)
        while state.request("mine")?.phase != .finished && Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
            state = try file.read()
        }
        let mine = try #require(state.request("mine"))
        #expect(mine.phase == .finished && mine.succeeded, "\(mine)")
        #expect(mine.results.map(\.stack) == ["app"])
        #expect(state.lastRun?.trigger == .request && state.lastRun?.stacks.map(\.stack) == ["app"])
        #expect(state.lastSuccessAt == state.lastRun?.finishedAt)
        #expect(state.request("wrong")?.error?.contains("broken") == true)
        #expect(fixture.archives.count == 1)

        let samples = try MetricsTests.samples(metrics)
        let app = "{host=\"testhost\",stack=\"app\"}"
        #expect(samples["stackvault_runs_total{host=\"testhost\",outcome=\"succeeded\"}"] == 1)
        #expect(samples["stackvault_stack_archives\(app)"] == 1)
        #expect((samples["stackvault_stack_last_archive_size_bytes\(app)"] ?? 0) > 0)
        #expect(samples["stackvault_stack_archives{host=\"testhost\",stack=\"shop\"}"] == nil)
    }
}
