/// What can be learnt of an age file without a key: its recipients' types and whether its length fits the STREAM
/// layout. This is how `verify` checks an encrypted archive when no identity is configured.
public struct AgeFileSummary: Sendable, Equatable {
    /// The stanza types of the header (`X25519`, `ssh-ed25519`, `scrypt`, ...), in header order.
    public let recipientTypes: [String]
    /// Bytes after the header and payload nonce.
    public let payloadBytes: Int64
    /// Whether `payloadBytes` is a length a complete payload can have (full chunks, then a final chunk of 1 to
    /// 64 KiB of plaintext, or an empty file). A file cut at a chunk boundary still looks complete: only
    /// decryption proves it is.
    public var lengthIsPlausible: Bool { payloadBytes >= 0 && AgePayload.isPlausibleLength(UInt64(payloadBytes)) }

    private init(recipientTypes: [String], payloadBytes: Int64) {
        self.recipientTypes = recipientTypes
        self.payloadBytes = payloadBytes
    }

    /// The summary of a file whose header could not be read.
    public static let unreadable = AgeFileSummary(recipientTypes: [], payloadBytes: -1)

    /// Reads the header at the start of `prefix` (the file's first bytes, enough to hold the header: 1 MiB is
    /// always enough) of a file of `fileSize` bytes. Throws ``AgeError/Kind/headerFormat`` when it is malformed.
    public init(prefix: [UInt8], fileSize: Int64) throws {
        guard let header = try AgeHeader.parse(prefix, atEnd: Int64(prefix.count) >= fileSize) else {
            throw AgeError(.headerFormat, "the age header is longer than the \(prefix.count) bytes read")
        }
        recipientTypes = header.stanzas.map(\.type)
        payloadBytes = fileSize - Int64(header.byteCount) - Int64(AgePayload.nonceSize)
    }
}
