public import Foundation

/// Which backups of a stack to keep, with restic's `forget` semantics, which users already know.
///
/// Backups are taken newest first. `keepLast` keeps the n newest. Each time rule (hourly ... yearly) keeps the
/// newest backup of each of the n most recent periods that have a backup. `keepWithin` keeps every backup taken
/// within that duration of the newest backup. A backup is kept if any rule keeps it. The newest backup is always
/// kept.
///
/// Periods are local calendar periods of `timeZone` (`TZ`): the archive names carry UTC times, and each is counted
/// for the hour, day, ISO 8601 week, month and year its instant has on the local clock, as restic's `forget` counts
/// a snapshot's local time (restic `internal/restic/snapshot_policy.go`: `ymdh`, `ymd`, `yw` with Go's `ISOWeek`,
/// `ym`, `y`). So a day of a daylight-saving change is one day of 23 or 25 hours, and the hour a clock change
/// repeats is one hourly period (restic's `ymdh` has no offset in it). `keepWithin` goes back in local calendar
/// units too (restic's `AddDate`).
public struct RetentionPolicy: Sendable, Equatable, Codable {
    public var keepLast: Int?
    public var keepHourly: Int?
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    public var keepYearly: Int?
    /// Seconds before the newest backup.
    public var keepWithin: RetentionDuration?
    /// The zone whose calendar periods are counted (`TZ`); UTC by default.
    public var timeZone: TimeZone = TimeZone(identifier: "UTC")!

    public init(
        keepLast: Int? = nil, keepHourly: Int? = nil, keepDaily: Int? = nil, keepWeekly: Int? = nil,
        keepMonthly: Int? = nil, keepYearly: Int? = nil, keepWithin: RetentionDuration? = nil
    ) {
        self.keepLast = keepLast
        self.keepHourly = keepHourly
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
        self.keepWithin = keepWithin
    }

    /// No rule set: keep everything.
    public var isEmpty: Bool {
        [keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly].allSatisfy { $0 == nil }
            && keepWithin == nil
    }

    /// The policy from `RETENTION_KEEP_LAST`, `_HOURLY`, `_DAILY`, `_WEEKLY`, `_MONTHLY`, `_YEARLY`, `_WITHIN`, counted
    /// in the zone `TZ` (UTC when unset). Throws `invalidConfiguration` naming the variable that is wrong.
    public static func fromEnvironment(_ environment: [String: String]) throws -> RetentionPolicy {
        func count(_ suffix: String) throws -> Int? {
            let name = "RETENTION_KEEP_\(suffix)"
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            guard let value = Int(raw), value >= 0 else {
                throw StackVaultError(.invalidConfiguration, "\(name)='\(raw)' must be a whole number of backups")
            }
            return value
        }
        var within: RetentionDuration?
        if let raw = environment["RETENTION_KEEP_WITHIN"]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty {
            within = try RetentionDuration(parsing: raw, name: "RETENTION_KEEP_WITHIN")
        }
        var policy = RetentionPolicy(
            keepLast: try count("LAST"), keepHourly: try count("HOURLY"), keepDaily: try count("DAILY"),
            keepWeekly: try count("WEEKLY"), keepMonthly: try count("MONTHLY"), keepYearly: try count("YEARLY"),
            keepWithin: within)
        let zone = try ScheduleTimeZone(environment: environment)
        policy.timeZone = TimeZone(identifier: zone.identifier) ?? TimeZone(identifier: "UTC")!
        return policy
    }

    /// One backup and the verdict on it.
    public struct Decision: Sendable, Equatable, Codable {
        public var name: String
        public var time: Date
        public var keep: Bool
        /// The rules that keep it (`last`, `hourly`, ..., `within`, `newest`); empty when it is removed.
        public var reasons: [String]
        /// The archive's time on the policy's local clock, ISO 8601 with its offset (`2026-01-01T00:30:00+01:00`).
        public var localTime: String = ""
        /// For each period rule that counted this archive, the local period it was counted for: `hourly`
        /// `2026-01-01T00`, `daily` `2026-01-01`, `weekly` `2026-W01` (ISO year and week), `monthly` `2026-01`,
        /// `yearly` `2026`.
        public var periods: [String: String] = [:]
    }

    /// Applies the policy to one stack's backups (any order); returns them newest first with the verdicts.
    /// An empty policy keeps everything.
    public func apply(to backups: [(name: String, time: Date)]) -> [Decision] {
        let sorted = backups.sorted { ($0.time, $0.name) > ($1.time, $1.name) }
        let localTime = ISO8601DateFormatter()
        localTime.timeZone = timeZone
        guard !isEmpty else {
            return sorted.map {
                Decision(name: $0.name, time: $0.time, keep: true, reasons: ["no policy"],
                         localTime: localTime.string(from: $0.time))
            }
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        calendar.firstWeekday = 2
        calendar.minimumDaysInFirstWeek = 4  // ISO 8601 weeks, as restic (Go's ISOWeek)

        struct Bucket {
            let rule: String
            var remaining: Int
            let period: (Date) -> String
            var last: String?
        }
        /// The local period of a date, as a label (`2026-W01`, `2026-01-01T00`).
        func period(_ components: Set<Calendar.Component>) -> (Date) -> String {
            { date in
                let c = calendar.dateComponents(components, from: date)
                func pad(_ value: Int?, _ width: Int = 2) -> String {
                    let digits = String(value ?? 0)
                    return String(repeating: "0", count: max(0, width - digits.count)) + digits
                }
                if components.contains(.weekOfYear) { return "\(pad(c.yearForWeekOfYear, 4))-W\(pad(c.weekOfYear))" }
                var label = pad(c.year, 4)
                if components.contains(.month) { label += "-" + pad(c.month) }
                if components.contains(.day) { label += "-" + pad(c.day) }
                if components.contains(.hour) { label += "T" + pad(c.hour) }
                return label
            }
        }
        var buckets: [Bucket] = []
        var serial = 0
        if let n = keepLast { buckets.append(Bucket(rule: "last", remaining: n, period: { _ in serial += 1; return "\(serial)" })) }
        if let n = keepHourly { buckets.append(Bucket(rule: "hourly", remaining: n, period: period([.year, .month, .day, .hour]))) }
        if let n = keepDaily { buckets.append(Bucket(rule: "daily", remaining: n, period: period([.year, .month, .day]))) }
        if let n = keepWeekly { buckets.append(Bucket(rule: "weekly", remaining: n, period: period([.yearForWeekOfYear, .weekOfYear]))) }
        if let n = keepMonthly { buckets.append(Bucket(rule: "monthly", remaining: n, period: period([.year, .month]))) }
        if let n = keepYearly { buckets.append(Bucket(rule: "yearly", remaining: n, period: period([.year]))) }

        let newest = sorted.first?.time
        // keep-within counts back from the newest archive: one cut-off for all.
        var withinSeconds: TimeInterval?
        if let newest, let keepWithin { withinSeconds = keepWithin.seconds(before: newest, calendar: calendar) }
        return sorted.enumerated().map { index, backup in
            var reasons: [String] = []
            var periods: [String: String] = [:]
            for i in buckets.indices where buckets[i].remaining > 0 {
                let value = buckets[i].period(backup.time)
                if value != buckets[i].last {
                    buckets[i].last = value
                    buckets[i].remaining -= 1
                    reasons.append(buckets[i].rule)
                    if buckets[i].rule != "last" { periods[buckets[i].rule] = value }
                }
            }
            if let withinSeconds, let newest, newest.timeIntervalSince(backup.time) <= withinSeconds {
                reasons.append("within")
            }
            if index == 0 && reasons.isEmpty { reasons.append("newest") }
            return Decision(name: backup.name, time: backup.time, keep: !reasons.isEmpty, reasons: reasons,
                            localTime: localTime.string(from: backup.time), periods: periods)
        }
    }
}

/// A duration like restic's `--keep-within`: `1y2m3w4d5h` (years, months, weeks, days, hours).
public struct RetentionDuration: Sendable, Equatable, Codable, CustomStringConvertible {
    public var years = 0, months = 0, weeks = 0, days = 0, hours = 0

    public init(years: Int = 0, months: Int = 0, weeks: Int = 0, days: Int = 0, hours: Int = 0) {
        self.years = years
        self.months = months
        self.weeks = weeks
        self.days = days
        self.hours = hours
    }

    public init(parsing text: String, name: String) throws {
        var number = ""
        var any = false
        for character in text.lowercased() {
            if character.isNumber { number.append(character); continue }
            guard let value = Int(number) else {
                throw StackVaultError(.invalidConfiguration,
                    "\(name)='\(text)' is not a duration like 7d, 2w, 6m, 1y12h (a number before each unit)")
            }
            switch character {
            case "y": years += value
            case "m": months += value
            case "w": weeks += value
            case "d": days += value
            case "h": hours += value
            default:
                throw StackVaultError(.invalidConfiguration,
                    "\(name)='\(text)': unknown unit '\(character)' (use y, m, w, d, h)")
            }
            number = ""
            any = true
        }
        guard number.isEmpty, any else {
            throw StackVaultError(.invalidConfiguration,
                "\(name)='\(text)' is not a duration like 7d, 2w, 6m, 1y12h (each number needs a unit)")
        }
    }

    /// The length in seconds of this duration going back from `date` (months and years vary in length).
    func seconds(before date: Date, calendar: Calendar) -> TimeInterval {
        var components = DateComponents()
        components.year = -years
        components.month = -months
        components.day = -(weeks * 7 + days)
        components.hour = -hours
        guard let start = calendar.date(byAdding: components, to: date) else { return 0 }
        return date.timeIntervalSince(start)
    }

    public var description: String {
        [(years, "y"), (months, "m"), (weeks, "w"), (days, "d"), (hours, "h")].filter { $0.0 != 0 }
            .map { "\($0.0)\($0.1)" }.joined()
    }
}
