public import Foundation
public import Logging
import Synchronization

/// Calls a job at each due time of a schedule, never two at once: a due time that comes while the previous run
/// still goes is skipped with a warning.
///
/// Runs until its task is cancelled; cancellation reaches the run in progress, and `run` returns (throwing
/// `CancellationError`) only after that run has ended, so its cleanup is complete.
public struct RunScheduler: Sendable {
    public typealias Job = @Sendable (_ trigger: RunTrigger, _ due: Date) async -> Void

    /// The first due time strictly after a date (the schedule), nil when there is none.
    let nextDue: @Sendable (Date) -> Date?
    let logger: Logger
    let now: @Sendable () -> Date
    /// The longest single sleep, so that a wall-clock change is noticed.
    let maximumSleep: Duration
    /// Told each next due time once it is known.
    var onNextDue: @Sendable (Date?) async -> Void = { _ in }
    /// Told each due time skipped because a run was going.
    var onSkip: @Sendable (Date) async -> Void = { _ in }

    public init(
        nextDue: @escaping @Sendable (Date) -> Date?,
        logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init,
        maximumSleep: Duration = .seconds(30),
        onNextDue: @escaping @Sendable (Date?) async -> Void = { _ in },
        onSkip: @escaping @Sendable (Date) async -> Void = { _ in }
    ) {
        self.nextDue = nextDue
        self.logger = logger
        self.now = now
        self.maximumSleep = maximumSleep
        self.onNextDue = onNextDue
        self.onSkip = onSkip
    }

    /// Runs the schedule until cancelled.
    ///
    /// - Parameters:
    ///   - runAtStart: also run once now (trigger `.start`).
    ///   - wakeups: each element asks for a run now (trigger `.request`): it starts at once when no run is going,
    ///     else right after the run in progress; requests that come while a run goes add up to one run.
    public func run(runAtStart: Bool, wakeups: AsyncStream<Void>? = nil, job: @escaping Job) async throws {
        let running = RunningJob()
        // Told when a run was requested or has ended: the moments a requested run may start.
        let (events, eventSink) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingDiscardingTaskGroup { group in
            if let wakeups {
                group.addTask {
                    for await _ in wakeups {
                        running.request()
                        eventSink.yield()
                    }
                }
                group.addTask {
                    for await _ in events {
                        // Once cancelled (shutdown), a waiting request starts no run.
                        while !Task.isCancelled, let start = running.startRequested(now()) {
                            await job(.request, start.due)
                            running.set(nil)
                        }
                    }
                }
            }
            if runAtStart {
                let start = now()
                _ = running.start(RunStart(trigger: .start, due: start, startedAt: start))
                group.addTask {
                    await job(.start, start)
                    running.set(nil)
                    eventSink.yield()
                }
            }
            var due = nextDue(now())
            while let current = due {
                await onNextDue(current)
                try await sleep(until: current)
                if let busy = running.start(RunStart(trigger: .schedule, due: current, startedAt: now())) {
                    let message = "skipping the run due \(current.iso8601): the run started "
                        + "\(busy.startedAt.iso8601) is still going"
                    logger.warning("\(message)")
                    await onSkip(current)
                } else {
                    group.addTask {
                        await job(.schedule, current)
                        running.set(nil)
                        eventSink.yield()
                    }
                }
                var next = nextDue(current)
                let late = now()
                if let planned = next, planned.addingTimeInterval(60) < late {
                    // The process was suspended or the clock jumped: run once now (above), not once per missed time.
                    next = nextDue(late)
                    let message = "missed the runs due from \(planned.iso8601) to \(late.iso8601) (was the host "
                        + "suspended, or did the clock jump?); next run due \(next?.iso8601 ?? "never")"
                    logger.warning("\(message)")
                }
                due = next
            }
            await onNextDue(nil)
            logger.warning("the schedule has no further due time; waiting for shutdown")
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// Sleeps until the wall clock reaches `date`, in slices so that clock changes are noticed.
    func sleep(until date: Date) async throws {
        while true {
            let remaining = date.timeIntervalSince(now())
            if remaining <= 0 { return }
            let slice = min(Duration.milliseconds(Int64((remaining * 1000).rounded(.up))), maximumSleep)
            try await Task.sleep(for: slice)
        }
    }
}

/// The run in progress and whether a requested run waits, shared by the scheduler loop and the runs' tasks.
private final class RunningJob: Sendable {
    private struct Value {
        var run: RunStart?
        var requested = false
    }

    private let value = Mutex(Value())

    func set(_ run: RunStart?) { value.withLock { $0.run = run } }

    /// Makes `run` the run in progress unless one is going; returns the one going (nothing started), else nil.
    func start(_ run: RunStart) -> RunStart? {
        value.withLock {
            if let busy = $0.run { return busy }
            $0.run = run
            return nil
        }
    }

    /// Notes that a run was asked for.
    func request() { value.withLock { $0.requested = true } }

    /// When a run was asked for and none is going: starts it (trigger `.request`, due now) and returns it.
    func startRequested(_ now: Date) -> RunStart? {
        value.withLock {
            guard $0.requested, $0.run == nil else { return nil }
            $0.requested = false
            let run = RunStart(trigger: .request, due: now, startedAt: now)
            $0.run = run
            return run
        }
    }
}

extension Date {
    /// `2024-01-15T11:17:30+0100`, for messages: ISO 8601 in the zone of `TZ` (`2024-01-15T10:17:30Z` when unset),
    /// the zone text logs and tables show too (`DisplayTime`).
    var iso8601: String {
        let zone = DisplayTime.zone
        return zone.secondsFromGMT(for: self) == 0 && DisplayTime.zoneName == "UTC" ? formatted(.iso8601)
            : formatted(Date.ISO8601FormatStyle(timeZone: zone))
    }
}
