public import Foundation

/// The verdict of `stackvault health`.
public struct HealthReport: Sendable, Equatable {
    public var healthy: Bool
    /// One line for `docker inspect` / `docker ps`: why.
    public var message: String

    public init(healthy: Bool, message: String) {
        self.healthy = healthy
        self.message = message
    }
}

/// Decides from the daemon's state whether its backups are happening as scheduled.
///
/// Healthy means both:
/// 1. the last run that ended succeeded (every stack backed up, or skipped because another StackVault was backing
///    it up at that moment) -- or no run has ended yet;
/// 2. it is not overdue: with `R` the latest of the daemon's start, the last run's due time and the due time of the
///    run in progress, the second schedule time after `R` has not come yet. With a daily 02:00 schedule and a run
///    due (and succeeded) on Monday 02:00, that is Wednesday 02:00: Tuesday's run may take up to a day.
///
/// A failed or interrupted last run stays unhealthy until a run succeeds, across daemon restarts.
public enum HealthCheck {
    public static func evaluate(_ state: DaemonState, now: Date) -> HealthReport {
        let schedule: CronSchedule
        do {
            schedule = try CronSchedule(state.schedule, timeZone: try ScheduleTimeZone(identifier: state.timeZone))
        } catch {
            return HealthReport(healthy: false, message: "UNHEALTHY: the state file's schedule is unusable: \(error)")
        }
        func show(_ date: Date) -> String { schedule.describe(Int64(date.timeIntervalSince1970)).iso8601 }

        if let down = state.containersLeftStopped, !down.isEmpty {
            return HealthReport(healthy: false, message: "UNHEALTHY: containers a StackVault stopped are still down "
                + "(a StackVault died while they were stopped, and starting them failed): "
                + down.joined(separator: "; "))
        }
        if let last = state.lastRun, last.outcome != .succeeded {
            let what = last.outcome == .interrupted
                ? "was interrupted before it finished" + (last.error.map { " (\($0))" } ?? " (SIGTERM/SIGINT)")
                : "failed: " + failureSummary(last)
            return HealthReport(healthy: false, message: "UNHEALTHY: the last backup run (due \(show(last.due)), "
                + "ended \(show(last.finishedAt))) \(what)")
        }
        if let failure = state.unresolvedFailures?.first {
            let more = (state.unresolvedFailures?.count ?? 1) - 1
            return HealthReport(healthy: false, message: "UNHEALTHY: stack \(failure.stack) failed in the run due "
                + "\(show(failure.due)) and no run since has backed it up: \(failure.error)"
                + (more > 0 ? " (and \(more) more stack(s))" : ""))
        }

        let reference = [state.daemonStartedAt, state.lastRun?.due, state.currentRun?.due].compactMap { $0 }.max()!
        guard let firstDue = schedule.next(after: reference), let deadline = schedule.next(after: firstDue) else {
            return HealthReport(healthy: false, message: "UNHEALTHY: the schedule \"\(state.schedule)\" never fires")
        }
        if now >= deadline {
            if let current = state.currentRun {
                return HealthReport(healthy: false, message: "UNHEALTHY: a backup run has been going since "
                    + "\(show(current.startedAt)) (due \(show(current.due))), past \(show(deadline))")
            }
            return HealthReport(healthy: false, message: "UNHEALTHY: no backup run has ended since "
                + "\(show(reference)); the run due \(show(firstDue)) should have ended by \(show(deadline))")
        }

        if let problem = drillProblem(state, now: now, show: show) {
            return HealthReport(healthy: false, message: "UNHEALTHY: \(problem)")
        }

        var message = "healthy: "
        if let last = state.lastRun {
            let skipped = last.stacks.filter { $0.status == .skipped }.count
            let done = last.stacks.filter { $0.status == .succeeded }.count
            message += "the last run (due \(show(last.due))) succeeded: \(done) stack(s) backed up"
                + (skipped > 0 ? ", \(skipped) skipped (another StackVault was backing them up)" : "")
        } else {
            message += "no run has ended yet"
        }
        if let current = state.currentRun {
            message += "; a run is going since \(show(current.startedAt))"
        }
        if let next = state.nextRunDue { message += "; next run due \(show(next))" }
        if let drills = state.drills, !drills.isEmpty {
            message += "; last drills passed for \(drills.count) stack(s)"
        }
        return HealthReport(healthy: true, message: message)
    }

    /// A failed last drill of any stack, or (with `DRILL_MAX_AGE`) a stack whose last successful drill, or the
    /// daemon's start when it never had one, is older than that.
    private static func drillProblem(_ state: DaemonState, now: Date, show: (Date) -> String) -> String? {
        let drills = (state.drills ?? [:]).sorted { $0.key < $1.key }
        for (stack, drill) in drills where !drill.passed {
            let problems = drill.problems.prefix(3).joined(separator: "; ")
            return "the last restore drill of stack \(stack) (\(drill.archive), ended \(show(drill.finishedAt))) "
                + "failed: \(problems.count > 1000 ? String(problems.prefix(1000)) + "..." : problems)"
        }
        guard let maxAge = state.drillMaxAgeSeconds, state.drillSchedule != nil else { return nil }
        if drills.isEmpty, now.timeIntervalSince(state.daemonStartedAt) > maxAge {
            return "no restore drill has passed since the daemon started (\(show(state.daemonStartedAt))); "
                + "DRILL_MAX_AGE is \(Int(maxAge)) s"
        }
        for (stack, drill) in drills {
            let reference = drill.lastSuccessAt ?? state.daemonStartedAt
            if now.timeIntervalSince(reference) > maxAge {
                return "the last successful restore drill of stack \(stack) is older than DRILL_MAX_AGE "
                    + "(\(Int(maxAge)) s): " + (drill.lastSuccessAt.map { "it passed \(show($0))" } ?? "none passed")
            }
        }
        return nil
    }

    private static func failureSummary(_ run: RunRecord) -> String {
        var parts: [String] = []
        if let error = run.error { parts.append(error) }
        for stack in run.stacks where stack.status == .failed {
            parts.append("stack \(stack.stack): \(stack.detail ?? "failed")")
        }
        let text = parts.isEmpty ? "see the daemon's log" : parts.joined(separator: "; ")
        return text.count > 1500 ? String(text.prefix(1500)) + "..." : text
    }
}
