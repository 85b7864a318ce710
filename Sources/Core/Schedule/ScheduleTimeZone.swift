import Foundation

/// The UTC offsets of a place over time: all `CronSchedule` needs from a time zone.
///
/// Implementations must be pure: the same instant always gives the same offset.
public protocol UTCOffsetRules: Sendable {
    /// An IANA name (`Europe/Berlin`) or `UTC`.
    var identifier: String { get }
    /// Seconds east of UTC in force at `unixSeconds` (Berlin in summer: 7200).
    func utcOffset(atUnixSeconds unixSeconds: Int64) -> Int
    /// True when the offset never changes (no transition to look for).
    var isFixed: Bool { get }
    /// A short name for display (`CEST`), if known.
    func abbreviation(atUnixSeconds unixSeconds: Int64) -> String?
}

/// A time zone from the tz database (through Foundation's `TimeZone`, used only to read the offset at an instant;
/// everything about daylight-saving changes is decided in `CronSchedule`).
public struct ScheduleTimeZone: UTCOffsetRules {
    public let identifier: String
    private let zone: TimeZone
    public let isFixed: Bool

    public static let utc = ScheduleTimeZone(fixed: "UTC")

    private init(fixed identifier: String) {
        self.identifier = identifier
        self.zone = TimeZone(secondsFromGMT: 0)!
        self.isFixed = true
    }

    /// A zone by IANA name; `UTC`, `GMT`, `Etc/UTC` and the empty string mean UTC. A leading `:` (as POSIX allows
    /// in `TZ`) is ignored.
    public init(identifier raw: String) throws {
        var name = raw.trimmingSpaces
        if name.hasPrefix(":") { name.removeFirst() }
        if name.isEmpty || ["utc", "gmt", "etc/utc", "etc/gmt", "zulu", "etc/zulu", "universal", "etc/universal"]
            .contains(name.lowercased())
        {
            self = .utc
            return
        }
        guard let zone = TimeZone(identifier: name) else {
            throw StackVaultError(.invalidConfiguration,
                "TZ='\(raw)' is not a known time zone: use an IANA name such as Europe/Berlin or America/New_York, "
                    + "or UTC")
        }
        self.identifier = name
        self.zone = zone
        self.isFixed = false
    }

    /// `TZ` from the environment, UTC when unset.
    public init(environment: [String: String]) throws {
        try self.init(identifier: environment["TZ"] ?? "")
    }

    public func utcOffset(atUnixSeconds unixSeconds: Int64) -> Int {
        isFixed ? 0 : zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(unixSeconds)))
    }

    public func abbreviation(atUnixSeconds unixSeconds: Int64) -> String? {
        if isFixed { return "UTC" }
        // Where the tz database has no letters, Foundation says "GMT+1": no more than the offset itself.
        guard let name = zone.abbreviation(for: Date(timeIntervalSince1970: TimeInterval(unixSeconds))),
              !(name.hasPrefix("GMT") && name.count > 3)
        else { return nil }
        return name
    }
}

/// A change of UTC offset: `offsetBefore` is in force until `instant`, `offsetAfter` from `instant` on.
struct OffsetTransition: Sendable, Equatable {
    var instant: Int64
    var offsetBefore: Int
    var offsetAfter: Int
}

extension UTCOffsetRules {
    /// The first offset change in `(after, through]`, found by probing every hour and bisecting to the second.
    /// (Two changes less than an hour apart that cancel out are not seen; the tz database has none since 1970.)
    func firstTransition(after start: Int64, through end: Int64) -> OffsetTransition? {
        guard !isFixed, start < end else { return nil }
        let base = utcOffset(atUnixSeconds: start)
        var low = start
        while low < end {
            var high = min(low + 3600, end)
            if utcOffset(atUnixSeconds: high) != base {
                while high - low > 1 {
                    let middle = low + (high - low) / 2
                    if utcOffset(atUnixSeconds: middle) == base { low = middle } else { high = middle }
                }
                return OffsetTransition(instant: high, offsetBefore: base, offsetAfter: utcOffset(atUnixSeconds: high))
            }
            low = high
        }
        return nil
    }
}
