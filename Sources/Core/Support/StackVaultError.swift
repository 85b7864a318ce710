/// An error a user can act on: what failed, where, and why.
///
/// Modelled on swift-nio's `FileSystemError`: an extensible code, a human message, the place it happened
/// and the underlying cause. `isTransient` lets retry logic tell a passing fault from a permanent one.
public struct StackVaultError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        public static let dockerUnreachable = Code(raw: "docker-unreachable")
        public static let dockerAPI = Code(raw: "docker-api")
        public static let http = Code(raw: "http")
        public static let invalidLabel = Code(raw: "invalid-label")
        public static let missingCredentials = Code(raw: "missing-credentials")
        public static let dumpFailed = Code(raw: "dump-failed")
        public static let archive = Code(raw: "archive")
        public static let compression = Code(raw: "compression")
        public static let crypto = Code(raw: "crypto")
        public static let storage = Code(raw: "storage")
        public static let invalidConfiguration = Code(raw: "invalid-configuration")
        public static let insufficientSpace = Code(raw: "insufficient-space")
        public static let verification = Code(raw: "verification")
        public static let containerRestart = Code(raw: "container-restart")
        public static let cancelled = Code(raw: "cancelled")
        public static let io = Code(raw: "io")
        public static let duplicatePlugin = Code(raw: "duplicate-plugin")
    }

    public var code: Code
    /// One sentence a person understands: what failed, on which stack/service/container, and what to do.
    public var message: String
    /// True when trying again later may succeed (connection reset, 503, timeouts).
    public var isTransient: Bool
    /// The lower-level error, if any.
    public var cause: (any Error & Sendable)?
    /// The system call that failed, when one did (its name and errno are also in ``message``).
    public var systemCall: SystemCallError?

    public init(_ code: Code, _ message: String, isTransient: Bool = false, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.isTransient = isTransient
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
