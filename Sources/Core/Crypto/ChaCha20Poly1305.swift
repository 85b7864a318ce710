internal import COpenSSL

/// ChaCha20-Poly1305 (RFC 8439) through OpenSSL's `EVP_CIPHER` interface, for one key and one direction.
///
/// Holds one `EVP_CIPHER_CTX` (freed in `deinit`) that is re-keyed with each nonce, so sealing many chunks
/// allocates nothing. No associated data (age uses none). Not thread-safe: one instance per stream.
final class ChaCha20Poly1305 {
    /// Key size in bytes.
    static let keyByteCount = 32
    /// Nonce size in bytes.
    static let nonceByteCount = 12
    /// Authentication tag size in bytes; a sealed message is its plaintext length plus this.
    static let tagByteCount = 16

    /// Which way the instance works.
    enum Direction { case seal, open }

    private let context: OpaquePointer
    private let direction: Direction

    /// Thrown by ``open(nonce:ciphertext:into:)`` when the tag does not match: wrong key, or damaged data.
    struct AuthenticationFailure: Error {}

    init(key: [UInt8], direction: Direction) throws {
        precondition(key.count == Self.keyByteCount, "ChaCha20-Poly1305 keys have 32 bytes")
        guard let context = EVP_CIPHER_CTX_new() else {
            throw StackVaultError(.crypto, "OpenSSL: cannot allocate an EVP_CIPHER_CTX")
        }
        self.context = context
        self.direction = direction
        let encrypt: Int32 = direction == .seal ? 1 : 0
        try openSSLCheck(
            key.withUnsafeBufferPointer { EVP_CipherInit_ex(context, EVP_chacha20_poly1305(), nil, $0.baseAddress, nil, encrypt) },
            "EVP_CipherInit_ex(ChaCha20-Poly1305)"
        )
    }

    deinit {
        EVP_CIPHER_CTX_free(context)
    }

    /// Encrypts `plaintext` under the 12-byte `nonce`, writing ciphertext then tag into `output` (at least
    /// `plaintext.count + 16` bytes). Returns the number of bytes written.
    func seal(nonce: [UInt8], plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(direction == .seal && nonce.count == Self.nonceByteCount)
        precondition(output.count >= plaintext.count + Self.tagByteCount)
        try start(nonce: nonce)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var written: Int32 = 0
        if plaintext.count > 0 {
            try openSSLCheck(
                EVP_CipherUpdate(context, out, &written, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)),
                "EVP_CipherUpdate(ChaCha20-Poly1305)"
            )
        }
        var finalLength: Int32 = 0
        try openSSLCheck(EVP_CipherFinal_ex(context, out + Int(written), &finalLength), "EVP_CipherFinal_ex(ChaCha20-Poly1305)")
        let length = Int(written + finalLength)
        try openSSLCheck(
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagByteCount), out + length),
            "EVP_CTRL_AEAD_GET_TAG"
        )
        return length + Self.tagByteCount
    }

    /// Decrypts `ciphertext` (data then 16-byte tag) under `nonce` into `output` (at least `ciphertext.count - 16`
    /// bytes). Returns the plaintext length. Throws ``AuthenticationFailure`` when the tag does not verify; then
    /// `output` holds nothing to use.
    func open(nonce: [UInt8], ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(direction == .open && nonce.count == Self.nonceByteCount)
        guard ciphertext.count >= Self.tagByteCount else { throw AuthenticationFailure() }
        let dataLength = ciphertext.count - Self.tagByteCount
        precondition(output.count >= dataLength)
        try start(nonce: nonce)
        let input = ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var tag = Array(UnsafeRawBufferPointer(rebasing: ciphertext[dataLength...]))
        try openSSLCheck(
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagByteCount), &tag),
            "EVP_CTRL_AEAD_SET_TAG"
        )
        let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var written: Int32 = 0
        if dataLength > 0 {
            try openSSLCheck(
                EVP_CipherUpdate(context, out, &written, input, Int32(dataLength)), "EVP_CipherUpdate(ChaCha20-Poly1305)"
            )
        }
        var finalLength: Int32 = 0
        var scratch: UInt8 = 0
        let finalResult = withUnsafeMutablePointer(to: &scratch) { scratchPointer in
            EVP_CipherFinal_ex(context, out.map { $0 + Int(written) } ?? scratchPointer, &finalLength)
        }
        guard finalResult == 1 else {
            ERR_clear_error()
            throw AuthenticationFailure()
        }
        return Int(written + finalLength)
    }

    private func start(nonce: [UInt8]) throws {
        try openSSLCheck(
            nonce.withUnsafeBufferPointer { EVP_CipherInit_ex(context, nil, nil, nil, $0.baseAddress, -1) },
            "EVP_CipherInit_ex(nonce)"
        )
    }
}

extension ChaCha20Poly1305 {
    /// Seals `plaintext` as one message (for small things such as a wrapped file key).
    static func seal(key: [UInt8], nonce: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        let aead = try ChaCha20Poly1305(key: key, direction: .seal)
        var output = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        let length = try plaintext.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes { try aead.seal(nonce: nonce, plaintext: input, into: $0) }
        }
        return Array(output.prefix(length))
    }

    /// Opens one sealed message; throws ``AuthenticationFailure`` when it does not verify.
    static func open(key: [UInt8], nonce: [UInt8], ciphertext: [UInt8]) throws -> [UInt8] {
        let aead = try ChaCha20Poly1305(key: key, direction: .open)
        var output = [UInt8](repeating: 0, count: max(1, ciphertext.count))
        let length = try ciphertext.withUnsafeBytes { input in
            try output.withUnsafeMutableBytes { try aead.open(nonce: nonce, ciphertext: input, into: $0) }
        }
        return Array(output.prefix(length))
    }
}
