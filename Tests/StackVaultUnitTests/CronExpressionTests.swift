import Foundation
import StackVaultCore
import Testing

/// Helpers for the cron tests: times written as UTC text.
enum CronFixtures {
    /// `2024-01-15 10:17:30` (UTC) as a Date.
    static func utc(_ text: String) -> Date {
        let digits = text.split(whereSeparator: { !$0.isNumber }).map { Int($0)! }
        let civil = CivilTime(year: digits[0], month: digits[1], day: digits[2],
                              hour: digits.count > 3 ? digits[3] : 0, minute: digits.count > 4 ? digits[4] : 0,
                              second: digits.count > 5 ? digits[5] : 0)
        return Date(timeIntervalSince1970: TimeInterval(civil.localSeconds))
    }

    /// A Date as `2024-01-15 10:18` (UTC).
    static func utcText(_ date: Date) -> String {
        CivilTime(localSeconds: Int64(date.timeIntervalSince1970)).description
    }

    /// The next `count` runs of `expression` after `start` (UTC text), in UTC text.
    static func runs(_ expression: String, zone: String = "UTC", after start: String, count: Int = 1) throws
        -> [String]
    {
        let schedule = try CronSchedule(expression, timeZone: try ScheduleTimeZone(identifier: zone))
        return schedule.upcoming(after: utc(start), count: count).map { utcText($0.date) }
    }
}

@Suite struct CronExpressionTests {
    /// Monday 2024-01-15 10:17:30 UTC.
    static let reference = "2024-01-15 10:17:30"

    @Test(arguments: [
        ("* * * * *", "2024-01-15 10:18"),
        ("0 * * * *", "2024-01-15 11:00"),
        ("*/15 * * * *", "2024-01-15 10:30"),
        ("5/15 * * * *", "2024-01-15 10:20"),
        ("5-10/2 * * * *", "2024-01-15 11:05"),
        ("17 10 * * *", "2024-01-16 10:17"),
        ("18 10 * * *", "2024-01-15 10:18"),
        ("0 2 * * *", "2024-01-16 02:00"),
        ("30 8 * * 1-5", "2024-01-16 08:30"),
        ("0 9 * * mon-fri", "2024-01-16 09:00"),
        ("0 0 * * sun", "2024-01-21 00:00"),
        ("0 0 * * 0", "2024-01-21 00:00"),
        ("0 0 * * 7", "2024-01-21 00:00"),
        ("0 0 * * sat-sun", "2024-01-20 00:00"),
        ("0 0 * * fri-sun", "2024-01-19 00:00"),
        ("0 0 1 * *", "2024-02-01 00:00"),
        ("0 0 1,15 * *", "2024-02-01 00:00"),
        ("0 0 29 2 *", "2024-02-29 00:00"),
        ("0 0 1 JAN *", "2025-01-01 00:00"),
        ("0 0 1 jul-sep *", "2024-07-01 00:00"),
        ("0 0 * feb,apr mon", "2024-02-05 00:00"),
        ("59 23 31 12 *", "2024-12-31 23:59"),
        ("0 0 31 * *", "2024-01-31 00:00"),
        ("0 0 31 4,6,8 *", "2024-08-31 00:00"),
        ("@hourly", "2024-01-15 11:00"),
        ("@daily", "2024-01-16 00:00"),
        ("@midnight", "2024-01-16 00:00"),
        ("@weekly", "2024-01-21 00:00"),
        ("@monthly", "2024-02-01 00:00"),
        ("@yearly", "2025-01-01 00:00"),
        ("@annually", "2025-01-01 00:00"),
        ("  0   2 *\t* *  ", "2024-01-16 02:00"),
    ])
    func nextRunTable(expression: String, expected: String) throws {
        #expect(try CronFixtures.runs(expression, after: Self.reference) == [expected], "\(expression)")
    }

    @Test func sequences() throws {
        #expect(try CronFixtures.runs("*/20 * * * *", after: Self.reference, count: 4)
            == ["2024-01-15 10:20", "2024-01-15 10:40", "2024-01-15 11:00", "2024-01-15 11:20"])
        #expect(try CronFixtures.runs("0 0 29 2 *", after: "2024-03-01", count: 2)
            == ["2028-02-29 00:00", "2032-02-29 00:00"])
        #expect(try CronFixtures.runs("0 12 * * 1", after: Self.reference, count: 3)
            == ["2024-01-15 12:00", "2024-01-22 12:00", "2024-01-29 12:00"])
        // 2100 is not a leap year.
        #expect(try CronFixtures.runs("0 0 29 2 *", after: "2097-01-01", count: 1) == ["2104-02-29 00:00"])
    }

    /// Vixie cron: both day fields restricted -> either matches; one starting with `*` -> both must match.
    @Test func dayOfMonthAndDayOfWeekOrRule() throws {
        // The 13th OR any Friday: Friday the 19th comes first.
        #expect(try CronFixtures.runs("0 12 13 * 5", after: Self.reference, count: 3)
            == ["2024-01-19 12:00", "2024-01-26 12:00", "2024-02-02 12:00"])
        #expect(try CronFixtures.runs("0 12 13 * 5", after: "2024-02-10", count: 2)
            == ["2024-02-13 12:00", "2024-02-16 12:00"])
        // Day-of-month starts with '*': AND. Days 1, 11, 21, 31 that are Fridays: 2024-03-01 is the first.
        #expect(try CronFixtures.runs("0 12 */10 * 5", after: Self.reference) == ["2024-03-01 12:00"])
        // Day-of-week '*': only the day of month counts.
        #expect(try CronFixtures.runs("0 12 20 * *", after: Self.reference) == ["2024-01-20 12:00"])
        // Day-of-week with a '*' step: AND again (Sunday, Tuesday, ... that are the 1st).
        #expect(try CronFixtures.runs("0 0 1 * */2", after: Self.reference) == ["2024-02-01 00:00"])
        let expression = try CronExpression("0 0 1 * mon")
        #expect(expression.matches(CivilTime(year: 2024, month: 1, day: 22)))  // a Monday
        #expect(expression.matches(CivilTime(year: 2024, month: 2, day: 1)))  // the 1st, a Thursday
        #expect(!expression.matches(CivilTime(year: 2024, month: 2, day: 2)))
    }

    @Test(arguments: [
        ("0 25 * * *", CronField.hour, "25 is out of range 0-23", 2, 2),
        ("60 * * * *", .minute, "60 is out of range 0-59", 0, 2),
        ("0 0 0 * *", .dayOfMonth, "0 is out of range 1-31", 4, 1),
        ("0 0 * 13 *", .month, "13 is out of range 1-12", 6, 2),
        ("0 0 * * 8", .dayOfWeek, "8 is out of range 0-7", 8, 1),
        ("0 0 * * mon-fry", .dayOfWeek, "'fry' is neither a number nor a name", 8, 7),
        ("0 0 * smarch *", .month, "'smarch' is neither a number nor a name", 6, 6),
        ("*/0 * * * *", .minute, "step 0", 0, 3),
        ("*/x * * * *", .minute, "step 'x'", 0, 3),
        ("0 5-1 * * *", .hour, "range '5-1' goes backwards", 2, 3),
        ("0 0 1,,2 * *", .dayOfMonth, "empty element", 4, 4),
        ("0 0 1- * *", .dayOfMonth, "missing a number", 4, 2),
        ("0 x * * *", .hour, "'x' is not a number", 2, 1),
        ("0 0 31 2 *", .dayOfMonth, "never run", 4, 2),
        ("0 0 30-31 feb *", .dayOfMonth, "never run", 4, 5),
    ])
    func errorsPointAtTheField(expression: String, field: CronField, reason: String, column: Int, width: Int) {
        #expect {
            _ = try CronExpression(expression)
        } throws: { error in
            guard let error = error as? CronExpressionError else { return false }
            let caret = String(repeating: " ", count: column) + String(repeating: "^", count: width)
            return error.field == field && error.reason.contains(reason) && error.column == column
                && error.pointer == "  \(expression)\n  \(caret)"
                && error.description.contains("\(field.name) field \"\(error.fieldText)\"")
        }
    }

    @Test func wholeExpressionErrors() throws {
        func failure(_ text: String) -> CronExpressionError? {
            do {
                _ = try CronExpression(text)
                return nil
            } catch {
                return error
            }
        }
        #expect(failure("* * * *")?.reason.contains("expected 5 fields") == true)
        #expect(failure("0 * * * * *")?.reason.contains("seconds and years are not supported") == true)
        #expect(failure("")?.reason.contains("found 0") == true)
        #expect(failure("@reboot")?.reason.contains("BACKUP_ON_START") == true)
        #expect(failure("@often")?.reason.contains("unknown macro") == true)
        #expect(failure("0 25 * * *")?.description
            == "invalid cron expression \"0 25 * * *\": hour field \"25\": 25 is out of range 0-23")
        #expect(failure("0 0 * * *") == nil)
    }

    @Test func zoneNames() throws {
        #expect(try ScheduleTimeZone(identifier: "").identifier == "UTC")
        #expect(try ScheduleTimeZone(identifier: "Etc/UTC").isFixed)
        #expect(try ScheduleTimeZone(identifier: ":Europe/Berlin").identifier == "Europe/Berlin")
        #expect(throws: StackVaultError.self) { try ScheduleTimeZone(identifier: "Mars/Olympus_Mons") }
        #expect(try ScheduleTimeZone(environment: ["TZ": "America/New_York"]).identifier == "America/New_York")
    }
}
