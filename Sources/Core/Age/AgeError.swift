/// Why an age file could not be decrypted, in the classes the age test vectors (C2SP CCTV) distinguish.
///
/// `message` says what was wrong and what to do; it never contains key material or a passphrase.
public struct AgeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: String, Sendable, Equatable {
        /// The header is not a well-formed age v1 header (or a stanza for our identity is malformed).
        case headerFormat = "header failure"
        /// No identity given could unwrap the file key: wrong key or passphrase.
        case noMatchingIdentity = "no match"
        /// The file key was unwrapped but the header MAC does not verify: the header was tampered with.
        case headerMAC = "HMAC failure"
        /// A payload chunk does not authenticate (damaged or tampered payload), or data follows the final chunk.
        case payload = "payload failure"
        /// The file ends before its final chunk: it was cut short (an interrupted upload or copy).
        case truncated = "truncated"
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "age: \(message)" }
}

extension AgeError {
    /// This error as a ``StackVaultError`` (code `crypto`), for callers that report StackVault errors.
    public var stackVaultError: StackVaultError {
        StackVaultError(.crypto, description, cause: self)
    }
}
