/// Someone an age file is encrypted to: wraps the file key into header stanzas only its identity can open.
///
/// Implementations must draw fresh randomness (ephemeral keys, salts) for every call.
public protocol AgeRecipient: Sendable {
    /// The stanzas that carry `fileKey` to this recipient.
    func wrap(_ fileKey: AgeFileKey) throws -> [AgeStanza]
    /// True when age requires this recipient's stanza to be the only one in a header (scrypt).
    var mustBeAlone: Bool { get }
}

extension AgeRecipient {
    public var mustBeAlone: Bool { false }
}

/// A key that can open age files: finds its stanza among a header's and unwraps the file key.
///
/// Implementations must ignore stanzas of other types, return nil when none of theirs opens (wrong key), and
/// throw ``AgeError/Kind/headerFormat`` for a stanza of their own type that is malformed (age-encryption.org/v1
/// lists, per type, the argument counts and lengths to check, and that the body is checked to be 32 bytes before
/// decrypting it).
public protocol AgeIdentity: Sendable {
    /// The file key, or nil when no stanza is for this identity.
    func unwrap(_ stanzas: [AgeStanza]) throws -> AgeFileKey?
}

/// The wrapping every native age stanza shares: ChaCha20-Poly1305 with a zero nonce over the 16-byte file key.
enum AgeKeyWrap {
    private static let zeroNonce = [UInt8](repeating: 0, count: ChaCha20Poly1305.nonceByteCount)

    static func seal(_ fileKey: AgeFileKey, wrapKey: [UInt8]) throws -> [UInt8] {
        try ChaCha20Poly1305.seal(key: wrapKey, nonce: zeroNonce, plaintext: fileKey.bytes)
    }

    /// The file key in `body`, or nil when it does not authenticate under `wrapKey`.
    static func open(_ body: [UInt8], wrapKey: [UInt8]) throws -> AgeFileKey? {
        guard let bytes = try? ChaCha20Poly1305.open(key: wrapKey, nonce: zeroNonce, ciphertext: body) else {
            return nil
        }
        return AgeFileKey(bytes: bytes)
    }

    /// Throws unless `body` is 32 bytes (a sealed 16-byte key); checked before any decryption.
    static func checkBodyLength(_ body: [UInt8], type: String) throws {
        guard body.count == AgeFileKey.byteCount + ChaCha20Poly1305.tagByteCount else {
            throw AgeError(.headerFormat, "the \(type) stanza's body has \(body.count) bytes instead of 32")
        }
    }
}
