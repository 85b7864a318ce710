import StackVaultCore
import Foundation
public import Logging

/// How often, and how patiently, storage operations are retried after transient failures.
///
/// Exponential backoff with "equal jitter": before attempt `n + 1` the wait is a random value between half and all
/// of `min(maxDelay, baseDelay * 2^(n-1))`, so a crowd of retrying clients spreads out but always waits.
/// Whether an error is worth another try is the error's own answer (`StackVaultError.isTransient`,
/// `HTTPTransportError.isTransient`), never decided here.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts per operation, the first one included (`S3_MAX_ATTEMPTS` for S3; default 6).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public static let defaultMaxAttempts = 6

    public init(maxAttempts: Int = RetryPolicy.defaultMaxAttempts, baseDelay: Duration = .milliseconds(500),
                maxDelay: Duration = .seconds(30)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait after failed attempt `attempt` (1-based), for a `random` value in 0...1.
    public func delay(afterAttempt attempt: Int, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        var ceiling = baseDelay * (1 << exponent)
        if ceiling > maxDelay { ceiling = maxDelay }
        let fraction = 0.5 + 0.5 * min(max(random, 0), 1)
        return ceiling * fraction
    }

    /// Whether a thrown error may pass: transport errors (connection refused or reset, timeouts) and
    /// `StackVaultError`s marked transient. Cancellation never is.
    public static func isTransient(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPTransportError: error.isTransient
        case let error as StackVaultError: error.code != .cancelled && error.isTransient
        default: false
        }
    }

    /// Runs `operation` until it succeeds, a permanent error occurs, or the attempts run out; sleeps with backoff
    /// between attempts and logs each retry. `what` names the operation in log lines and in the cancellation
    /// error; an error after more than one attempt says how many were made.
    public func run<T: Sendable>(
        _ what: String,
        logger: Logger,
        operation: (_ attempt: Int) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await operation(attempt)
            } catch {
                guard Self.isTransient(error), attempt < maxAttempts else {
                    if attempt > 1, var failure = error as? StackVaultError {
                        failure.message += " (gave up after \(attempt) attempts)"
                        throw failure
                    }
                    throw error
                }
                let delay = delay(afterAttempt: attempt, random: Double.random(in: 0...1))
                let wait = String(format: "%.1f", delay.seconds)
                let message = "storage: \(what): attempt \(attempt) of \(maxAttempts) failed, retrying in \(wait) s: "
                    + "\(error)"
                logger.warning("\(message)")
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw StackVaultError(.cancelled, "\(what) was cancelled")
                }
                attempt += 1
            }
        }
    }
}
