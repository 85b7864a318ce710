import Foundation
import Logging
import ServiceLifecycle
import StackVaultCore
import StackVaultMetrics

/// The daemon's restore drills (`DRILL_SCHEDULE`, `DRILL_ON_START`): at each due time, the latest archive of each
/// stack of this host, one stack at a time, each under the stack's lock (never while it is backed up or restored;
/// a busy stack is left for the next time). Results go to the state file (`drills`), the metrics and, for a
/// failed drill, the notifications.
struct DrillService: Service {
    let schedule: CronSchedule
    let onStart: Bool
    let environment: Environment
    let target: String?
    let workDir: String?
    let host: String
    /// Only these stacks (empty: every stack with archives of this host).
    let stacks: [String]
    let locker: StackLocker
    let state: DaemonStateStore
    let metrics: BackupMetrics
    let notifier: Notifier
    let logger: Logger

    func run() async throws {
        let state = self.state
        let schedule = self.schedule
        let scheduler = RunScheduler(
            nextDue: { schedule.next(after: $0) }, logger: logger,
            onNextDue: { due in await state.update { $0.nextDrillDue = due } })
        do {
            try await withGracefulShutdownHandler {
                try await cancelWhenGracefulShutdown {
                    try await scheduler.run(runAtStart: onStart) { _, _ in await drillAll() }
                }
            } onGracefulShutdown: {}
        } catch is CancellationError {
            // The normal end: shutdown (a drill in progress removed its containers).
        }
    }

    /// Drills the latest archive of each stack.
    func drillAll() async {
        let latest: [HostedArchive]
        do {
            let archives = try await environment.catalog(target).archives(ofHost: host)
            var newest: [String: HostedArchive] = [:]
            for archive in archives where stacks.isEmpty || stacks.contains(archive.listing.stack) {
                if let known = newest[archive.listing.stack], known.listing.date >= archive.listing.date { continue }
                newest[archive.listing.stack] = archive
            }
            latest = newest.values.sorted { $0.listing.stack < $1.listing.stack }
        } catch {
            logger.error("restore drills: cannot list the archives of host \(host): \(error)")
            return
        }
        logger.info("restore drills: \(latest.count) stack(s)")
        for archive in latest {
            if Task.isCancelled { return }
            await drill(archive)
        }
    }

    func drill(_ archive: HostedArchive) async {
        let stack = archive.listing.stack
        let name = archive.listing.name
        var log = logger
        log[metadataKey: "stack"] = "\(stack)"
        let outcome: (passed: Bool, problems: [String])
        do {
            let held = try await locker.withLock(on: stack, purpose: "drill") { () async -> (Bool, [String]) in
                do {
                    return try await drillArchive(name, log: log)
                } catch is CancellationError {
                    return (false, ["the drill was stopped (the daemon is shutting down)"])
                } catch {
                    return (false, ["\(error)"])
                }
            }
            switch held {
            case .ran(let result): outcome = result
            case .busy(let lock):
                log.info("restore drill of \(stack) left for the next time: \(lock.record.busyDescription)")
                return
            }
        } catch {
            log.error("restore drill of \(stack): could not take the stack's lock: \(error)")
            return
        }
        if Task.isCancelled { return }
        let finished = Date()
        await state.update {
            var drills = $0.drills ?? [:]
            let previous = drills[stack]?.lastSuccessAt
            drills[stack] = DrillRecord(archive: name, finishedAt: finished, passed: outcome.passed,
                                        problems: Array(outcome.problems.prefix(10)),
                                        lastSuccessAt: outcome.passed ? finished : previous)
            $0.drills = drills
        }
        metrics.recordDrill(stack: stack, passed: outcome.passed, finishedAt: finished)
        if outcome.passed {
            log.info("restore drill of \(stack) passed: \(name) restores")
        } else {
            let summary = outcome.problems.prefix(3).joined(separator: "; ")
            log.error("restore drill of \(stack) FAILED (\(name)): \(summary)")
            await notifier.drillFailed(stack: stack, archive: name, problems: outcome.problems, host: host)
        }
    }

    /// Downloads (or opens) `name`, verifies it and drills it; returns whether it passed and what failed.
    func drillArchive(_ name: String, log: Logger) async throws -> (Bool, [String]) {
        let storage = try environment.catalog(target).storage(forHost: host)
        let archive = try await ArchiveSelection.open(name, from: storage, workDir: workDir, environment: environment)
        let check = try await archive.verify(strategies: environment.strategies, keepingPageCache: true,
                                             logger: environment.logger)
        guard check.ok, let manifest = check.report.manifest else {
            return (false, check.envelope != nil
                ? ["the archive is encrypted and the daemon has no identity (AGE_IDENTITY_FILE) to drill it"]
                : ["the archive failed verification: " + check.problems.joined(separator: "; ")])
        }
        let engine = DrillEngine(docker: environment.docker, strategies: environment.strategies,
                                 stopTimeoutSeconds: try environment.stopTimeoutSeconds(), logger: log,
                                 options: try environment.drillOptions(workDir: workDir))
        let report = try await engine.drill(manifest, name: name, origin: archive.origin, source: archive)
        return (report.passed, report.checks.filter { !$0.passed }.flatMap { check in
            check.problems.map { "\(check.service) \(check.archivePath): \($0)" }
        })
    }
}
