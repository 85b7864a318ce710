/// The STREAM construction of the age payload.
///
/// Source: age-encryption.org/v1, "Payload": a 16-byte nonce, then the plaintext in 64 KiB chunks, each sealed with
/// ChaCha20-Poly1305 under payload key = HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload") and the
/// 12-byte nonce `11-byte big-endian chunk counter || 0x01 for the final chunk, else 0x00`. The final chunk may be
/// shorter than 64 KiB and is empty only when the whole payload is.
struct AgePayload {
    /// Plaintext bytes per chunk.
    static let chunkSize = 64 * 1024
    /// Bytes per sealed chunk (all but the last are exactly this long).
    static let sealedChunkSize = chunkSize + ChaCha20Poly1305.tagByteCount
    /// Length of the payload nonce that starts the payload.
    static let nonceSize = 16

    /// The payload key for `fileKey` and the payload nonce.
    static func key(fileKey: AgeFileKey, nonce: [UInt8]) throws -> [UInt8] {
        try HKDFSHA256.deriveKey(inputKeyMaterial: fileKey.bytes, salt: nonce, info: Array("payload".utf8))
    }

    /// The ChaCha20-Poly1305 nonce of chunk `counter`.
    static func chunkNonce(counter: UInt64, last: Bool) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: ChaCha20Poly1305.nonceByteCount)
        for index in 0..<8 { nonce[10 - index] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(index))) }
        nonce[11] = last ? 1 : 0
        return nonce
    }

    /// Whether `count` bytes after the payload nonce can be a complete STREAM (full chunks, then one final chunk of
    /// 17 to 65552 bytes, or only an empty final chunk). Needs no key: a structural check for archives read
    /// without the identity.
    static func isPlausibleLength(_ count: UInt64) -> Bool {
        if count == UInt64(ChaCha20Poly1305.tagByteCount) { return true }
        guard count > 0 else { return false }
        let remainder = count % UInt64(sealedChunkSize)
        return remainder == 0 || remainder > UInt64(ChaCha20Poly1305.tagByteCount)
    }
}
