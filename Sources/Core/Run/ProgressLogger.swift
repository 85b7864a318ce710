public import Logging
import Foundation
import Synchronization

/// Logs bytes and rate of a long copy, at most every few seconds.
public final class ProgressLogger: Sendable {
    private struct State {
        var lastLog: ContinuousClock.Instant
        var lastBytes: Int64 = 0
        var bytes: Int64 = 0
    }

    private let logger: Logger
    private let label: String
    private let interval: Duration
    private let started = ContinuousClock.now
    private let state: Mutex<State>

    public init(logger: Logger, label: String, interval: Duration = .seconds(5)) {
        self.logger = logger
        self.label = label
        self.interval = interval
        self.state = Mutex(State(lastLog: ContinuousClock.now))
    }

    /// `bytes` is the running total so far.
    public func report(_ bytes: Int64) {
        let now = ContinuousClock.now
        let line: String? = state.withLock { state in
            state.bytes = bytes
            guard now - state.lastLog >= interval else { return nil }
            let rate = Double(bytes - state.lastBytes) / (now - state.lastLog).seconds
            state.lastLog = now
            state.lastBytes = bytes
            return "\(label): \(ByteCount(bytes)) read, \(ByteCount(Int64(rate)))/s"
        }
        if let line { logger.info("\(line)") }
    }

    public func finish() {
        let bytes = state.withLock { $0.bytes }
        let elapsed = (ContinuousClock.now - started).seconds
        guard elapsed > 0, bytes > 0 else { return }
        logger.debug("\(label): \(ByteCount(bytes)) in \(String(format: "%.1f", elapsed)) s")
    }
}
