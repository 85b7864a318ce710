internal import COpenSSL

/// X25519 Diffie-Hellman (RFC 7748) through OpenSSL's `EVP_PKEY` interface.
///
/// Keys and points are the 32-byte little-endian strings of RFC 7748; OpenSSL clamps scalars as section 5 says.
struct X25519PrivateKey: Sendable {
    /// Size of a scalar and of a point, in bytes.
    static let byteCount = 32

    /// The 32-byte secret scalar (unclamped; clamping happens in every use).
    let rawRepresentation: [UInt8]
    /// X25519(scalar, basepoint).
    let publicKey: [UInt8]

    /// A fresh key from OpenSSL's CSPRNG.
    init() throws {
        try self.init(rawRepresentation: SecureRandom.bytes(Self.byteCount))
    }

    /// The key whose scalar is `rawRepresentation` (32 bytes).
    init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == Self.byteCount else {
            throw StackVaultError(.crypto, "an X25519 secret key has 32 bytes, not \(rawRepresentation.count)")
        }
        self.rawRepresentation = rawRepresentation
        let key = try EVPKey(x25519Private: rawRepresentation)
        var publicKey = [UInt8](repeating: 0, count: Self.byteCount)
        var length = publicKey.count
        try openSSLCheck(
            publicKey.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(key.pointer, $0.baseAddress, &length) },
            "EVP_PKEY_get_raw_public_key(X25519)"
        )
        self.publicKey = publicKey
    }

    /// X25519(scalar, `peer`). Throws when `peer` is not 32 bytes or the result is all zeros (a low-order point,
    /// which RFC 7748 section 6.1 lets a protocol reject and age requires rejecting).
    func sharedSecret(with peer: [UInt8]) throws -> [UInt8] {
        guard peer.count == Self.byteCount else {
            throw StackVaultError(.crypto, "an X25519 point has 32 bytes, not \(peer.count)")
        }
        let key = try EVPKey(x25519Private: rawRepresentation)
        let peerKey = try EVPKey(x25519Public: peer)
        guard let context = EVP_PKEY_CTX_new(key.pointer, nil) else {
            throw StackVaultError(.crypto, "OpenSSL: EVP_PKEY_CTX_new failed: \(openSSLError())")
        }
        defer { EVP_PKEY_CTX_free(context) }
        try openSSLCheck(EVP_PKEY_derive_init(context), "EVP_PKEY_derive_init(X25519)")
        try openSSLCheck(EVP_PKEY_derive_set_peer(context, peerKey.pointer), "EVP_PKEY_derive_set_peer(X25519)")
        var secret = [UInt8](repeating: 0, count: Self.byteCount)
        var length = secret.count
        // OpenSSL refuses an all-zero result; check again so the rule does not depend on its version.
        let result = secret.withUnsafeMutableBufferPointer { EVP_PKEY_derive(context, $0.baseAddress, &length) }
        ERR_clear_error()
        guard result == 1, length == Self.byteCount, secret.contains(where: { $0 != 0 }) else {
            throw StackVaultError(.crypto, "X25519 with a low-order point gives the all-zero shared secret")
        }
        return secret
    }
}

/// Owns one `EVP_PKEY`, freed in `deinit`.
final class EVPKey {
    let pointer: OpaquePointer

    convenience init(x25519Private bytes: [UInt8]) throws { try self.init(x25519: bytes, isPrivate: true) }

    convenience init(x25519Public bytes: [UInt8]) throws { try self.init(x25519: bytes, isPrivate: false) }

    private init(x25519 bytes: [UInt8], isPrivate: Bool) throws {
        let key = bytes.withUnsafeBufferPointer {
            isPrivate
                ? EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, $0.baseAddress, $0.count)
                : EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, $0.baseAddress, $0.count)
        }
        guard let key else {
            throw StackVaultError(.crypto, "OpenSSL: cannot load an X25519 key: \(openSSLError())")
        }
        pointer = key
    }

    deinit {
        EVP_PKEY_free(pointer)
    }
}
