public import Logging
import Foundation

/// Log metadata as JSON values, for `LOG_FORMAT=json` (`Runner/JSONLogHandler`, which serialises them with
/// `JSONSerialization`).
public enum LogMetadataJSON {
    /// `value` as a JSON-compatible value: integers, floating-point numbers and booleans given as
    /// `.stringConvertible` stay numbers and booleans (the `progress_*` fields of ``ProgressLine``); strings, and the
    /// description of anything else, are strings; arrays and dictionaries are converted element by element.
    public static func value(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let bool as Bool): bool
        case .stringConvertible(let number as any BinaryInteger):
            Int64(exactly: number).map { NSNumber(value: $0) } ?? number.description
        case .stringConvertible(let number as Double): number.isFinite ? NSNumber(value: number) : number.description
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(Self.value)
        case .dictionary(let entries): entries.mapValues(Self.value)
        }
    }
}
