import Foundation
import StackVaultCore
import Testing

/// Daylight-saving changes, in real zones (tz database via Foundation's offsets; the logic is CronSchedule's).
///
/// 2024 changes used below (UTC instants):
/// - Europe/Berlin: 31 Mar 01:00Z (02:00 CET -> 03:00 CEST), 27 Oct 01:00Z (03:00 CEST -> 02:00 CET).
/// - America/New_York: 10 Mar 07:00Z (02:00 EST -> 03:00 EDT), 3 Nov 06:00Z (02:00 EDT -> 01:00 EST).
/// - Australia/Lord_Howe (half-hour DST): 7 Apr 15:00Z (02:00 -> 01:30), 6 Oct 15:30Z (02:00 -> 02:30).
@Suite struct CronDaylightSavingTests {
    func runs(_ expression: String, _ zone: String, after start: String, count: Int) throws -> [String] {
        try CronFixtures.runs(expression, zone: zone, after: start, count: count)
    }

    // MARK: Spring forward: a skipped time runs once, at the change

    @Test func berlinSkippedTimeRunsOnceAtTheChange() throws {
        // 02:30 does not exist on 31 March: the run happens at 03:00 CEST (01:00Z), once.
        #expect(try runs("30 2 * * *", "Europe/Berlin", after: "2024-03-29 12:00", count: 3)
            == ["2024-03-30 01:30", "2024-03-31 01:00", "2024-04-01 00:30"])
        // Every quarter hour of the skipped hour: still one run.
        #expect(try runs("*/15 2 * * *", "Europe/Berlin", after: "2024-03-30 12:00", count: 2)
            == ["2024-03-31 01:00", "2024-04-01 00:00"])
        // A list spanning the gap: 01:00 CET, then (02:00 skipped) 03:00 CEST once, then 04:00 CEST.
        #expect(try runs("0 1-4 * * *", "Europe/Berlin", after: "2024-03-30 23:30", count: 4)
            == ["2024-03-31 00:00", "2024-03-31 01:00", "2024-03-31 02:00", "2024-03-31 23:00"])
        let schedule = try CronSchedule("30 2 * * *", timeZone: try ScheduleTimeZone(identifier: "Europe/Berlin"))
        let run = try #require(schedule.upcoming(after: CronFixtures.utc("2024-03-30 12:00"), count: 1).first)
        #expect(run.iso8601 == "2024-03-31T03:00:00+02:00")
        #expect(run.standsInForSkippedTime)
    }

    @Test func newYorkSkippedTimeRunsOnceAtTheChange() throws {
        #expect(try runs("30 2 * * *", "America/New_York", after: "2024-03-09 12:00", count: 3)
            == ["2024-03-10 07:00", "2024-03-11 06:30", "2024-03-12 06:30"])
        #expect(try runs("0 2 * * sun", "America/New_York", after: "2024-03-04 12:00", count: 2)
            == ["2024-03-10 07:00", "2024-03-17 06:00"])
    }

    /// Expressions with `*` as hour run by elapsed time: no catch-up run, no gap in hourly runs.
    @Test func elapsedTimeExpressionsAcrossSpringForward() throws {
        #expect(try runs("0 * * * *", "Europe/Berlin", after: "2024-03-30 23:30", count: 3)
            == ["2024-03-31 00:00", "2024-03-31 01:00", "2024-03-31 02:00"])
        #expect(try runs("30 * * * *", "Europe/Berlin", after: "2024-03-30 23:45", count: 2)
            == ["2024-03-31 00:30", "2024-03-31 01:30"])
        #expect(try runs("* * * * *", "America/New_York", after: "2024-03-10 06:58", count: 2)
            == ["2024-03-10 06:59", "2024-03-10 07:00"])
        #expect(try runs("*/20 * * * *", "America/New_York", after: "2024-03-10 06:30", count: 3)
            == ["2024-03-10 06:40", "2024-03-10 07:00", "2024-03-10 07:20"])
    }

    // MARK: Fall back: a repeated time runs once, the first time

    @Test func berlinRepeatedTimeDoesNotRunTwice() throws {
        // 02:30 happens at 00:30Z (CEST) and 01:30Z (CET) on 27 October: only the first.
        #expect(try runs("30 2 * * *", "Europe/Berlin", after: "2024-10-26 12:00", count: 2)
            == ["2024-10-27 00:30", "2024-10-28 01:30"])
        #expect(try runs("*/30 2 * * *", "Europe/Berlin", after: "2024-10-26 12:00", count: 3)
            == ["2024-10-27 00:00", "2024-10-27 00:30", "2024-10-28 01:00"])
        // Starting inside the second 02:xx: the first one already ran.
        #expect(try runs("30 2 * * *", "Europe/Berlin", after: "2024-10-27 01:10", count: 1) == ["2024-10-28 01:30"])
        #expect(try runs("0 1-3 * * *", "Europe/Berlin", after: "2024-10-26 22:30", count: 4)
            == ["2024-10-26 23:00", "2024-10-27 00:00", "2024-10-27 02:00", "2024-10-28 00:00"])
    }

    @Test func newYorkRepeatedTimeDoesNotRunTwice() throws {
        #expect(try runs("30 1 * * *", "America/New_York", after: "2024-11-02 12:00", count: 2)
            == ["2024-11-03 05:30", "2024-11-04 06:30"])
        #expect(try runs("0 0 * * *", "America/New_York", after: "2024-11-02 12:00", count: 2)
            == ["2024-11-03 04:00", "2024-11-04 05:00"])
    }

    @Test func elapsedTimeExpressionsAcrossFallBack() throws {
        // Hourly keeps one run per real hour: 02:00 CEST, 02:00 CET, 03:00 CET.
        #expect(try runs("0 * * * *", "Europe/Berlin", after: "2024-10-26 23:30", count: 3)
            == ["2024-10-27 00:00", "2024-10-27 01:00", "2024-10-27 02:00"])
        #expect(try runs("* * * * *", "America/New_York", after: "2024-11-03 05:58", count: 2)
            == ["2024-11-03 05:59", "2024-11-03 06:00"])
    }

    // MARK: Half-hour changes

    @Test func lordHoweHalfHourChanges() throws {
        // Spring forward 02:00 -> 02:30 (+10:30 -> +11): 02:15 runs at the change.
        #expect(try runs("15 2 * * *", "Australia/Lord_Howe", after: "2024-10-05 12:00", count: 2)
            == ["2024-10-05 15:30", "2024-10-06 15:15"])
        // Fall back 02:00 -> 01:30 (+11 -> +10:30): 01:45 only the first time.
        #expect(try runs("45 1 * * *", "Australia/Lord_Howe", after: "2024-04-06 00:00", count: 2)
            == ["2024-04-06 14:45", "2024-04-07 15:15"])
    }

    // MARK: Properties over whole years

    /// A daily wall-clock time runs exactly once per local date, every date of the year, in several zones.
    @Test(arguments: ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "UTC",
                      "Asia/Kolkata"])
    func dailyTimesRunOncePerLocalDate(zone: String) throws {
        let timeZone = try ScheduleTimeZone(identifier: zone)
        for expression in ["30 2 * * *", "0 1 * * *", "45 1 * * *", "0 0 * * *"] {
            let schedule = try CronSchedule(expression, timeZone: timeZone)
            let all = schedule.upcoming(after: CronFixtures.utc("2023-12-31 12:00"), count: 366)
            let days = all.map {
                CivilTime(year: $0.localTime.year, month: $0.localTime.month, day: $0.localTime.day).localSeconds
                    / 86_400
            }
            #expect(zip(days, days.dropFirst()).allSatisfy { $1 == $0 + 1 },
                    "\(zone) \(expression): a date ran twice or was skipped")
            #expect(zip(all, all.dropFirst()).allSatisfy { $0.date < $1.date })
        }
    }

    /// Hourly runs are one real hour apart all year, whatever the changes.
    @Test(arguments: ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
    func hourlyRunsAreOneRealHourApart(zone: String) throws {
        let schedule = try CronSchedule("@hourly", timeZone: try ScheduleTimeZone(identifier: zone))
        let all = schedule.upcoming(after: CronFixtures.utc("2024-01-01 00:30"), count: 366 * 24)
        let gaps = Set(zip(all, all.dropFirst()).map { $1.date.timeIntervalSince($0.date) })
        #expect(gaps == [3600])
    }

    /// The changes the schedule finds are the ones the tz database has, to the second: with the wall-clock
    /// expression `* 0-23 * * *` (every minute), the minute after the last one before a spring-forward change is
    /// the change itself, and after a fall-back change the repeated interval is left out.
    @Test(arguments: ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Australia/Sydney"])
    func findsTheSameChangesAsTheTimeZoneDatabase(zone: String) throws {
        let schedule = try CronSchedule("* 0-23 * * *", timeZone: try ScheduleTimeZone(identifier: zone))
        let foundation = try #require(TimeZone(identifier: zone))
        var date = CronFixtures.utc("2024-01-01")
        for _ in 0..<4 {
            let change = try #require(foundation.nextDaylightSavingTimeTransition(after: date))
            let before = foundation.secondsFromGMT(for: change.addingTimeInterval(-1))
            let after = foundation.secondsFromGMT(for: change)
            let next = try #require(schedule.next(after: change.addingTimeInterval(-60)))
            if after > before {
                #expect(next == change, "\(zone): spring-forward change at \(change)")
            } else {
                #expect(next == change.addingTimeInterval(TimeInterval(before - after)),
                        "\(zone): fall-back change at \(change)")
            }
            date = change
        }
    }

    @Test func evaluationIsFast() throws {
        let schedule = try CronSchedule("0 2 * * *", timeZone: try ScheduleTimeZone(identifier: "Europe/Berlin"))
        let clock = ContinuousClock()
        let elapsed = clock.measure { _ = schedule.upcoming(after: CronFixtures.utc("2024-01-01"), count: 1000) }
        #expect(elapsed < .seconds(2), "1000 daily next-run computations took \(elapsed)")
    }
}

@Suite struct DisplayTimeTests {
    @Test func timesAreShownInTheGivenZone() throws {
        let date = Date(timeIntervalSince1970: 1_795_744_800)  // 2026-11-27T02:00:00Z
        #expect(DisplayTime.plain(date, zone: try #require(TimeZone(identifier: "Europe/Berlin")))
                == "2026-11-27 03:00:00")
        #expect(DisplayTime.plain(date, zone: try #require(TimeZone(identifier: "UTC"))) == "2026-11-27 02:00:00")
    }
}
