/// The file under the archive writer's age stage: appends, positional overwrites, flushes, and knows its size.
protocol AgeOutputFile: AnyObject, ByteSink {
    /// Bytes written so far (the file's size once flushed).
    var totalBytes: Int64 { get }
    func flush() throws
    func write(_ bytes: [UInt8], at offset: Int64) throws
}

/// The archive writer's encryption stage: the compressed tar stream in, one age file out into the archive file.
///
/// Beyond a plain ``AgeEncryptor`` it gives the writer the two things its read-back and its header rooms need:
/// - ``alignToChunk(minimumPadding:padding:)`` pads the plaintext to a chunk boundary (with bytes the
///   decompressor skips, e.g. a zstd skippable frame) and seals the chunk, so the file holds, decryptable,
///   everything written so far: what the read-back needs before it may reach a point;
/// - ``reserveChunk()`` / ``fill(_:plaintext:)`` reserve one whole chunk for a file's tar header and seal it once
///   the header is known, writing it over the placeholder; each counter is sealed exactly once.
final class AgeArchiveOutput: ByteSink {
    let encryptor: AgeEncryptor
    private let file: any AgeOutputFile

    init(recipients: [any AgeRecipient], file: any AgeOutputFile) throws {
        encryptor = try AgeEncryptor(recipients: recipients, writingTo: file)
        self.file = file
    }

    /// The key to read back this archive with (``ArchiveDecryption/fileKey(_:)``); forgotten with this stage.
    var fileKey: AgeFileKey { encryptor.fileKey }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try encryptor.write(bytes)
    }

    /// Pads to the next chunk boundary with `padding(count)` (`count` is at least `minimumPadding`, so a whole
    /// chunk more when the boundary is nearer), seals the chunk and flushes the file. Returns the file offset of
    /// the boundary: the file can be decrypted up to there.
    @discardableResult
    func alignToChunk(minimumPadding: Int, padding: (Int) throws -> [UInt8]) throws -> Int64 {
        var count = encryptor.bytesToChunkBoundary
        if count > 0, count < minimumPadding { count += AgePayload.chunkSize }
        if count > 0 {
            let bytes = try padding(count)
            precondition(bytes.count == count, "padding of the wrong length")
            try bytes.withUnsafeBytes { try encryptor.write($0) }
        }
        try encryptor.sealFullChunk()
        try file.flush()
        return file.totalBytes
    }

    /// Reserves the next whole chunk (64 KiB of plaintext) at a chunk boundary; the writer fills it later.
    func reserveChunk() throws -> AgeEncryptor.ReservedChunk {
        let reserved = try encryptor.reserveChunk()
        try file.flush()
        return reserved
    }

    /// Seals the reserved chunk with `plaintext` (exactly 64 KiB) and writes it in its place.
    func fill(_ reserved: AgeEncryptor.ReservedChunk, plaintext: [UInt8]) throws {
        try file.write(try encryptor.seal(reserved: reserved, plaintext: plaintext), at: reserved.fileOffset)
    }

    /// Seals the final chunk and flushes the file.
    func finish() throws {
        try encryptor.finish()
        try file.flush()
    }

    /// How to decrypt the file from `offset` (a chunk boundary returned by ``alignToChunk(minimumPadding:padding:)``)
    /// to its end.
    func decryption(resumingAt offset: Int64) -> ArchiveDecryption {
        let chunk = UInt64((offset - encryptor.payloadStart) / Int64(AgePayload.sealedChunkSize))
        return .resume(fileKey, payloadNonce: encryptor.payloadNonce, firstChunk: chunk)
    }
}

/// How a reader gets the plaintext of an age-encrypted archive.
public enum ArchiveDecryption: Sendable {
    /// A file read from its start with the keys from `AGE_IDENTITY_FILE` or the passphrase.
    case identities([any AgeIdentity])
    /// A file read from its start by the writer that knows its key.
    case fileKey(AgeFileKey)
    /// A file read from chunk `firstChunk` on by the writer that knows its key and nonce.
    case resume(AgeFileKey, payloadNonce: [UInt8], firstChunk: UInt64)

    /// A decryptor writing the plaintext into `downstream`.
    public func makeDecryptor(writingTo downstream: any ByteSink) throws -> AgeDecryptor {
        switch self {
        case .identities(let identities):
            AgeDecryptor(identities: identities, writingTo: downstream)
        case .fileKey(let key):
            AgeDecryptor(fileKey: key, writingTo: downstream)
        case .resume(let key, let nonce, let chunk):
            try AgeDecryptor(fileKey: key, payloadNonce: nonce, firstChunk: chunk, writingTo: downstream)
        }
    }
}

/// The archive file under the age stage.
extension ArchiveFileSink: AgeOutputFile {}
