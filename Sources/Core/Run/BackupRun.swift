public import Foundation
public import Logging

/// One backup run, for `stackvault backup` and for each run of the daemon alike: lists the labelled stacks, and
/// backs up each one (`StackBackup`) while holding its lock, with a plan made right after taking the lock (another
/// StackVault may have changed the containers meanwhile). One stack's failure never stops the others.
///
/// Its result, `RunRecord`, is what the state file, the metrics, the notifications and the `backup` summary read.
/// Logs a start line, one line per stack (the stack's own, or why it was skipped) and a summary.
///
/// Steps: notify "started" → scale back Swarm services a killed run left at 0 → list the stacks → for each stack:
/// lock → plan → `StackBackup.backup` → unlock →
/// summarise → notify "finished". SIGTERM (task cancellation) lets the stack in progress clean up (see
/// `StackBackupSteps`), marks the stacks after it `cancelled`, and ends the run `interrupted`.
public struct BackupRun: Sendable {
    /// How a stack is reported when another StackVault holds its lock.
    public enum BusyStack: Sendable {
        /// Skipped with a warning; the run still succeeds (the daemon: the other StackVault is backing it up).
        case skip
        /// Failed, with "try again when it is done" (`stackvault backup`: the user asked for this stack now).
        case fail
    }

    public let docker: any DockerEngine
    public let strategies: StrategyRegistry
    /// Backs up one stack.
    public let stackBackup: StackBackup
    /// Nil: no lock across processes (one StackVault per host guaranteed by other means).
    public let locker: StackLocker?
    /// Stacks to back up; empty = all.
    public var stackFilter: [String]
    /// Told when a run starts and how it ended (`NOTIFY_URLS`); nil = nobody.
    public let notifier: Notifier?
    public let busyStack: BusyStack
    public let logger: Logger
    /// Seconds after which an upload no run finished counts as abandoned (a day: no upload lasts that long).
    public static let abandonedUploadAge = 86_400.0

    public init(docker: any DockerEngine, strategies: StrategyRegistry, stackBackup: StackBackup,
                locker: StackLocker?, stackFilter: [String] = [], notifier: Notifier? = nil,
                busyStack: BusyStack = .skip, logger: Logger) {
        self.docker = docker
        self.strategies = strategies
        self.stackBackup = stackBackup
        self.locker = locker
        self.stackFilter = stackFilter
        self.notifier = notifier
        self.busyStack = busyStack
        self.logger = logger
    }

    /// Runs once; `due` is the schedule time the run is for (for other runs, when it started).
    public func run(trigger: RunTrigger, due: Date) async -> RunRecord {
        await notifier?.runStarted()
        let record = await backUpStacks(trigger: trigger, due: due)
        await notifier?.runFinished(record, host: stackBackup.configuration.hostName)
        return record
    }

    private func backUpStacks(trigger: RunTrigger, due: Date) async -> RunRecord {
        let started = Date()
        let clock = ContinuousClock.now
        var log = logger
        log[metadataKey: "run"] = "\(due.iso8601)"
        let planner = Planner(docker: docker, strategies: strategies)

        // A Swarm service that a killed run of this host left scaled to 0 runs again first (and is backed up).
        await SwarmScaleGuard.recoverInterrupted(docker: docker, host: stackBackup.configuration.hostName,
                                                 locker: locker, logger: log)

        // List the stacks.
        let names: [String]
        do {
            names = try await planner.makePlan().stacks.map(\.name)
                .filter { stackFilter.isEmpty || stackFilter.contains($0) }
        } catch {
            log.error("backup run due \(due.iso8601) failed: cannot list the containers: \(error)")
            return RunRecord(trigger: trigger, due: due, startedAt: started, finishedAt: Date(), outcome: .failed,
                             error: "cannot list the containers: \(error)", stacks: [])
        }
        let missing = stackFilter.filter { !names.contains($0) }
        let why = switch trigger {
        case .start: "BACKUP_ON_START"
        case .schedule: "scheduled"
        case .manual: "stackvault backup"
        case .request: "requested"
        }
        let startLine = "backup run started (\(why), due \(due.iso8601)): "
            + "\(names.count) stack(s)\(names.isEmpty ? "" : ": " + names.joined(separator: ", ")) to "
            + stackBackup.storage.description
        log.info("\(startLine)")
        if names.isEmpty && stackFilter.isEmpty {
            log.warning("no container is labelled backup.enable=true: nothing to back up")
        }
        // Uploads of runs that died mid-upload (S3 keeps and bills their parts until aborted).
        do {
            _ = try await stackBackup.storage.abortAbandonedUploads(olderThan: Self.abandonedUploadAge)
        } catch {
            log.warning("could not look for abandoned uploads in \(stackBackup.storage.description): \(error)")
        }

        // Back each stack up.
        var outcomes: [StackOutcome] = missing.map { name in
            log.error("stack \(name) failed: no labelled container belongs to it")
            return StackOutcome(stack: name, status: .failed, detail: "no container labelled backup.enable=true "
                + "belongs to this stack")
        }
        for name in names {
            if Task.isCancelled {
                outcomes.append(StackOutcome(stack: name, status: .cancelled,
                                             detail: "not started: the run was stopped (SIGTERM/SIGINT)"))
                continue
            }
            outcomes.append(await backUpLocked(name, planner: planner, logger: log))
        }

        // Summarise.
        let outcome: RunOutcome = Task.isCancelled ? .interrupted
            : outcomes.contains { $0.status == .failed } ? .failed : .succeeded
        let count = { (status: StackOutcome.Status) in outcomes.filter { $0.status == status }.count }
        let elapsed = String(format: "%.1f", (ContinuousClock.now - clock).seconds)
        let summary = "backup run \(outcome == .interrupted ? "interrupted" : "finished") in \(elapsed) s: "
            + "\(count(.succeeded)) stack(s) backed up, \(count(.failed)) failed, \(count(.skipped)) skipped "
            + "(another StackVault was backing them up)"
            + (count(.cancelled) > 0 ? ", \(count(.cancelled)) not started" : "")
        if outcome == .succeeded { log.info("\(summary)") } else { log.error("\(summary)") }
        return RunRecord(trigger: trigger, due: due, startedAt: started, finishedAt: Date(), outcome: outcome,
                         stacks: outcomes)
    }

    /// Backs up the stack `name` while holding its lock (released on every path by `StackLocker.withLock`).
    private func backUpLocked(_ name: String, planner: Planner, logger log: Logger) async -> StackOutcome {
        guard let locker else { return await backUpFreshlyPlanned(name, planner: planner, logger: log) }
        do {
            let outcome = try await locker.withLock(on: name) {
                await backUpFreshlyPlanned(name, planner: planner, logger: log)
            }
            switch outcome {
            case .ran(let outcome):
                return outcome
            case .busy(let lock):
                let detail = lock.record.busyDescription
                switch busyStack {
                case .skip:
                    log.warning("stack \(name) skipped: \(detail)")
                    return StackOutcome(stack: name, status: .skipped, detail: detail)
                case .fail:
                    log.error("stack \(name) failed: \(detail)")
                    return StackOutcome(stack: name, status: .failed, detail: "\(detail); try again when it is done")
                }
            }
        } catch {
            log.error("stack \(name) failed: could not take its lock: \(error)")
            return StackOutcome(stack: name, status: .failed, detail: "could not take its lock: \(error)")
        }
    }

    /// Plans the stack `name` again (its containers may have changed while waiting for the lock) and backs it up.
    private func backUpFreshlyPlanned(_ name: String, planner: Planner, logger log: Logger) async -> StackOutcome {
        let stack: StackPlan
        do {
            guard let fresh = try await planner.makePlan().stack(named: name) else {
                log.warning("stack \(name) skipped: no container is labelled for it any more")
                return StackOutcome(stack: name, status: .skipped, detail: "no container is labelled for it any more")
            }
            stack = fresh
        } catch {
            log.error("stack \(name) failed: cannot inspect its containers: \(error)")
            return StackOutcome(stack: name, status: .failed, detail: "cannot inspect its containers: \(error)")
        }
        return await stackBackup.backup(stack)
    }
}
