import Foundation
public import Logging
import Synchronization

/// `stackvault daemon` without its process concerns (signals, logging set-up): runs `runner` at each time of
/// `schedule` and for each request (`submit`), never two runs at once, and keeps the state file up to date.
public struct BackupDaemon: Sendable {
    public let schedule: CronSchedule
    public let runner: BackupRun
    public let state: DaemonStateStore
    public let backupOnStart: Bool
    public let logger: Logger
    /// Told about every run that ended, after the state file has it (the metrics endpoint listens here).
    public let onRunEnded: (@Sendable (RunRecord) async -> Void)?
    private let requests = PendingRequests()

    public init(schedule: CronSchedule, runner: BackupRun, state: DaemonStateStore, backupOnStart: Bool,
                logger: Logger, onRunEnded: (@Sendable (RunRecord) async -> Void)? = nil) {
        self.onRunEnded = onRunEnded
        self.schedule = schedule
        self.runner = runner
        self.state = state
        self.backupOnStart = backupOnStart
        self.logger = logger
    }

    /// Asks for a run now for `requests`: it starts at once when no run is going, else right after the run in
    /// progress (all requests that come meanwhile share that one run). Each is recorded in the state file as queued,
    /// or as refused when it names a stack outside the daemon's selection.
    public func submit(_ requests: [RunRequest]) async {
        guard !requests.isEmpty else { return }
        let accepted = await state.update { $0.accept(requests, now: Date()) }
        for request in requests {
            let what = request.stacks.isEmpty ? "the whole selection"
                : "stacks " + request.stacks.joined(separator: ", ")
            if accepted.contains(request) {
                logger.info("run requested (\(request.source), id \(request.id)): \(what)")
            } else {
                let message = "run request \(request.id) (\(request.source)) refused: \(what) not in the daemon's "
                    + "selection"
                logger.error("\(message)")
            }
        }
        guard !accepted.isEmpty else { return }
        self.requests.add(accepted)
    }

    /// Runs until cancelled; returns (throwing `CancellationError`) after the run in progress has ended.
    public func run() async throws {
        let schedule = self.schedule
        let state = self.state
        let scheduler = RunScheduler(
            nextDue: { schedule.next(after: $0) }, logger: logger,
            onNextDue: { due in await state.update { $0.nextRunDue = due } },
            onSkip: { _ in await state.update { $0.skippedTicks += 1 } })
        do {
            try await runJobs(on: scheduler)
        } catch {
            // Shutdown: requests still waiting will not run; say so to whoever waits for them.
            let left = requests.takeAll().map(\.id)
            if !left.isEmpty {
                await state.update {
                    $0.abandon(left, because: "not run: the daemon was stopped (SIGTERM/SIGINT) before its turn",
                               now: Date())
                }
            }
            throw error
        }
    }

    private func runJobs(on scheduler: RunScheduler) async throws {
        try await scheduler.run(runAtStart: backupOnStart, wakeups: requests.wakeups) { trigger, due in
            guard trigger == .request else {
                await perform(trigger: trigger, due: due, runner: runner, serving: [])
                return
            }
            let claimed = requests.takeAll()
            guard !claimed.isEmpty else { return }  // served by the run that just ended
            var runner = self.runner
            if let only = RunRequest.stackFilter(serving: claimed) { runner.stackFilter = only }
            await perform(trigger: trigger, due: due, runner: runner, serving: claimed)
        }
    }

    /// One run, whatever its trigger: recorded in the state file as it starts and ends, then told to `onRunEnded`.
    private func perform(trigger: RunTrigger, due: Date, runner: BackupRun, serving requests: [RunRequest]) async {
        let ids = requests.map(\.id)
        let wholeSelection = runner.stackFilter == self.runner.stackFilter
        let start = RunStart(trigger: trigger, due: due, startedAt: Date())
        await state.update { $0.runStarted(start, requests: ids) }
        let record = await runner.run(trigger: trigger, due: due)
        await state.update { $0.runEnded(record, requests: ids, wholeSelection: wholeSelection) }
        await onRunEnded?(record)
    }
}

/// Requests accepted and not yet run, and the wake-ups that tell the scheduler about them.
private final class PendingRequests: Sendable {
    private let queue = Mutex<[RunRequest]>([])
    let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func add(_ requests: [RunRequest]) {
        queue.withLock { $0 += requests }
        wake.yield()
    }

    func takeAll() -> [RunRequest] {
        queue.withLock { queue in
            defer { queue = [] }
            return queue
        }
    }
}
