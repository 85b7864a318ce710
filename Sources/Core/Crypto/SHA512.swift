internal import COpenSSL

/// One-shot SHA-512 (FIPS 180-4) through OpenSSL's `EVP_Digest`.
///
/// Used to turn an Ed25519 seed into its X25519 scalar (RFC 8032, section 5.1.5: the first half of SHA-512(seed)).
enum SHA512 {
    /// The 64-byte digest of `bytes`.
    static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let storage = bytes.isEmpty ? [0] : bytes
        let result = storage.withUnsafeBytes { input in
            out.withUnsafeMutableBufferPointer { EVP_Digest(input.baseAddress, bytes.count, $0.baseAddress, &length, EVP_sha512(), nil) }
        }
        guard result == 1, length == 64 else { fatalError("OpenSSL SHA-512 failed: \(openSSLError())") }
        return Array(out.prefix(64))
    }
}
