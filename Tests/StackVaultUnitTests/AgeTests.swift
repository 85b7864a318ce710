import Foundation
import Testing

@testable import StackVaultCore

/// The age module: round trips through the streaming stages, each failure class, files made by the real `age`,
/// and the `AGE_*` configuration.
@Suite("age encryption")
struct AgeTests {
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/age-keys")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: keys.appendingPathComponent(name), encoding: .utf8)
    }

    /// Writes `bytes` into `sink` in pieces of `piece` bytes, then calls `finish`.
    static func feed(_ bytes: [UInt8], into sink: any ByteSink, piece: Int, finish: () throws -> Void) throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + piece, bytes.count)
            try bytes[offset..<end].withUnsafeBytes { try sink.write($0) }
            offset = end
        }
        try finish()
    }

    static func encrypt(_ plaintext: [UInt8], to recipients: [any AgeRecipient], piece: Int = 10_000) throws -> [UInt8] {
        let sink = CollectingSink()
        let encryptor = try AgeEncryptor(recipients: recipients, writingTo: sink)
        try feed(plaintext, into: encryptor, piece: piece, finish: encryptor.finish)
        return sink.bytes
    }

    static func decrypt(_ file: [UInt8], with identities: [any AgeIdentity], piece: Int = 7_001) throws -> [UInt8] {
        let sink = CollectingSink()
        let decryptor = AgeDecryptor(identities: identities, writingTo: sink)
        try feed(file, into: decryptor, piece: piece, finish: decryptor.finish)
        return sink.bytes
    }

    static func failure<T>(_ body: () throws -> T) -> AgeError? {
        do {
            _ = try body()
            return nil
        } catch let error as AgeError {
            return error
        } catch {
            Issue.record("not an AgeError: \(error)")
            return nil
        }
    }

    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) } }

    @Test("X25519 round trip at chunk boundaries", arguments: [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 200_000])
    func x25519RoundTrip(size: Int) throws {
        let identity = try AgeX25519Identity.generate()
        let plaintext = Self.pattern(size)
        let file = try Self.encrypt(plaintext, to: [identity.recipient])
        #expect(try Self.decrypt(file, with: [identity]) == plaintext)
        // Sealed size: header, nonce, one tag per chunk (at least one chunk).
        let chunks = max(1, (size + 65_535) / 65_536)
        let header = try AgeHeader.parse(file, atEnd: true)!
        #expect(file.count == header.byteCount + 16 + size + 16 * chunks)
    }

    @Test("known keys: age-keygen's public key, the ssh-ed25519 key, files the real age made")
    func filesFromRealAge() throws {
        let identityText = try Self.text("x25519.txt")
        let identities = try AgeConfiguration.parseIdentities(identityText, source: "x25519.txt")
        let publicLine = identityText.split(separator: "\n").first { $0.hasPrefix("# public key: ") }!
        #expect((identities[0] as! AgeX25519Identity).recipient.description == publicLine.dropFirst(14))
        let x25519File = [UInt8](try Data(contentsOf: Self.keys.appendingPathComponent("to_x25519.age")))
        #expect(String(decoding: try Self.decrypt(x25519File, with: identities), as: UTF8.self)
            == "hello from age 1.1.1 to an X25519 key\n")

        let ssh = try AgeConfiguration.parseIdentities(try Self.text("ssh_ed25519"), source: "ssh_ed25519")
        let sshFile = [UInt8](try Data(contentsOf: Self.keys.appendingPathComponent("to_ssh_ed25519.age")))
        #expect(String(decoding: try Self.decrypt(sshFile, with: ssh), as: UTF8.self)
            == "hello from age 1.1.1 to an ssh-ed25519 key\n")
        // The recipient parsed from the .pub line maps to the same X25519 key the private key gives.
        let recipient = try AgeSSHEd25519Recipient(authorizedKey: try Self.text("ssh_ed25519.pub"))
        #expect(recipient.montgomery == (ssh[0] as! AgeSSHEd25519Identity).secretKey.publicKey)
        let plaintext = Self.pattern(70_000)
        #expect(try Self.decrypt(try Self.encrypt(plaintext, to: [recipient]), with: ssh) == plaintext)
    }

    @Test("passphrase (scrypt) round trip; a wrong passphrase is no match")
    func scryptRoundTrip() throws {
        let file = try Self.encrypt(Self.pattern(1000), to: [AgeScryptRecipient(passphrase: "correct horse", workFactor: 10)])
        #expect(try Self.decrypt(file, with: [AgeScryptIdentity(passphrase: "correct horse")]) == Self.pattern(1000))
        let error = Self.failure { try Self.decrypt(file, with: [AgeScryptIdentity(passphrase: "wrong")]) }
        #expect(error?.kind == .noMatchingIdentity)
        let mixed: [any AgeRecipient] = [AgeScryptRecipient(passphrase: "x"), try AgeX25519Identity.generate().recipient]
        #expect(throws: StackVaultError.self) { _ = try AgeEncryptor(recipients: mixed, writingTo: CollectingSink()) }
    }

    @Test("several recipients: each identity opens the file")
    func multipleRecipients() throws {
        let first = try AgeX25519Identity.generate()
        let second = try AgeX25519Identity.generate()
        let file = try Self.encrypt([1, 2, 3], to: [first.recipient, second.recipient])
        #expect(try Self.decrypt(file, with: [second]) == [1, 2, 3])
        #expect(try Self.decrypt(file, with: [first]) == [1, 2, 3])
    }

    @Test("wrong key, tampered header, damaged first and last chunk, truncation: each its own error")
    func failureClasses() throws {
        let identity = try AgeX25519Identity.generate()
        let plaintext = Self.pattern(3 * 65_536 + 100)
        let file = try Self.encrypt(plaintext, to: [identity.recipient])
        let headerLength = try AgeHeader.parse(file, atEnd: true)!.byteCount

        let wrong = Self.failure { try Self.decrypt(file, with: [try AgeX25519Identity.generate()]) }
        #expect(wrong?.kind == .noMatchingIdentity)

        var mac = file
        mac[headerLength - 10] ^= 0x01  // inside the MAC's base64 (still a valid character after the flip: 'A'^1 etc.)
        let macError = Self.failure { try Self.decrypt(mac, with: [identity]) }
        #expect(macError?.kind == .headerMAC || macError?.kind == .headerFormat)

        var stanza = file
        let argumentStart = Array("age-encryption.org/v1\n-> X25519 ".utf8).count
        stanza[argumentStart + 3] = stanza[argumentStart + 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(Self.failure { try Self.decrypt(stanza, with: [identity]) }?.kind == .noMatchingIdentity)

        var version = file
        version[20] = UInt8(ascii: "2")
        #expect(Self.failure { try Self.decrypt(version, with: [identity]) }?.kind == .headerFormat)

        var first = file
        first[headerLength + 16 + 5] ^= 0x80
        let firstError = Self.failure { try Self.decrypt(first, with: [identity]) }
        #expect(firstError?.kind == .payload)
        #expect(firstError?.message.contains("chunk 1") == true)

        var last = file
        last[last.count - 3] ^= 0x01
        let sink = CollectingSink()
        let lastError = Self.failure {
            let decryptor = AgeDecryptor(identities: [identity], writingTo: sink)
            try last.withUnsafeBytes { try decryptor.write($0) }
            try decryptor.finish()
        }
        #expect(lastError?.kind == .payload)
        #expect(sink.bytes == Array(plaintext.prefix(3 * 65_536)), "authenticated chunks before the damage pass through")

        let cutAtBoundary = Array(file.prefix(headerLength + 16 + 2 * AgePayload.sealedChunkSize))
        #expect(Self.failure { try Self.decrypt(cutAtBoundary, with: [identity]) }?.kind == .truncated)
        let cutInside = Array(file.prefix(headerLength + 16 + 2 * AgePayload.sealedChunkSize + 5))
        #expect(Self.failure { try Self.decrypt(cutInside, with: [identity]) }?.kind == .truncated)
        let cutInHeader = Array(file.prefix(headerLength - 5))
        #expect(Self.failure { try Self.decrypt(cutInHeader, with: [identity]) }?.kind == .headerFormat)
        #expect(Self.failure { try Self.decrypt(file + [0], with: [identity]) }?.kind == .payload)
        #expect(Self.failure { try Self.decrypt(Array("not age at all".utf8), with: [identity]) }?.kind == .headerFormat)
    }

    @Test("the writer's read-back opens its own file with the file key, and the MAC is still checked")
    func fileKeyReadBack() throws {
        let sink = CollectingSink()
        let encryptor = try AgeEncryptor(recipients: [try AgeX25519Identity.generate().recipient], writingTo: sink)
        try ([9, 8, 7] as [UInt8]).withUnsafeBytes { try encryptor.write($0) }
        try encryptor.finish()
        let out = CollectingSink()
        let decryptor = AgeDecryptor(fileKey: encryptor.fileKey, writingTo: out)
        try sink.bytes.withUnsafeBytes { try decryptor.write($0) }
        try decryptor.finish()
        #expect(out.bytes == [9, 8, 7])
        let other = AgeDecryptor(fileKey: AgeFileKey.generate(), writingTo: CollectingSink())
        #expect(Self.failure { try sink.bytes.withUnsafeBytes { try other.write($0) } }?.kind == .headerMAC)
    }

    @Test("structural length check without a key")
    func plausibleLength() {
        #expect(AgePayload.isPlausibleLength(16))
        #expect(AgePayload.isPlausibleLength(17))
        #expect(AgePayload.isPlausibleLength(UInt64(AgePayload.sealedChunkSize)))
        #expect(AgePayload.isPlausibleLength(UInt64(AgePayload.sealedChunkSize + 100)))
        #expect(!AgePayload.isPlausibleLength(0))
        #expect(!AgePayload.isPlausibleLength(10))
        #expect(!AgePayload.isPlausibleLength(UInt64(AgePayload.sealedChunkSize + 16)))
    }

    @Test("Bech32 round trip and case rules")
    func bech32() throws {
        let data = Self.pattern(32)
        let text = Bech32.encode(hrp: "age", data: data)
        #expect(Bech32.decode(text)?.data == data)
        #expect(Bech32.decode(text.uppercased())?.data == data)
        var mixed = Array(text)
        mixed[5] = Character(mixed[5].uppercased())
        #expect(Bech32.decode(String(mixed)) == nil || mixed[5].isNumber)
        var typo = Array(text.utf8)
        typo[10] = typo[10] == UInt8(ascii: "q") ? UInt8(ascii: "p") : UInt8(ascii: "q")
        #expect(Bech32.decode(String(decoding: typo, as: UTF8.self)) == nil)
    }

    // MARK: Configuration

    @Test("AGE_RECIPIENTS takes age1 and ssh-ed25519 keys, separated by spaces or newlines")
    func recipientsVariable() throws {
        let a = try AgeX25519Identity.generate().recipient.description
        let b = try AgeX25519Identity.generate().recipient.description
        let ssh = try Self.text("ssh_ed25519.pub").trimmingCharacters(in: .whitespacesAndNewlines)
        let configuration = try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": "\(a) \(b)\n\(ssh)\n"])
        #expect(configuration.recipients.count == 3)
        let sshFields = ssh.split(separator: " ")
        let oneLine = "\(a) \(sshFields[0]) \(sshFields[1]) \(b)"
        #expect(try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": oneLine]).recipients.count == 3)
        #expect(configuration.encrypts)
        #expect(configuration.identities.isEmpty)
        #expect(try AgeConfiguration.fromEnvironment([:]).encrypts == false)
    }

    @Test("AGE_RECIPIENTS_FILE: comments, and errors that name the line but not the key")
    func recipientsFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("age-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("recipients.txt")
        let key = try AgeX25519Identity.generate().recipient.description
        try "# backups\n\n\(key)\n\(try Self.text("ssh_ed25519.pub"))".write(to: good, atomically: true, encoding: .utf8)
        #expect(try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS_FILE": good.path]).recipients.count == 2)

        let secret = try AgeX25519Identity.generate().secretString
        let bad = directory.appendingPathComponent("bad.txt")
        try "\(key)\n# x\n\(secret)\n".write(to: bad, atomically: true, encoding: .utf8)
        do {
            _ = try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS_FILE": bad.path])
            Issue.record("a secret key among recipients was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.contains("line 3"))
            #expect(error.message.contains("secret key"))
            #expect(!error.description.contains(secret))
        }
        do {
            _ = try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": "\(key) age1qqqqqqqq"])
            Issue.record("a malformed key was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.hasPrefix("AGE_RECIPIENTS line 1"))
        }
        do {
            _ = try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": "ssh-rsa AAAAB3NzaC1yc2E= x"])
            Issue.record("an RSA key was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.contains("ssh-rsa"))
        }
    }

    @Test("a set but empty AGE_* variable is an error naming it, never an unencrypted archive", arguments: [
        "AGE_RECIPIENTS", "AGE_RECIPIENTS_FILE", "AGE_PASSPHRASE", "AGE_PASSPHRASE_FILE", "AGE_IDENTITY_FILE",
    ])
    func emptyVariables(name: String) throws {
        for value in ["", "  ", "\n"] {
            do {
                let configuration = try AgeConfiguration.fromEnvironment([name: value])
                Issue.record("\(name)='\(value)' was accepted (encrypts: \(configuration.encrypts))")
            } catch let error as StackVaultError {
                #expect(error.message.hasPrefix("\(name) is set but empty"), "\(error.message)")
            }
        }
    }

    @Test("AGE_RECIPIENTS: comments after ssh keys and after #, and no key is ever taken for a comment")
    func recipientsWithComments() throws {
        let a = try AgeX25519Identity.generate().recipient.description
        let b = try AgeX25519Identity.generate().recipient.description
        let ssh = try Self.text("ssh_ed25519.pub").split(separator: " ").prefix(2).joined(separator: " ")
        func count(_ text: String) throws -> Int {
            try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": text]).recipients.count
        }
        #expect(try count("\(a) \(ssh) me@host") == 2)
        #expect(try count("\(ssh) me@host \(a)") == 2)  // the age1 key after the comment was once dropped
        #expect(try count("\(ssh) my laptop key \(a) \(ssh) \(b)") == 4)
        #expect(try count("\(a) # backups\n\(ssh) me@host # laptop\n# old: \(b)") == 2)
        for bad in ["\(ssh) agent-box", "\(ssh) me@host age1qqqqqqqq", "\(ssh) me@host ssh-rsa AAAA"] {
            #expect(throws: StackVaultError.self, "\(bad)") { try count(bad) }
        }
        do {
            _ = try count("# \(a)")
            Issue.record("AGE_RECIPIENTS with only a comment was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.contains("AGE_RECIPIENTS lists no recipient"))
        }
        let recipients = try AgeConfiguration.parseRecipients("\(a) # laptop\n\(ssh) me@host\n", source: "file",
                                                             onePerLine: true)
        #expect(recipients.count == 2)
    }

    @Test("AGE_PASSPHRASE stands alone and also reads; AGE_IDENTITY_FILE errors hide the key")
    func passphraseAndIdentity() throws {
        let configuration = try AgeConfiguration.fromEnvironment(["AGE_PASSPHRASE": "hunter2 hunter2"])
        #expect(configuration.recipients.count == 1 && configuration.recipients[0].mustBeAlone)
        #expect(configuration.identities.count == 1)
        #expect(!"\(configuration.recipients[0]) \(configuration.identities[0])".contains("hunter2"))
        let key = try AgeX25519Identity.generate().recipient.description
        do {
            _ = try AgeConfiguration.fromEnvironment(["AGE_PASSPHRASE": "p", "AGE_RECIPIENTS": key])
            Issue.record("passphrase with recipients was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.contains("AGE_PASSPHRASE"))
        }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("age-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("identity.txt")
        let secret = try AgeX25519Identity.generate().secretString
        let broken = String(secret.dropLast()) + (secret.hasSuffix("Q") ? "P" : "Q")
        try "# created\n\(secret)\n\(broken)\n".write(to: file, atomically: true, encoding: .utf8)
        do {
            _ = try AgeConfiguration.fromEnvironment(["AGE_IDENTITY_FILE": file.path])
            Issue.record("a damaged identity was accepted")
        } catch let error as StackVaultError {
            #expect(error.message.contains("AGE_IDENTITY_FILE '\(file.path)' line 3"))
            #expect(!error.description.contains(String(secret.dropFirst(20).prefix(20))))
        }
        try "\(secret)\n".write(to: file, atomically: true, encoding: .utf8)
        let identities = try AgeConfiguration.fromEnvironment(["AGE_IDENTITY_FILE": file.path]).identities
        #expect(identities.count == 1)
        #expect(!"\(identities[0])".contains(secret))
    }
}

@Suite("age encryption: chunk-aligned writing for the archive writer")
struct AgeChunkAlignedTests {
    static func write(_ bytes: [UInt8], _ encryptor: AgeEncryptor) throws {
        try bytes.withUnsafeBytes { try encryptor.write($0) }
    }

    @Test("a reserved chunk sealed later, and a reader resuming at a chunk boundary")
    func reserveAndResume() throws {
        let identity = try AgeX25519Identity.generate()
        let sink = CollectingSink()
        let encryptor = try AgeEncryptor(recipients: [identity.recipient], writingTo: sink)
        let a = AgeTests.pattern(100_000)
        try Self.write(a, encryptor)
        let pad = [UInt8](repeating: 7, count: encryptor.bytesToChunkBoundary)
        #expect(pad.count == 2 * 65_536 - 100_000)
        try Self.write(pad, encryptor)
        #expect(encryptor.bytesToChunkBoundary == 0)
        let reserved = try encryptor.reserveChunk()
        #expect(reserved.index == 2)
        #expect(reserved.fileOffset == encryptor.fileOffset(ofChunk: 2))
        let b = Array(AgeTests.pattern(150_000).reversed())
        try Self.write(b, encryptor)
        let pad2 = [UInt8](repeating: 9, count: encryptor.bytesToChunkBoundary)
        try Self.write(pad2, encryptor)
        try encryptor.sealFullChunk()
        #expect(encryptor.nextChunkIndex == 6)
        #expect(Int64(sink.bytes.count) == encryptor.fileOffset(ofChunk: 6), "everything before chunk 6 is out")
        #expect(encryptor.plaintextOffset == 6 * 65_536)

        let r = AgeTests.pattern(65_536).map { $0 ^ 0x5a }
        let sealed = try encryptor.seal(reserved: reserved, plaintext: r)
        let c = AgeTests.pattern(1000)
        try Self.write(c, encryptor)
        try encryptor.finish()
        var file = sink.bytes
        file.replaceSubrange(Int(reserved.fileOffset)..<(Int(reserved.fileOffset) + sealed.count), with: sealed)

        #expect(try AgeTests.decrypt(file, with: [identity]) == a + pad + r + b + pad2 + c)
        let tail = CollectingSink()
        let resumed = try AgeDecryptor(
            fileKey: encryptor.fileKey, payloadNonce: encryptor.payloadNonce, firstChunk: 6, writingTo: tail
        )
        try AgeTests.feed(Array(file[Int(encryptor.fileOffset(ofChunk: 6))...]), into: resumed, piece: 999, finish: resumed.finish)
        #expect(tail.bytes == c)
        // Left as zeros, the reserved chunk fails where it is.
        let error = AgeTests.failure { try AgeTests.decrypt(sink.bytes, with: [identity]) }
        #expect(error?.kind == .payload && error?.message.contains("chunk 3") == true)
    }

    @Test("a stream cannot end right after a chunk sealed as a middle one")
    func noEmptyFinalChunk() throws {
        let encryptor = try AgeEncryptor(recipients: [try AgeX25519Identity.generate().recipient], writingTo: CollectingSink())
        try Self.write(AgeTests.pattern(65_536), encryptor)
        try encryptor.sealFullChunk()
        #expect(throws: StackVaultError.self) { try encryptor.finish() }
    }

    @Test("summary without a key: recipient types and a plausible length")
    func summary() throws {
        let file = try AgeTests.encrypt(AgeTests.pattern(70_000), to: [try AgeX25519Identity.generate().recipient])
        let summary = try AgeFileSummary(prefix: Array(file.prefix(1 << 20)), fileSize: Int64(file.count))
        #expect(summary.recipientTypes == ["X25519"])
        #expect(summary.lengthIsPlausible)
        let cut = try AgeFileSummary(prefix: Array(file.prefix(1 << 20)), fileSize: Int64(file.count - 100))
        #expect(cut.lengthIsPlausible)  // a cut inside the last chunk cannot be told from a shorter file
        let tiny = try AgeFileSummary(prefix: Array(file.prefix(300)), fileSize: Int64(AgeHeader.parse(file, atEnd: true)!.byteCount + 16 + 10))
        #expect(!tiny.lengthIsPlausible)
    }
}

/// An in-memory file with positional writes, for the archive writer's age stage.
private final class MemoryOutputFile: AgeOutputFile {
    var bytes: [UInt8] = []
    var flushedSize: Int64 = 0
    var totalBytes: Int64 { Int64(bytes.count) }
    func write(_ buffer: UnsafeRawBufferPointer) throws { bytes += buffer }
    func flush() throws { flushedSize = totalBytes }
    func write(_ data: [UInt8], at offset: Int64) throws {
        bytes.replaceSubrange(Int(offset)..<(Int(offset) + data.count), with: data)
    }
}

@Suite("age encryption: the archive writer's stage")
struct AgeArchiveOutputTests {
    @Test("align for the read-back, reserve and fill a header chunk, resume at a boundary")
    func stage() throws {
        let identity = try AgeX25519Identity.generate()
        let file = MemoryOutputFile()
        let stage = try AgeArchiveOutput(recipients: [identity.recipient], file: file)
        let a = AgeTests.pattern(65_530)
        try a.withUnsafeBytes { try stage.write($0) }
        var paddings: [Int] = []
        let boundary = try stage.alignToChunk(minimumPadding: 8) { count in
            paddings.append(count)
            return [UInt8](repeating: 1, count: count)
        }
        #expect(paddings == [65_536 + 6], "6 bytes are too few for the padding: a whole chunk more")
        #expect(boundary == file.flushedSize && boundary == stage.encryptor.fileOffset(ofChunk: 2))
        // Aligned already: no padding.
        #expect(try stage.alignToChunk(minimumPadding: 8) { _ in Issue.record("padded twice"); return [] } == boundary)

        let reserved = try stage.reserveChunk()
        let b = AgeTests.pattern(1000)
        try b.withUnsafeBytes { try stage.write($0) }
        let header = [UInt8](repeating: 0x48, count: 65_536)
        try stage.fill(reserved, plaintext: header)
        let end = try stage.alignToChunk(minimumPadding: 8) { [UInt8](repeating: 2, count: $0) }
        let c = AgeTests.pattern(10)
        try c.withUnsafeBytes { try stage.write($0) }
        try stage.finish()

        let whole = try AgeTests.decrypt(file.bytes, with: [identity])
        #expect(whole.count == 4 * 65_536 + 10)
        #expect(Array(whole[(2 * 65_536)..<(3 * 65_536)]) == header)
        #expect(Array(whole.suffix(10)) == c)
        let tail = CollectingSink()
        let decryptor = try stage.decryption(resumingAt: end).makeDecryptor(writingTo: tail)
        try AgeTests.feed(Array(file.bytes[Int(end)...]), into: decryptor, piece: 4096, finish: decryptor.finish)
        #expect(tail.bytes == c)
    }
}
