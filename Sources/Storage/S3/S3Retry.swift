import StackVaultCore
import Foundation
import Logging

/// How often, and how patiently, S3 requests are retried after transient failures.
///
/// Exponential backoff with "equal jitter": before attempt `n + 1` the wait is a random value between half and all
/// of `min(maxDelay, baseDelay * 2^(n-1))`, so a crowd of retrying parts spreads out but always waits.
public struct S3RetryPolicy: Sendable, Equatable {
    /// Attempts per request, the first one included.
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30)) {
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
}

/// Tells passing faults from permanent ones, for S3 responses and transport errors.
public enum S3RetryClassifier {
    /// S3 error codes worth another try: throttling, server trouble, and corruption in flight (the part is re-read
    /// from the file and sent again).
    public static let transientCodes: Set<String> = [
        "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "ThrottlingException",
        "RequestThrottled", "TooManyRequests", "OperationAborted", "BadDigest", "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    ]

    /// Codes that never get better by waiting: credentials, permissions, a missing bucket, a wrong region.
    public static let permanentCodes: Set<String> = [
        "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket", "NoSuchKey", "NoSuchUpload",
        "InvalidBucketName", "AuthorizationHeaderMalformed", "PermanentRedirect", "ExpiredToken", "InvalidToken",
        "RequestTimeTooSkewed", "EntityTooLarge", "EntityTooSmall", "InvalidPart", "InvalidPartOrder",
        "AccountProblem", "AllAccessDisabled", "InvalidArgument", "InvalidRequest", "MethodNotAllowed",
        "NotImplemented",
    ]

    /// Whether an S3 error response may succeed when sent again.
    public static func isTransient(status: Int, code: String?) -> Bool {
        if let code {
            if transientCodes.contains(code) { return true }
            if permanentCodes.contains(code) { return false }
        }
        return [408, 429, 500, 502, 503, 504].contains(status)
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
}

/// Runs `operation` until it succeeds, a permanent error occurs, or the attempts run out; sleeps with backoff
/// between attempts. `what` names the operation in the cancellation error (the thrown errors name it already).
func withS3Retries<T: Sendable>(
    _ what: String,
    policy: S3RetryPolicy,
    logger: Logger,
    operation: (_ attempt: Int) async throws -> T
) async throws -> T {
    var attempt = 1
    while true {
        do {
            return try await operation(attempt)
        } catch {
            guard S3RetryClassifier.isTransient(error), attempt < policy.maxAttempts else {
                if attempt > 1, var failure = error as? StackVaultError {
                    failure.message += " (gave up after \(attempt) attempts)"
                    throw failure
                }
                throw error
            }
            let delay = policy.delay(afterAttempt: attempt, random: Double.random(in: 0...1))
            let wait = String(format: "%.1f", delay.seconds)
            logger.warning("S3: attempt \(attempt) of \(policy.maxAttempts) failed, retrying in \(wait) s: \(error)")
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw StackVaultError(.cancelled, "\(what) was cancelled")
            }
            attempt += 1
        }
    }
}
