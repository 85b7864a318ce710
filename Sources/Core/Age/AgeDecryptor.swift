/// Decrypts one age v1 file as a pipeline stage: the age file written in, the plaintext out into `downstream`.
/// Memory is constant (one sealed chunk and its plaintext) after the header.
///
/// Only authenticated plaintext goes downstream, one 64 KiB chunk at a time. Failures are ``AgeError``s of the
/// class the age test vectors use: a malformed header (``AgeError/Kind/headerFormat``), no identity that opens
/// it (``AgeError/Kind/noMatchingIdentity``), a tampered header (``AgeError/Kind/headerMAC``), a chunk that does
/// not authenticate or data after the final chunk (``AgeError/Kind/payload``), a file that ends before its final
/// chunk (``AgeError/Kind/truncated``). ``finish()`` must be called at the end of the input: only it can tell a
/// complete file from a truncated one.
public final class AgeDecryptor: ByteSink {
    private enum KeySource {
        case identities([any AgeIdentity])
        case fileKey(AgeFileKey)
    }

    private let keySource: KeySource
    private let downstream: any ByteSink
    private var headerBuffer: [UInt8] = []
    private var nonce: [UInt8] = []
    private var aead: ChaCha20Poly1305?
    private let sealed = UnsafeMutableRawBufferPointer.allocate(byteCount: AgePayload.sealedChunkSize, alignment: 16)
    private let plaintext = UnsafeMutableRawBufferPointer.allocate(byteCount: AgePayload.chunkSize, alignment: 16)
    private var filled = 0
    private var counter: UInt64 = 0
    private var sawFinalChunk = false

    /// The header's stanzas, once the header has been read.
    public private(set) var stanzas: [AgeStanza]?
    /// Plaintext bytes passed downstream so far.
    public private(set) var plaintextByteCount: UInt64 = 0

    /// A decryptor that finds the file key with one of `identities`.
    public init(identities: [any AgeIdentity], writingTo downstream: any ByteSink) {
        keySource = .identities(identities)
        self.downstream = downstream
    }

    /// A decryptor for a file whose key is known (the archive writer reading back what it just wrote). The header
    /// MAC is still checked.
    public init(fileKey: AgeFileKey, writingTo downstream: any ByteSink) {
        keySource = .fileKey(fileKey)
        self.downstream = downstream
    }

    /// A decryptor that starts in the middle of a file, at chunk `firstChunk` (its first input byte is that chunk's
    /// first byte), with the file's key and payload nonce. The header is not read (nor its MAC checked): for a
    /// writer reading back the end of the file it wrote, whose beginning it has verified already.
    public init(fileKey: AgeFileKey, payloadNonce: [UInt8], firstChunk: UInt64, writingTo downstream: any ByteSink) throws {
        keySource = .fileKey(fileKey)
        self.downstream = downstream
        stanzas = []
        nonce = payloadNonce
        counter = firstChunk
        aead = try ChaCha20Poly1305(key: AgePayload.key(fileKey: fileKey, nonce: payloadNonce), direction: .open)
    }

    deinit {
        sealed.deallocate()
        plaintext.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if stanzas == nil {
            headerBuffer.append(contentsOf: bytes)
            guard let header = try AgeHeader.parse(headerBuffer, atEnd: false) else { return }
            try open(header)
            let rest = Array(headerBuffer[header.byteCount...])
            headerBuffer = []
            try rest.withUnsafeBytes { try writePayload($0) }
            return
        }
        try writePayload(bytes)
    }

    /// Ends the input: decrypts the final chunk, or throws when the file is incomplete.
    public func finish() throws {
        if stanzas == nil {
            guard let header = try AgeHeader.parse(headerBuffer, atEnd: true) else {
                throw AgeError(.headerFormat, "the file ends inside the age header")
            }
            try open(header)
            let rest = Array(headerBuffer[header.byteCount...])
            headerBuffer = []
            try rest.withUnsafeBytes { try writePayload($0) }
        }
        guard let aead else {
            throw AgeError(.headerFormat, "the file ends before the payload nonce after the age header")
        }
        if sawFinalChunk { return }
        guard filled > 0 else {
            throw AgeError(
                .truncated, "the age file ends after chunk \(counter) without a final chunk: it was cut short"
            )
        }
        guard filled >= ChaCha20Poly1305.tagByteCount else {
            throw AgeError(.truncated, "the age file ends inside chunk \(counter + 1): it was cut short")
        }
        guard counter == 0 || filled > ChaCha20Poly1305.tagByteCount else {
            throw AgeError(.payload, "the age file ends with an empty final chunk, which only an empty file may have")
        }
        let input = UnsafeRawBufferPointer(rebasing: sealed[..<filled])
        guard let length = try? aead.open(nonce: AgePayload.chunkNonce(counter: counter, last: true), ciphertext: input, into: plaintext)
        else {
            throw AgeError(
                .payload,
                "chunk \(counter + 1), the last of the age file, does not authenticate: the file is damaged or was cut short"
            )
        }
        try emit(length, last: true)
    }

    private func open(_ header: AgeHeader) throws {
        if header.stanzas.contains(where: { $0.type == "scrypt" }), header.stanzas.count != 1 {
            throw AgeError(.headerFormat, "the age header has a passphrase (scrypt) stanza beside other stanzas")
        }
        let fileKey: AgeFileKey
        switch keySource {
        case .fileKey(let key):
            fileKey = key
        case .identities(let identities):
            var found: AgeFileKey?
            for identity in identities {
                if let key = try identity.unwrap(header.stanzas) {
                    found = key
                    break
                }
            }
            guard let found else {
                let types = Set(header.stanzas.map(\.type)).sorted().joined(separator: ", ")
                throw AgeError(
                    .noMatchingIdentity,
                    "no identity given opens this age file (it is encrypted to: \(types)); check AGE_IDENTITY_FILE "
                        + "or the passphrase"
                )
            }
            fileKey = found
        }
        guard try header.macVerifies(fileKey) else {
            throw AgeError(.headerMAC, "the age header's MAC does not verify: the header was altered")
        }
        stanzas = header.stanzas
        payloadKeySource = fileKey
    }

    private var payloadKeySource: AgeFileKey?

    private func writePayload(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        if aead == nil {
            let count = min(AgePayload.nonceSize - nonce.count, bytes.count)
            nonce += bytes[..<count]
            offset = count
            guard nonce.count == AgePayload.nonceSize, let fileKey = payloadKeySource else { return }
            aead = try ChaCha20Poly1305(key: AgePayload.key(fileKey: fileKey, nonce: nonce), direction: .open)
            payloadKeySource = nil
        }
        while offset < bytes.count {
            if sawFinalChunk {
                throw AgeError(.payload, "the age file has data after its final chunk")
            }
            let count = min(AgePayload.sealedChunkSize - filled, bytes.count - offset)
            (sealed.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            filled += count
            offset += count
            if filled == AgePayload.sealedChunkSize { try openFullChunk() }
        }
    }

    /// A full-length chunk is a middle chunk or, when the plaintext is a multiple of 64 KiB, the final one.
    private func openFullChunk() throws {
        guard let aead else { return }
        let input = UnsafeRawBufferPointer(sealed)
        if let length = try? aead.open(nonce: AgePayload.chunkNonce(counter: counter, last: false), ciphertext: input, into: plaintext) {
            try emit(length, last: false)
        } else if let length = try? aead.open(nonce: AgePayload.chunkNonce(counter: counter, last: true), ciphertext: input, into: plaintext) {
            try emit(length, last: true)
        } else {
            throw AgeError(.payload, "chunk \(counter + 1) of the age file does not authenticate: the file is damaged")
        }
    }

    private func emit(_ length: Int, last: Bool) throws {
        counter += 1
        filled = 0
        sawFinalChunk = last
        plaintextByteCount += UInt64(length)
        if length > 0 { try downstream.write(UnsafeRawBufferPointer(rebasing: plaintext[..<length])) }
    }
}
