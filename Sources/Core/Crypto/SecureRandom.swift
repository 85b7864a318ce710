internal import COpenSSL

/// Bytes from OpenSSL's CSPRNG (`RAND_bytes`), for keys, nonces and salts.
enum SecureRandom {
    /// `count` random bytes. Traps if OpenSSL's generator cannot be seeded: continuing would make guessable keys.
    static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let result = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        guard result == 1 else { fatalError("OpenSSL RAND_bytes failed: \(openSSLError())") }
        return out
    }
}
