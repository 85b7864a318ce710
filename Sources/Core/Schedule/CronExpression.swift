/// A standard five-field cron expression: `minute hour day-of-month month day-of-week`.
///
/// Each field takes `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n` and `a/n` (= `a-max/n`);
/// months and weekdays also take English names (`jan`..`dec`, `sun`..`sat`, any case); day-of-week 0 and 7 are
/// both Sunday. The macros `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`
/// stand for their usual expressions.
///
/// Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither starts with `*`), a
/// day matches if **either** matches; otherwise both must match.
///
/// This type knows nothing of time zones: it matches wall-clock times (`CivilTime`). `CronSchedule` maps them to
/// instants across daylight-saving changes.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The expression as written (trimmed).
    public let source: String
    /// The five fields, macros expanded.
    public let fields: [String]

    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    /// Bit 0 = Sunday ... bit 6 = Saturday (7 folded into 0).
    let daysOfWeek: UInt64
    let dayOfMonthStar: Bool
    let dayOfWeekStar: Bool
    let hourStar: Bool

    public static let macros: [(name: String, expansion: String)] = [
        ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"), ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@hourly", "0 * * * *"),
    ]

    public var description: String { source }

    /// True when the expression names wall-clock times (its hour field does not start with `*`): such a time that a
    /// spring-forward change skips runs once, at the change, and one that a fall-back change repeats runs only the
    /// first time. Expressions with `*` or `*/n` as hour run by elapsed time instead: they fire at every instant
    /// whose local time matches, so an hourly job keeps running every real hour across both changes.
    public var namesWallClockTimes: Bool { !hourStar }

    public init(_ text: String) throws(CronExpressionError) {
        let trimmed = text.trimmingSpaces
        source = trimmed
        var body = trimmed
        var columnShift = 0
        if trimmed.hasPrefix("@") {
            let name = trimmed.lowercased()
            if name == "@reboot" {
                throw CronExpressionError(expression: trimmed, field: nil, fieldText: trimmed, column: 0,
                    reason: "@reboot is not supported: set BACKUP_ON_START=true to back up when StackVault starts")
            }
            guard let macro = Self.macros.first(where: { $0.name == name }) else {
                throw CronExpressionError(expression: trimmed, field: nil, fieldText: trimmed, column: 0,
                    reason: "unknown macro; known: " + Self.macros.map(\.name).joined(separator: ", "))
            }
            body = macro.expansion
            columnShift = -1  // errors cannot come from a macro's expansion
        }
        let parts = Self.split(body)
        guard parts.count == 5 else {
            throw CronExpressionError(expression: trimmed, field: nil, fieldText: trimmed, column: 0,
                reason: "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, "
                    + "found \(parts.count)" + (parts.count == 6 ? " (seconds and years are not supported)" : ""))
        }
        fields = parts.map(\.text)
        var masks: [UInt64] = []
        for (index, part) in parts.enumerated() {
            let field = CronField.allCases[index]
            do {
                masks.append(try field.parse(part.text))
            } catch let problem {
                throw CronExpressionError(expression: trimmed, field: field, fieldText: part.text,
                                          column: columnShift < 0 ? 0 : part.column, reason: problem.reason)
            }
        }
        minutes = masks[0]
        hours = masks[1]
        daysOfMonth = masks[2]
        months = masks[3]
        daysOfWeek = masks[4]
        hourStar = parts[1].text.hasPrefix("*")
        dayOfMonthStar = parts[2].text.hasPrefix("*")
        dayOfWeekStar = parts[4].text.hasPrefix("*")

        // With day-of-week unrestricted, day-of-month alone decides: it must exist in one of the months.
        if dayOfWeekStar && !dayOfMonthStar {
            let possible = (1...12).contains { month in
                months & (1 << month) != 0
                    && (1...CivilTime.daysInMonth(2000, month)).contains { daysOfMonth & (1 << $0) != 0 }
            }
            if !possible {
                throw CronExpressionError(expression: trimmed, field: .dayOfMonth, fieldText: parts[2].text,
                    column: parts[2].column,
                    reason: "no month of the month field has such a day, so the schedule would never run")
            }
        }
    }

    /// Whether the wall-clock minute of `time` matches (seconds are ignored).
    public func matches(_ time: CivilTime) -> Bool {
        months & (1 << time.month) != 0 && hours & (1 << time.hour) != 0 && minutes & (1 << time.minute) != 0
            && dayMatches(day: time.day, weekday: time.weekday)
    }

    func dayMatches(day: Int, weekday: Int) -> Bool {
        let byMonthDay = daysOfMonth & (1 << day) != 0
        let byWeekday = daysOfWeek & (1 << weekday) != 0
        return dayOfMonthStar || dayOfWeekStar ? byMonthDay && byWeekday : byMonthDay || byWeekday
    }

    /// The first whole minute of local time (seconds since 1970-01-01 of the wall clock) in `[from, before)` that
    /// matches, or nil.
    func firstMatch(fromLocal from: Int64, beforeLocal end: Int64) -> Int64? {
        var day = Int(from.floorDivided(by: 86_400))
        var minuteOfDay = Int((from - Int64(day) * 86_400 + 59) / 60)  // round up to a whole minute
        if minuteOfDay == 1440 {
            day += 1
            minuteOfDay = 0
        }
        while Int64(day) * 86_400 < end {
            let (year, month, dayOfMonth) = CivilTime.civil(fromDays: day)
            if months & (1 << month) == 0 {
                day = CivilTime.days(fromCivil: month == 12 ? year + 1 : year, month == 12 ? 1 : month + 1, 1)
                minuteOfDay = 0
                continue
            }
            if dayMatches(day: dayOfMonth, weekday: CivilTime.weekday(ofDays: day)),
               let minute = firstMinute(from: minuteOfDay)
            {
                let local = Int64(day) * 86_400 + Int64(minute) * 60
                return local < end ? local : nil
            }
            day += 1
            minuteOfDay = 0
        }
        return nil
    }

    /// The first matching minute of a day at or after `minuteOfDay`.
    private func firstMinute(from minuteOfDay: Int) -> Int? {
        let hour = minuteOfDay / 60
        if hours & (1 << hour) != 0, let minute = Self.firstBit(minutes, from: minuteOfDay % 60, through: 59) {
            return hour * 60 + minute
        }
        guard hour < 23, let next = Self.firstBit(hours, from: hour + 1, through: 23),
              let minute = Self.firstBit(minutes, from: 0, through: 59)
        else { return nil }
        return next * 60 + minute
    }

    static func firstBit(_ mask: UInt64, from: Int, through last: Int) -> Int? {
        guard from <= last else { return nil }
        let shifted = mask >> UInt64(from)
        guard shifted != 0 else { return nil }
        let bit = from + shifted.trailingZeroBitCount
        return bit <= last ? bit : nil
    }

    /// Fields split on blanks, with the column where each starts.
    private static func split(_ text: String) -> [(text: String, column: Int)] {
        var parts: [(text: String, column: Int)] = []
        var current = ""
        var start = 0
        for (offset, character) in text.enumerated() {
            if character == " " || character == "\t" {
                if !current.isEmpty { parts.append((current, start)) }
                current = ""
            } else {
                if current.isEmpty { start = offset }
                current.append(character)
            }
        }
        if !current.isEmpty { parts.append((current, start)) }
        return parts
    }
}

/// One of the five fields.
public enum CronField: Int, CaseIterable, Sendable {
    case minute, hour, dayOfMonth, month, dayOfWeek

    public var name: String {
        switch self {
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day-of-month"
        case .month: "month"
        case .dayOfWeek: "day-of-week"
        }
    }

    var bounds: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    var names: [String] {
        switch self {
        case .month: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        case .dayOfWeek: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        default: []
        }
    }

    struct Problem: Error {
        var reason: String
    }

    /// The field's values as a bit mask.
    func parse(_ text: String) throws(Problem) -> UInt64 {
        var mask: UInt64 = 0
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !element.isEmpty else { throw Problem(reason: "a list has an empty element") }
            mask |= try parseElement(String(element))
        }
        if self == .dayOfWeek, mask & (1 << 7) != 0 { mask = (mask | 1) & ~(1 << 7) }  // 7 is Sunday too
        return mask
    }

    private func parseElement(_ element: String) throws(Problem) -> UInt64 {
        var rangeText = element
        var step = 1
        if let slash = element.firstIndex(of: "/") {
            rangeText = String(element[..<slash])
            let stepText = String(element[element.index(after: slash)...])
            guard let value = Int(stepText), stepText.allSatisfy(\.isASCIIDigit) else {
                throw Problem(reason: "step '\(stepText)' in '\(element)' is not a positive number")
            }
            guard value > 0 else { throw Problem(reason: "step 0 in '\(element)' is not allowed") }
            step = value
        }
        let low: Int
        var high: Int
        if rangeText == "*" {
            (low, high) = (bounds.lowerBound, self == .dayOfWeek ? 6 : bounds.upperBound)
        } else if let dash = rangeText.firstIndex(of: "-") {
            low = try value(String(rangeText[..<dash]))
            high = try value(String(rangeText[rangeText.index(after: dash)...]))
            if self == .dayOfWeek && high == 0 && low > 0 { high = 7 }  // mon-sun
            guard low <= high else {
                throw Problem(reason: "range '\(rangeText)' goes backwards (\(low) > \(high))")
            }
        } else {
            low = try value(rangeText)
            // `a/n` means from a to the end of the field.
            high = element.contains("/") ? (self == .dayOfWeek ? 6 : bounds.upperBound) : low
        }
        var mask: UInt64 = 0
        for value in stride(from: low, through: high, by: step) { mask |= 1 << UInt64(value) }
        return mask
    }

    private func value(_ text: String) throws(Problem) -> Int {
        if text.isEmpty { throw Problem(reason: "a range is missing a number") }
        if text.allSatisfy(\.isASCIIDigit), let number = Int(text) {
            guard bounds.contains(number) else {
                throw Problem(reason: "\(number) is out of range \(bounds.lowerBound)-\(bounds.upperBound)")
            }
            return number
        }
        if let index = names.firstIndex(of: text.lowercased()) {
            return index + (self == .month ? 1 : 0)
        }
        if names.isEmpty { throw Problem(reason: "'\(text)' is not a number") }
        throw Problem(reason: "'\(text)' is neither a number nor a name (\(names.joined(separator: ", ")))")
    }
}

/// A cron expression that cannot be parsed, with the field at fault.
public struct CronExpressionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var expression: String
    /// The field at fault, nil when the problem is the expression as a whole.
    public var field: CronField?
    public var fieldText: String
    /// Where `fieldText` starts in `expression` (in characters).
    public var column: Int
    public var reason: String

    /// `invalid cron expression "0 25 * * *": hour field "25": 25 is out of range 0-23`
    public var description: String {
        let place = field.map { "\($0.name) field \"\(fieldText)\": " } ?? ""
        return "invalid cron expression \"\(expression)\": \(place)\(reason)"
    }

    /// The expression with a caret line under the field at fault.
    public var pointer: String {
        let width = field == nil ? max(1, expression.count) : max(1, fieldText.count)
        return "  \(expression)\n  \(String(repeating: " ", count: column))\(String(repeating: "^", count: width))"
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
