public import Foundation
public import Logging

/// One backup run of the daemon: discovers the labelled stacks, and backs up each one while holding its lock,
/// with a plan made right after taking the lock (another StackVault may have changed the containers meanwhile).
///
/// Logs a start line, one line per stack (the engine's, or why it was skipped) and a summary.
public struct DaemonBackupRunner: Sendable {
    public let docker: any DockerEngine
    public let strategies: StrategyRegistry
    public let engine: BackupEngine
    /// Nil: no lock across processes (one StackVault per host guaranteed by other means).
    public let locker: StackLocker?
    /// Stacks to back up; empty = all.
    public let stackFilter: [String]
    /// Told when a run starts and how it ended (`NOTIFY_URLS`); nil = nobody.
    public let notifier: Notifier?
    public let logger: Logger

    public init(docker: any DockerEngine, strategies: StrategyRegistry, engine: BackupEngine, locker: StackLocker?,
                stackFilter: [String] = [], notifier: Notifier? = nil, logger: Logger) {
        self.notifier = notifier
        self.docker = docker
        self.strategies = strategies
        self.engine = engine
        self.locker = locker
        self.stackFilter = stackFilter
        self.logger = logger
    }

    public func run(trigger: RunTrigger, due: Date) async -> RunRecord {
        await notifier?.runStarted()
        let record = await runStacks(trigger: trigger, due: due)
        if let notifier {
            let failure = record.error.map {
                [StackResult(stack: "(all)", services: 0, archive: nil, sizeBytes: 0, durationSeconds: 0,
                             downtimeSeconds: 0, warnings: [], error: $0)]
            } ?? []
            await notifier.runFinished(RunSummary(
                host: engine.configuration.hostName, startedAt: record.startedAt, finishedAt: record.finishedAt,
                stacks: failure + record.stacks.map { outcome in
                    StackResult(stack: outcome.stack, services: 0, archive: outcome.archive,
                                sizeBytes: outcome.sizeBytes ?? 0, durationSeconds: outcome.durationSeconds ?? 0,
                                downtimeSeconds: outcome.downtimeSeconds ?? 0,
                                warnings: outcome.status == .skipped ? [outcome.detail ?? ""] : [],
                                error: outcome.status == .failed || outcome.status == .cancelled
                                    ? outcome.detail ?? outcome.status.rawValue : nil,
                                bytesRead: outcome.bytesRead ?? 0, bytesWritten: outcome.bytesWritten ?? 0,
                                containersStopped: outcome.containersStopped ?? 0)
                }))
        }
        return record
    }

    private func runStacks(trigger: RunTrigger, due: Date) async -> RunRecord {
        let started = Date()
        let clock = ContinuousClock.now
        var log = logger
        log[metadataKey: "run"] = "\(due.iso8601)"
        let planner = Planner(docker: docker, strategies: strategies)
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
        let why = trigger == .start ? "BACKUP_ON_START" : "scheduled"
        let startLine = "backup run started (\(why), due \(due.iso8601)): "
            + "\(names.count) stack(s)\(names.isEmpty ? "" : ": " + names.joined(separator: ", ")) to "
            + engine.storage.description
        log.info("\(startLine)")
        if names.isEmpty && stackFilter.isEmpty {
            log.warning("no container is labelled backup.enable=true: nothing to back up")
        }
        var outcomes: [StackOutcome] = missing.map { name in
            log.error("stack \(name) failed: no labelled container belongs to it")
            return StackOutcome(stack: name, status: .failed, detail: "no container labelled backup.enable=true "
                + "belongs to this stack")
        }
        for name in names {
            if Task.isCancelled {
                outcomes.append(StackOutcome(stack: name, status: .cancelled, detail: "not started: shutting down"))
                continue
            }
            outcomes.append(await backUp(name, planner: planner, logger: log))
        }

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

    private func backUp(_ name: String, planner: Planner, logger log: Logger) async -> StackOutcome {
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
                log.warning("stack \(name) skipped: \(detail)")
                return StackOutcome(stack: name, status: .skipped, detail: detail)
            }
        } catch {
            log.error("stack \(name) failed: could not take its lock: \(error)")
            return StackOutcome(stack: name, status: .failed, detail: "could not take its lock: \(error)")
        }
    }

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
        let result = await engine.backup(stack)
        return StackOutcome(stack: name, status: result.succeeded ? .succeeded : .failed, archive: result.archive,
                            sizeBytes: result.succeeded ? result.sizeBytes : nil,
                            durationSeconds: result.durationSeconds, detail: result.error,
                            downtimeSeconds: result.downtimeSeconds, bytesRead: result.bytesRead,
                            bytesWritten: result.bytesWritten, containersStopped: result.containersStopped)
    }
}
