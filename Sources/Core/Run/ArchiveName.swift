public import Foundation

/// Archive names: `backup-{stack}-{YYYYMMDD-HHMMSS}-{uuid}.tar.zst`, time in UTC, and `.tar.zst.age` for archives
/// encrypted with age (the whole `.tar.zst` stream as one age file).
public enum ArchiveName {
    /// The suffix of plaintext archives.
    public static let plainSuffix = ".tar.zst"
    /// The suffix of age-encrypted archives.
    public static let encryptedSuffix = ".tar.zst.age"

    public static func make(stack: String, date: Date, uuid: UUID = UUID(), encrypted: Bool = false) -> String {
        "backup-\(stack)-\(timestamp(date))-\(uuid.uuidString.lowercased())"
            + (encrypted ? encryptedSuffix : plainSuffix)
    }

    /// True for names ending in `.tar.zst.age`.
    public static func isEncrypted(_ name: String) -> Bool { name.hasSuffix(encryptedSuffix) }

    static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02d-%02d%02d%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// Splits a name (plaintext or encrypted) into stack and UTC time; nil for names that are not StackVault
    /// archives.
    public static func parse(_ name: String) -> (stack: String, date: Date)? {
        let suffix = isEncrypted(name) ? encryptedSuffix : plainSuffix
        guard name.hasPrefix("backup-"), name.hasSuffix(suffix) else { return nil }
        let core = name.dropFirst("backup-".count).dropLast(suffix.count)
        // The uuid is 36 characters, the time 15; both are preceded by '-'.
        guard core.count > 36 + 1 + 15 + 1 else { return nil }
        let uuidPart = core.suffix(36)
        guard UUID(uuidString: String(uuidPart)) != nil else { return nil }
        let rest = core.dropLast(37)
        let timePart = rest.suffix(15)
        let stack = rest.dropLast(16)
        guard !stack.isEmpty, rest.dropLast(15).hasSuffix("-") else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        guard let date = formatter.date(from: String(timePart)) else { return nil }
        return (String(stack), date)
    }
}

/// Human-readable byte counts (`1.5 GiB`).
public struct ByteCount: CustomStringConvertible, Sendable {
    public var bytes: Int64
    public init(_ bytes: Int64) { self.bytes = bytes }
    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
