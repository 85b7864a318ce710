internal import COpenSSL

/// The birational map from an Ed25519 public key to the X25519 public key of the same secret (RFC 7748 section 4.1:
/// u = (1 + y) / (1 - y) mod 2^255 - 19), which age's ssh-ed25519 recipient type needs.
///
/// OpenSSL has no call for this conversion, so it is computed with OpenSSL's BIGNUM modular arithmetic
/// (`BN_mod_sub`, `BN_mod_inverse`, `BN_mod_mul`): only public data goes through it, so BIGNUM not being
/// constant-time does not matter.
enum Ed25519ToX25519 {
    /// The X25519 u-coordinate (32 bytes, little-endian) for the 32-byte Ed25519 public key `edwards`, or nil when
    /// y = 1 (no such point).
    static func publicKey(_ edwards: [UInt8]) -> [UInt8]? {
        precondition(edwards.count == 32)
        var littleEndianY = edwards
        littleEndianY[31] &= 0x7f  // the top bit is the sign of x
        guard let context = BN_CTX_new() else { return nil }
        defer { BN_CTX_free(context) }
        var prime: OpaquePointer? = nil
        guard BN_hex2bn(&prime, "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed") > 0, let prime else {
            return nil
        }
        let y = littleEndianY.withUnsafeBufferPointer { BN_lebin2bn($0.baseAddress, 32, nil) }
        let numerator = BN_new()
        let denominator = BN_new()
        let u = BN_new()
        var inverse: OpaquePointer? = nil
        defer {
            BN_free(prime)
            BN_free(y)
            BN_free(numerator)
            BN_free(denominator)
            BN_free(u)
            BN_free(inverse)
        }
        guard let y, let numerator, let denominator, let u,
            BN_mod_add(numerator, BN_value_one(), y, prime, context) == 1,
            BN_mod_sub(denominator, BN_value_one(), y, prime, context) == 1
        else { return nil }
        inverse = BN_mod_inverse(nil, denominator, prime, context)
        guard let inverse, BN_mod_mul(u, numerator, inverse, prime, context) == 1 else {
            ERR_clear_error()
            return nil
        }
        var out = [UInt8](repeating: 0, count: 32)
        guard out.withUnsafeMutableBufferPointer({ BN_bn2lebinpad(u, $0.baseAddress, 32) }) == 32 else { return nil }
        return out
    }
}
