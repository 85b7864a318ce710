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
        plaintextOffset += Int64(bytes.count)
    }

    /// Seals the final chunk and writes it. Call once, after the last write.
    public func finish() throws {
        precondition(!finished, "AgeEncryptor.finish called twice")
        try writeHeaderOnce()
        guard filled > 0 || counter == 0 else {
            throw StackVaultError(.archive, "age: the stream ended right after a sealed chunk; a final chunk cannot be empty")
        }
        try sealChunk(last: true)
        finished = true
    }

    // MARK: Chunk-aligned writing, for the archive writer

    /// Plaintext bytes written so far.
    public private(set) var plaintextOffset: Int64 = 0
    /// Bytes of the file before the first chunk: header and payload nonce.
    public var payloadStart: Int64 { Int64(header.count) }
    /// The 16-byte payload nonce (with ``fileKey``, what a reader resuming mid-file needs).
    public var payloadNonce: [UInt8] { Array(header.suffix(AgePayload.nonceSize)) }
    /// Plaintext bytes still needed to fill the current chunk (0 at a chunk boundary).
    public var bytesToChunkBoundary: Int { filled == 0 || filled == AgePayload.chunkSize ? 0 : AgePayload.chunkSize - filled }
    /// The index of the chunk the next byte goes into.
    public var nextChunkIndex: UInt64 { filled == AgePayload.chunkSize ? counter + 1 : counter }
    /// Where chunk `index` starts in the file.
    public func fileOffset(ofChunk index: UInt64) -> Int64 { payloadStart + Int64(index) * Int64(AgePayload.sealedChunkSize) }

    /// At a chunk boundary, seals and writes the full chunk held back until now, as a middle chunk, so that a
    /// reader of the file can decrypt everything written so far. The caller promises more plaintext will follow
    /// (a final chunk cannot be empty); ``finish()`` throws otherwise.
    public func sealFullChunk() throws {
        precondition(bytesToChunkBoundary == 0, "sealFullChunk away from a chunk boundary")
        try writeHeaderOnce()
        if filled == AgePayload.chunkSize { try sealChunk(last: false) }
    }

    /// A chunk whose place in the file is reserved and whose plaintext comes later (``seal(reserved:plaintext:)``).
    public struct ReservedChunk: Sendable, Equatable {
        /// The chunk's index in the payload.
        public let index: UInt64
        /// Where its sealed form goes in the file.
        public let fileOffset: Int64
    }

    /// At a chunk boundary (after ``sealFullChunk()``), reserves the next chunk: writes zeros in its place and
    /// moves on, so that what is written next lands in the chunk after it. Each reserved chunk must be sealed
    /// exactly once with ``seal(reserved:plaintext:)``; its counter is never used for anything else.
    public func reserveChunk() throws -> ReservedChunk {
        try sealFullChunk()
        precondition(filled == 0, "reserveChunk away from a chunk boundary")
        let reserved = ReservedChunk(index: counter, fileOffset: fileOffset(ofChunk: counter))
        counter += 1
        plaintextOffset += Int64(AgePayload.chunkSize)
        sealed.initializeMemory(as: UInt8.self, repeating: 0)
        try downstream.write(UnsafeRawBufferPointer(sealed))
        return reserved
    }

    /// The sealed form of a reserved chunk (exactly 64 KiB of `plaintext`, a middle chunk), to be written at
    /// `reserved.fileOffset` over the zeros.
    public func seal(reserved: ReservedChunk, plaintext: [UInt8]) throws -> [UInt8] {
        precondition(plaintext.count == AgePayload.chunkSize, "a reserved chunk holds exactly 64 KiB")
        var out = [UInt8](repeating: 0, count: AgePayload.sealedChunkSize)
        _ = try plaintext.withUnsafeBytes { input in
            try out.withUnsafeMutableBytes { try aead.seal(nonce: AgePayload.chunkNonce(counter: reserved.index, last: false), plaintext: input, into: $0) }
        }
        return out
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
