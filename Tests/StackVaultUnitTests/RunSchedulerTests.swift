import Foundation
import Logging
import StackVaultCore
import Synchronization
import Testing

/// The scheduler with a fast synthetic schedule (a due time every 100 ms) and the real clock.
@Suite struct RunSchedulerTests {
    final class Journal: Sendable {
        struct Entry: Sendable {
            var trigger: RunTrigger
            var due: Date
            var started: Date
        }

        let entries = Mutex<[Entry]>([])
        let running = Mutex((now: 0, maximum: 0))
        let skipped = Mutex<[Date]>([])
        let cancelledRuns = Mutex(0)

        func job(duration: Duration) -> RunScheduler.Job {
            { trigger, due in
                self.entries.withLock { $0.append(Entry(trigger: trigger, due: due, started: Date())) }
                self.running.withLock { $0.now += 1; $0.maximum = max($0.maximum, $0.now) }
                try? await Task.sleep(for: duration)
                if Task.isCancelled { self.cancelledRuns.withLock { $0 += 1 } }
                self.running.withLock { $0.now -= 1 }
            }
        }
    }

    /// Due times on every 100 ms boundary.
    static let every100ms: @Sendable (Date) -> Date? = { date in
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 10).rounded(.down) / 10 + 0.1)
    }

    static func scheduler(_ journal: Journal, logger: Logger = Logger(label: "test")) -> RunScheduler {
        RunScheduler(nextDue: every100ms, logger: logger,
                     onSkip: { due in journal.skipped.withLock { $0.append(due) } })
    }

    /// Runs the scheduler until `done` holds (or 20 s pass), then cancels it and waits for it to end; returns how
    /// long the end took. Conditions, not fixed durations: the test machine may be busy.
    static func drive(_ scheduler: RunScheduler, runAtStart: Bool = false, until done: @escaping () -> Bool,
                      job: @escaping RunScheduler.Job) async throws -> Duration {
        let task = Task { try await scheduler.run(runAtStart: runAtStart, job: job) }
        let deadline = Date().addingTimeInterval(20)
        while !done() && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let clock = ContinuousClock()
        let started = clock.now
        task.cancel()
        _ = await task.result
        return clock.now - started
    }

    /// How late the test process wakes up: a task that sleeps 50 ms over and over records its largest overshoot.
    /// On a loaded machine (other tests blocking the cooperative pool's few threads) every task wakes late; a
    /// scheduler is only late when it wakes later than this probe does.
    final class WakeProbe: Sendable {
        let worst = Mutex(0.0)
        func run(while going: @escaping @Sendable () -> Bool) -> Task<Void, Never> {
            Task {
                while going() {
                    let before = Date()
                    try? await Task.sleep(for: .milliseconds(50))
                    let over = Date().timeIntervalSince(before) - 0.05
                    worst.withLock { $0 = max($0, over) }
                }
            }
        }
    }

    @Test func runsAtEachDueTime() async throws {
        let journal = Journal()
        let probe = WakeProbe()
        let done = Mutex(false)
        let probing = probe.run { !done.withLock { $0 } }
        _ = try await Self.drive(Self.scheduler(journal), until: { journal.entries.withLock { $0.count } >= 5 },
                                 job: journal.job(duration: .milliseconds(10)))
        done.withLock { $0 = true }
        await probing.value
        let entries = journal.entries.withLock { $0 }
        let slack = 1 + probe.worst.withLock { $0 }
        #expect(entries.count >= 5)
        for entry in entries {
            #expect(entry.trigger == .schedule)
            #expect(entry.started >= entry.due, "a run started before its due time")
            #expect(entry.started.timeIntervalSince(entry.due) < slack,
                    "a run started late (the process itself woke up to \(slack - 1) s late)")
            let tenths = entry.due.timeIntervalSince1970 * 10
            #expect(abs(tenths - tenths.rounded()) < 1e-6, "due times are the schedule's")
        }
        #expect(Set(entries.map(\.due)).count == entries.count, "a due time ran twice")
    }

    @Test func aTickDuringARunIsSkippedWithAWarning() async throws {
        let journal = Journal()
        let log = RecordingLogHandler()
        _ = try await Self.drive(Self.scheduler(journal, logger: log.logger),
                                 until: { journal.entries.withLock { $0.count } >= 3 },
                                 job: journal.job(duration: .milliseconds(250)))
        let skipped = journal.skipped.withLock { $0 }
        #expect(journal.running.withLock { $0.maximum } == 1, "two runs overlapped")
        #expect(skipped.count >= 2, "\(skipped.count) skipped ticks")
        #expect(log.recorded.filter { $0.hasPrefix("warning skipping the run due") }.count == skipped.count)
        // A skipped due time never runs later.
        let ran = Set(journal.entries.withLock { $0 }.map(\.due))
        #expect(ran.isDisjoint(with: skipped))
    }

    @Test func backupOnStartRunsAtOnce() async throws {
        let journal = Journal()
        let start = Date()
        _ = try await Self.drive(
            RunScheduler(nextDue: { _ in Date().addingTimeInterval(3600) }, logger: Logger(label: "test")),
            runAtStart: true, until: { journal.entries.withLock { $0.count } >= 1 },
            job: journal.job(duration: .milliseconds(10)))
        let entries = journal.entries.withLock { $0 }
        #expect(entries.count == 1)
        #expect(entries.first?.trigger == .start)
        // At once, not at the next due time an hour away (the bound leaves room for a loaded 2-core machine).
        #expect((entries.first?.started.timeIntervalSince(start) ?? 3600) < 60)
    }

    @Test func cancellationReachesTheRunAndWaitsForIt() async throws {
        let journal = Journal()
        let waited = try await Self.drive(
            RunScheduler(nextDue: { _ in Date().addingTimeInterval(3600) }, logger: Logger(label: "test")),
            runAtStart: true, until: { journal.running.withLock { $0.now } == 1 },
            job: journal.job(duration: .seconds(30)))
        #expect(journal.cancelledRuns.withLock { $0 } == 1, "the run did not see the cancellation")
        #expect(journal.running.withLock { $0.now } == 0, "the scheduler returned before the run ended")
        #expect(waited < .seconds(5))
    }

    @Test func aLongSuspensionRunsOnceNotOncePerMissedTime() async throws {
        let journal = Journal()
        let log = RecordingLogHandler()
        // Due times every second of a clock that jumps 10 minutes ahead after the first due time.
        let offset = Mutex(0.0)
        let now: @Sendable () -> Date = { Date().addingTimeInterval(offset.withLock { $0 }) }
        let scheduler = RunScheduler(
            nextDue: { date in Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down) + 1) },
            logger: log.logger, now: now, maximumSleep: .milliseconds(50))
        let task = Task {
            try await scheduler.run(runAtStart: false) { trigger, due in
                await journal.job(duration: .milliseconds(1))(trigger, due)
                offset.withLock { $0 = 600 }
            }
        }
        let deadline = Date().addingTimeInterval(20)
        while !log.recorded.contains(where: { $0.contains("missed the runs due") }) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        _ = await task.result
        let runs = journal.entries.withLock { $0 }.count
        #expect((2...4).contains(runs), "\(runs) runs: one per missed due time?")
        #expect(log.recorded.contains { $0.contains("missed the runs due") })
    }
}
