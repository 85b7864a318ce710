import Foundation
import Logging
import StackVaultCore
import Synchronization

/// `LOG_FORMAT`: `text` (default, swift-log's stream format) or `json` (one object per line, for log shippers).
enum LogFormat: String {
    case text, json

    init(environment: [String: String]) throws {
        let value = (environment["LOG_FORMAT"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        guard let format = value.isEmpty ? .text : LogFormat(rawValue: value) else {
            throw StackVaultError(.invalidConfiguration,
                "LOG_FORMAT='\(environment["LOG_FORMAT"] ?? "")' is not supported: use text or json")
        }
        self = format
    }
}

/// Where log lines go.
enum LogDestination {
    case standardOutput, standardError

    var handle: FileHandle { self == .standardOutput ? .standardOutput : .standardError }
}

/// Writes each log event as one JSON object on one line:
/// `{"level":"info","logger":"stackvault","message":"...","metadata":{"stack":"app"},"time":"2024-...Z"}`
/// (keys sorted; `metadata` only when there is some; `error` when the event carries one).
struct JSONLogHandler: LogHandler {
    let label: String
    let destination: LogDestination
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    /// Lines from concurrent tasks must not interleave.
    private static let output = Mutex(())

    init(label: String, destination: LogDestination) {
        self.label = label
        self.destination = destination
        self.metadataProvider = LoggingSystem.metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        var object: [String: Any] = [
            "time": Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date()),
            "level": event.level.rawValue,
            "logger": label,
            "message": event.message.description,
        ]
        if !merged.isEmpty { object["metadata"] = merged.mapValues(LogMetadataJSON.value) }
        if let error = event.error { object["error"] = "\(error)" }
        guard var line = try? JSONSerialization.data(withJSONObject: object,
                                                     options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        line.append(UInt8(ascii: "\n"))
        let handle = destination.handle
        Self.output.withLock { _ in handle.write(line) }
    }
}
