/// Encrypts a byte stream into one age v1 file, as a pipeline stage: plaintext written in, the age file out into
/// `downstream`. Memory is constant (one 64 KiB chunk and its sealed form), whatever the stream's length.
///
/// The header goes out with the first write (or at ``finish()`` for an empty stream); each 64 KiB chunk goes out
/// as soon as the next byte shows it is not the last. ``finish()`` seals the final chunk; without it the file is
/// incomplete and every age reader refuses it.
public final class AgeEncryptor: ByteSink {
    /// The file key of this file. The archive writer keeps it for its own read-back, then drops the encryptor.
    public let fileKey: AgeFileKey
    private let downstream: any ByteSink
    private let header: [UInt8]
    private let aead: ChaCha20Poly1305
    private let plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: AgePayload.chunkSize, alignment: 16)
    private let sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: AgePayload.sealedChunkSize, alignment: 16)
    private var filled = 0
    private var counter: UInt64 = 0
    private var headerWritten = false
    private var finished = false

    /// An encryptor to `recipients` (at least one; a recipient that must be alone, scrypt, must be the only one).
    public init(recipients: [any AgeRecipient], writingTo downstream: any ByteSink) throws {
        guard !recipients.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "age encryption needs at least one recipient")
        }
        if recipients.count > 1, recipients.contains(where: \.mustBeAlone) {
            throw StackVaultError(
                .invalidConfiguration, "a passphrase (scrypt) recipient must be the only recipient of an age file"
            )
        }
        let fileKey = AgeFileKey.generate()
        let nonce = SecureRandom.bytes(AgePayload.nonceSize)
        self.fileKey = fileKey
        self.downstream = downstream
        header = try AgeHeader.encode(recipients.flatMap { try $0.wrap(fileKey) }, fileKey: fileKey) + nonce
        aead = try ChaCha20Poly1305(key: AgePayload.key(fileKey: fileKey, nonce: nonce), direction: .seal)
    }

    deinit {
        plaintext.deallocate()
        sealed.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "AgeEncryptor.write after finish")
        try writeHeaderOnce()
        var offset = 0
        while offset < bytes.count {
            if filled == AgePayload.chunkSize { try sealChunk(last: false) }
            let count = min(AgePayload.chunkSize - filled, bytes.count - offset)
            (plaintext.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            filled += count
            offset += count
        }
    }

    /// Seals the final chunk and writes it. Call once, after the last write.
    public func finish() throws {
        precondition(!finished, "AgeEncryptor.finish called twice")
        try writeHeaderOnce()
        try sealChunk(last: true)
        finished = true
    }

    private func writeHeaderOnce() throws {
        guard !headerWritten else { return }
        headerWritten = true
        try header.withUnsafeBytes { try downstream.write($0) }
    }

    private func sealChunk(last: Bool) throws {
        let length = try aead.seal(
            nonce: AgePayload.chunkNonce(counter: counter, last: last),
            plaintext: UnsafeRawBufferPointer(rebasing: plaintext[..<filled]), into: sealed
        )
        counter += 1
        filled = 0
        try downstream.write(UnsafeRawBufferPointer(rebasing: sealed[..<length]))
    }
}
