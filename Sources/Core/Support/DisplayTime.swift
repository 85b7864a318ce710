public import Foundation

/// How times are shown to people: in the zone of `TZ` (the zone the daemon's schedule and retention's calendar
/// periods use; UTC when unset), with the zone named, so that tables, plans and text logs agree (text logs print the
/// same zone as an offset, `+0100`). Archive names keep their UTC time: they are identifiers. JSON output keeps
/// ISO 8601 in UTC (`Z`) for machines.
public enum DisplayTime {
    /// The zone of `TZ`; UTC when `TZ` is unset or unknown.
    public static var zone: TimeZone {
        guard let name = ProcessInfo.processInfo.environment["TZ"]?.trimmingCharacters(in: .whitespaces),
              !name.isEmpty, let zone = TimeZone(identifier: name.hasPrefix(":") ? String(name.dropFirst()) : name)
        else { return TimeZone(identifier: "UTC")! }
        return zone
    }

    /// The zone's name for headers: `UTC`, `Europe/Berlin`.
    public static var zoneName: String {
        let identifier = zone.identifier
        return ["GMT", "UTC", "Etc/UTC", "Etc/GMT", "Universal", "Zulu"].contains(identifier) ? "UTC" : identifier
    }

    /// `2026-11-27 13:00:00`, in `zone`.
    public static func plain(_ date: Date, zone: TimeZone = DisplayTime.zone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: date)
    }

    /// `2026-11-27 13:00:00 Europe/Berlin`.
    public static func named(_ date: Date) -> String {
        plain(date) + " " + zoneName
    }
}
