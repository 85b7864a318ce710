import Foundation
public import Logging

/// `stackvault daemon` without its process concerns (signals, logging set-up): runs `runner` at each time of
/// `schedule`, never two runs at once, and keeps the state file up to date.
public struct BackupDaemon: Sendable {
    public let schedule: CronSchedule
    public let runner: BackupRun
    public let state: DaemonStateStore
    public let backupOnStart: Bool
    public let logger: Logger
    /// Told about every run that ended, after the state file has it (the metrics endpoint listens here).
    public let onRunEnded: (@Sendable (RunRecord) async -> Void)?

    public init(schedule: CronSchedule, runner: BackupRun, state: DaemonStateStore, backupOnStart: Bool,
                logger: Logger, onRunEnded: (@Sendable (RunRecord) async -> Void)? = nil) {
        self.onRunEnded = onRunEnded
        self.schedule = schedule
        self.runner = runner
        self.state = state
        self.backupOnStart = backupOnStart
        self.logger = logger
    }

    /// Runs until cancelled; returns (throwing `CancellationError`) after the run in progress has ended.
    public func run() async throws {
        let schedule = self.schedule
        let state = self.state
        let runner = self.runner
        let onRunEnded = self.onRunEnded
        let scheduler = RunScheduler(
            nextDue: { schedule.next(after: $0) }, logger: logger,
            onNextDue: { due in await state.update { $0.nextRunDue = due } },
            onSkip: { _ in await state.update { $0.skippedTicks += 1 } })
        try await scheduler.run(runAtStart: backupOnStart) { trigger, due in
            let started = Date()
            await state.update { $0.currentRun = RunStart(trigger: trigger, due: due, startedAt: started) }
            let record = await runner.run(trigger: trigger, due: due)
            await state.update {
                $0.currentRun = nil
                $0.lastRun = record
                if record.succeeded {
                    $0.lastSuccessAt = record.finishedAt
                    $0.containersLeftStopped = nil  // every stack's lock was taken, and with it recovered
                }
            }
            await onRunEnded?(record)
        }
    }
}
