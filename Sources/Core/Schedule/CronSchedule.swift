public import Foundation

/// A cron expression in a time zone: the instants at which it fires.
///
/// Daylight-saving changes are handled explicitly, segment by segment of constant UTC offset:
///
/// - Expressions that name wall-clock times (hour field not starting with `*`, e.g. `30 2 * * *`):
///   - spring forward: a matching time inside the skipped interval (02:30 when clocks jump from 02:00 to 03:00)
///     fires **once, at the instant of the change** (03:00 new time), however many matching minutes were skipped;
///   - fall back: a matching time inside the repeated interval fires only on its **first** occurrence.
/// - Expressions with `*` or `*/n` as hour (`*/15 * * * *`, `@hourly`) run by elapsed time: they fire at every
///   instant whose local time matches; a skipped time is simply absent and a repeated hour runs again, one real
///   hour later.
///
/// This is Vixie cron's behaviour for clock changes of less than three hours, except that only the hour field
/// decides whether an expression is a wall-clock one.
public struct CronSchedule: Sendable {
    public let expression: CronExpression
    public let timeZone: any UTCOffsetRules

    /// How far ahead `next(after:)` looks before deciding that an expression never fires (a 29 February that
    /// must be a given weekday can be 28 years away).
    static let horizonSeconds: Int64 = 30 * 366 * 86_400

    public init(expression: CronExpression, timeZone: any UTCOffsetRules) {
        self.expression = expression
        self.timeZone = timeZone
    }

    /// Parses `text` and takes the zone from `timeZone`.
    public init(_ text: String, timeZone: any UTCOffsetRules = ScheduleTimeZone.utc) throws(CronExpressionError) {
        self.init(expression: try CronExpression(text), timeZone: timeZone)
    }

    /// The first instant strictly after `date` at which the schedule fires, nil if it never does.
    public func next(after date: Date) -> Date? {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        return nextInstant(after: seconds).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// The next `count` runs after `date`, described for people.
    public func upcoming(after date: Date, count: Int) -> [ScheduledRun] {
        var runs: [ScheduledRun] = []
        var from = Int64(date.timeIntervalSince1970.rounded(.down))
        while runs.count < count, let instant = nextInstant(after: from) {
            runs.append(describe(instant))
            from = instant
        }
        return runs
    }

    /// The run at `instant`, with its local time and whether it stands in for times a clock change skipped.
    public func describe(_ instant: Int64) -> ScheduledRun {
        let offset = timeZone.utcOffset(atUnixSeconds: instant)
        let local = CivilTime(localSeconds: instant + Int64(offset))
        return ScheduledRun(
            date: Date(timeIntervalSince1970: TimeInterval(instant)), localTime: local, utcOffsetSeconds: offset,
            abbreviation: timeZone.abbreviation(atUnixSeconds: instant),
            standsInForSkippedTime: expression.namesWallClockTimes && !expression.matches(local))
    }

    /// The first instant (unix seconds) strictly after `after` at which the schedule fires.
    func nextInstant(after: Int64) -> Int64? {
        var start = after + 1
        let limit = start + Self.horizonSeconds
        let wallClock = expression.namesWallClockTimes
        // Local times below this were already lived through once (we start inside a repeated interval).
        var skipLocalBefore = Int64.min
        if wallClock, let previous = timeZone.firstTransition(after: start - 26 * 3600, through: start),
           previous.offsetAfter < previous.offsetBefore
        {
            skipLocalBefore = previous.instant + Int64(previous.offsetBefore)
        }
        while start < limit {
            // Within a segment of constant offset, local time runs like UTC: search it as wall-clock time.
            let offset = Int64(timeZone.utcOffset(atUnixSeconds: start))
            let localStart = start + offset
            let match = expression.firstMatch(fromLocal: max(localStart, skipLocalBefore), beforeLocal: limit + offset)
            let candidate = match.map { $0 - offset } ?? limit
            guard let change = timeZone.firstTransition(after: start, through: candidate) else {
                return match == nil ? nil : candidate
            }
            // The offset changes before the candidate: the segment ends at the change.
            let before = Int64(change.offsetBefore), after = Int64(change.offsetAfter)
            skipLocalBefore = .min
            if after > before {
                // Spring forward: local times [change+before, change+after) do not exist this day.
                if wallClock, expression.firstMatch(fromLocal: max(localStart, change.instant + before),
                                                    beforeLocal: change.instant + after) != nil
                {
                    return change.instant
                }
            } else if wallClock {
                // Fall back: local times [change+after, change+before) come again; they already ran.
                skipLocalBefore = change.instant + before
            }
            start = change.instant
        }
        return nil
    }
}

/// One future run, for display.
public struct ScheduledRun: Sendable, Equatable {
    public var date: Date
    /// The wall-clock time in the schedule's zone.
    public var localTime: CivilTime
    public var utcOffsetSeconds: Int
    public var abbreviation: String?
    /// True when this run is the one, at a spring-forward change, for matching times the change skipped.
    public var standsInForSkippedTime: Bool

    /// `2024-03-31T03:00:00+02:00`
    public var iso8601: String {
        let sign = utcOffsetSeconds < 0 ? "-" : "+"
        let magnitude = abs(utcOffsetSeconds)
        let offset = "\(sign)\(CivilTime.pad(magnitude / 3600)):\(CivilTime.pad(magnitude % 3600 / 60))"
        let t = localTime
        return "\(CivilTime.pad(t.year, 4))-\(CivilTime.pad(t.month))-\(CivilTime.pad(t.day))T\(CivilTime.pad(t.hour)):"
            + "\(CivilTime.pad(t.minute)):\(CivilTime.pad(t.second))\(offset)"
    }
}
