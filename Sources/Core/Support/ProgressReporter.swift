public import Logging
import Foundation
import Synchronization

/// How often long operations log their progress, and whether the lines carry machine-readable fields.
public struct ProgressSettings: Sendable, Equatable {
    /// Time between two lines; nil: no progress lines.
    public var interval: Duration?
    /// Attach the numbers as `progress_*` metadata (for `LOG_FORMAT=json`; text logs already say them).
    public var metadataFields: Bool

    public static let defaultInterval: Duration = .seconds(10)

    public init(interval: Duration? = ProgressSettings.defaultInterval, metadataFields: Bool = true) {
        self.interval = interval
        self.metadataFields = metadataFields
    }

    /// `PROGRESS_INTERVAL`: whole seconds between progress lines (default 10), 0 turns them off.
    ///
    /// - Throws: `StackVaultError.invalidConfiguration` for anything but a whole number of 0 to 86400.
    public static func parse(environment: [String: String], metadataFields: Bool) throws -> ProgressSettings {
        let seconds = try EnvironmentValue.integer("PROGRESS_INTERVAL", environment["PROGRESS_INTERVAL"],
                                                   range: 0...86_400, unit: "seconds")
        let interval: Duration? = switch seconds {
        case nil: defaultInterval
        case 0: nil
        case let seconds?: .seconds(seconds)
        }
        return ProgressSettings(interval: interval, metadataFields: metadataFields)
    }
}

/// The size an operation works towards, and whether it is known or only estimated.
public struct ProgressTotal: Sendable, Equatable {
    public var bytes: Int64
    /// True when `bytes` is an estimate (taken before the work, e.g. a directory's size before its copy).
    public var estimated: Bool

    public init(bytes: Int64, estimated: Bool) {
        self.bytes = bytes
        self.estimated = estimated
    }
}

/// One progress line: the text and the same numbers as fields.
public struct ProgressLine: Sendable, Equatable {
    public var operation: String
    public var doneBytes: Int64
    public var total: ProgressTotal?
    /// Bytes per second, averaged over the whole operation so far.
    public var rateBytesPerSecond: Int64
    /// Whole percent of `total` (nil without one, or past an estimate).
    public var percent: Int?
    /// Seconds left at the average rate (nil without a total, without a rate, or past an estimate).
    public var etaSeconds: Int?
    /// `copy of volume-path data (service app): 864.1 MiB of ~1.5 GiB estimated (57 %), 172.3 MiB/s, ETA 4 s`.
    public var message: String

    /// The numbers as log metadata (`progress_operation`, `progress_done_bytes`, `progress_total_bytes`,
    /// `progress_total_estimated`, `progress_rate_bytes_per_second`, `progress_eta_seconds`); a total and an ETA
    /// only where known. Values are numbers and booleans, which the JSON log handler writes as such.
    public var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [
            "progress_operation": .string(operation),
            "progress_done_bytes": .stringConvertible(doneBytes),
            "progress_rate_bytes_per_second": .stringConvertible(rateBytesPerSecond),
        ]
        if let total {
            fields["progress_total_bytes"] = .stringConvertible(total.bytes)
            fields["progress_total_estimated"] = .stringConvertible(total.estimated)
        }
        if let etaSeconds { fields["progress_eta_seconds"] = .stringConvertible(etaSeconds) }
        return fields
    }

    /// Computes the line for `doneBytes` after `elapsed`.
    public init(operation: String, subject: String, doneBytes: Int64, total: ProgressTotal?, elapsed: Duration) {
        self.operation = operation
        self.doneBytes = doneBytes
        self.total = total
        let seconds = elapsed.seconds
        let rate = seconds > 0 ? Double(doneBytes) / seconds : 0
        rateBytesPerSecond = Int64(rate)
        var text = "\(operation) of \(subject): \(ByteCount(doneBytes))"
        if let total {
            let over = total.estimated && doneBytes > total.bytes
            percent = over || total.bytes <= 0 ? nil : Int(min(100, doneBytes * 100 / total.bytes))
            etaSeconds = over || rate <= 0 ? nil : Int((Double(max(0, total.bytes - doneBytes)) / rate).rounded())
            text += " of \(total.estimated ? "~" : "")\(ByteCount(total.bytes))"
                + (total.estimated ? " estimated" : "")
                + (over ? " (more than estimated)" : percent.map { " (\($0) %)" } ?? "")
        } else {
            percent = nil
            etaSeconds = nil
            text += " (total unknown)"
        }
        text += ", \(ByteCount(rateBytesPerSecond))/s"
        if total != nil { text += ", ETA " + (etaSeconds.map(Self.duration) ?? "unknown") }
        message = text
    }

    /// `4 s`, `3 min 20 s`, `2 h 05 min`.
    static func duration(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds) s" }
        if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60) s" }
        return "\(seconds / 3600) h " + String(format: "%02d min", (seconds % 3600) / 60)
    }
}

/// Reports the progress of one long operation (a copy, a dump, an upload, a verification, a restore): the hot path
/// adds bytes with ``add(_:)`` (one relaxed atomic add: no lock, no allocation), and a timer task logs one
/// ``ProgressLine`` every interval of ``ProgressSettings`` (steady, from the operation's start), at info level.
/// Nothing is logged when the operation ends before the first interval.
///
/// The rate is the average over the whole operation, not a moving window: the data of one operation flows through
/// one pipeline at a fairly even speed, and a whole-run average gives an ETA that does not jump with each burst
/// of zstd or each S3 part.
///
/// Call ``start()`` once, ``finish()`` on every path (it stops the timer; releasing the reporter does too).
public final class ProgressReporter: Sendable {
    /// The settings reporters made with the default take: set once by the executable (`PROGRESS_INTERVAL`,
    /// `LOG_FORMAT`); default: every 10 s, with fields.
    public static var settings: ProgressSettings {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
    private static let current = Mutex(ProgressSettings())

    public let operation: String
    public let subject: String
    public let total: ProgressTotal?
    private let done = Atomic<Int64>(0)
    private let started: ContinuousClock.Instant
    private let logger: Logger
    private let settings: ProgressSettings
    private let timer = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - operation: `copy`, `dump`, `upload`, `download`, `verification`, `restore`: the line's first word and
    ///     the `progress_operation` field.
    ///   - subject: what it works on, for the line: `volume-path data (service app)`.
    ///   - total: the bytes it works towards, nil when unknown.
    public init(operation: String, subject: String, total: ProgressTotal?, logger: Logger,
                settings: ProgressSettings = ProgressReporter.settings,
                started: ContinuousClock.Instant = .now) {
        self.operation = operation
        self.subject = subject
        self.total = total
        self.logger = logger
        self.settings = settings
        self.started = started
    }

    deinit {
        timer.withLock { $0?.cancel() }
    }

    /// Counts `bytes` more done. Safe from any thread.
    @inline(__always)
    public func add(_ bytes: Int64) {
        done.add(bytes, ordering: .relaxed)
    }

    /// Sets the bytes done so far (for callers that keep their own running total).
    public func set(_ bytes: Int64) {
        done.store(bytes, ordering: .relaxed)
    }

    public var doneBytes: Int64 { done.load(ordering: .relaxed) }

    /// Starts the timer (no-op when progress lines are off). Returns the reporter.
    @discardableResult
    public func start() -> ProgressReporter {
        guard let interval = settings.interval else { return self }
        let task = Task { [weak self, started] in
            var next = started + interval
            while !Task.isCancelled {
                do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
                guard let self else { return }
                self.log(at: ContinuousClock.now)
                next += interval
            }
        }
        timer.withLock { $0 = task }
        return self
    }

    /// Stops the timer; no more lines.
    public func finish() {
        timer.withLock {
            $0?.cancel()
            $0 = nil
        }
    }

    /// The line due at `now`: nil before one interval has passed since the start (or with lines off).
    public func line(at now: ContinuousClock.Instant) -> ProgressLine? {
        guard let interval = settings.interval, now - started >= interval else { return nil }
        return ProgressLine(operation: operation, subject: subject, doneBytes: doneBytes, total: total,
                            elapsed: now - started)
    }

    /// Logs the line due at `now`, if any.
    public func log(at now: ContinuousClock.Instant) {
        guard let line = line(at: now) else { return }
        logger.info("\(line.message)", metadata: settings.metadataFields ? line.metadata : nil)
    }
}
