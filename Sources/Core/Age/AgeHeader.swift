/// One recipient stanza of an age header: `-> type arg...`, then the base64 body wrapped at 64 columns.
public struct AgeStanza: Sendable, Equatable {
    /// The first argument, which names the recipient type (`X25519`, `ssh-ed25519`, `scrypt`, ...).
    public var type: String
    /// The arguments after the type.
    public var arguments: [String]
    /// The decoded body.
    public var body: [UInt8]

    public init(type: String, arguments: [String], body: [UInt8]) {
        self.type = type
        self.arguments = arguments
        self.body = body
    }
}

/// The 128-bit symmetric key of one age file. A new one for every file (age-encryption.org/v1, "File key").
public struct AgeFileKey: Sendable, Equatable, CustomStringConvertible {
    /// Size in bytes.
    public static let byteCount = 16
    let bytes: [UInt8]

    init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount)
        self.bytes = bytes
    }

    /// 16 bytes from OpenSSL's CSPRNG.
    static func generate() -> AgeFileKey { AgeFileKey(bytes: SecureRandom.bytes(byteCount)) }

    public var description: String { "AgeFileKey(redacted)" }
}

/// The textual header of an age v1 file: version line, stanzas, MAC.
///
/// Source: age-encryption.org/v1 (C2SP age.md), "Header" and its ABNF: `header = v1-line 1*stanza end`,
/// `arg-line = "-> " argument *(SP argument) LF`, `argument = 1*VCHAR`, body lines of exactly 64 base64
/// characters ended by one shorter line (possibly empty), `end = "--- " 43base64char LF`. The MAC is HMAC-SHA-256
/// under HKDF-SHA-256(ikm = file key, salt = empty, info = "header") over the header up to and including `---`.
struct AgeHeader: Sendable {
    static let versionLine = Array("age-encryption.org/v1".utf8)
    static let versionPrefix = Array("age-encryption.org/".utf8)
    /// A header longer than this is refused rather than buffered (real ones are a few KiB).
    static let maximumByteCount = 1 << 20

    var stanzas: [AgeStanza]
    /// The 32-byte header MAC.
    var mac: [UInt8]
    /// The bytes the MAC covers: everything up to and including `---`.
    var macInput: [UInt8]
    /// Length of the whole header including the MAC line's line feed; the payload starts here.
    var byteCount: Int

    /// Parses the header at the start of `data`. Returns nil when `data` ends before the header does and `atEnd`
    /// is false (more input needed). Throws ``AgeError/Kind/headerFormat`` for anything malformed.
    static func parse(_ data: [UInt8], atEnd: Bool) throws -> AgeHeader? {
        let prefixLength = min(data.count, versionPrefix.count)
        guard data[..<prefixLength].elementsEqual(versionPrefix[..<prefixLength]) else {
            throw AgeError(.headerFormat, "this is not an age file: it does not start with \"age-encryption.org/\"")
        }
        var position = 0
        var lineStart = 0
        func nextLine() throws -> ArraySlice<UInt8>? {
            guard let end = data[position...].firstIndex(of: UInt8(ascii: "\n")) else {
                if atEnd {
                    throw AgeError(.headerFormat, "the file ends inside the age header: it is truncated or damaged")
                }
                if data.count > maximumByteCount {
                    throw AgeError(.headerFormat, "the age header is longer than \(maximumByteCount) bytes: damaged file")
                }
                return nil
            }
            lineStart = position
            position = end + 1
            return data[lineStart..<end]
        }
        guard let version = try nextLine() else { return nil }
        guard version.elementsEqual(versionLine) else {
            throw AgeError(.headerFormat, "unsupported age format version (only age-encryption.org/v1 is known)")
        }
        var stanzas: [AgeStanza] = []
        while true {
            guard let line = try nextLine() else { return nil }
            if line.starts(with: Array("-> ".utf8)) {
                let arguments = line.dropFirst(3).split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
                guard arguments.allSatisfy({ !$0.isEmpty && $0.allSatisfy { (0x21...0x7e).contains($0) } }) else {
                    throw AgeError(.headerFormat, "stanza \(stanzas.count + 1) of the age header has an empty or invalid argument")
                }
                var bodyText: [UInt8] = []
                while true {
                    guard let bodyLine = try nextLine() else { return nil }
                    guard bodyLine.count <= 64, bodyLine.allSatisfy(AgeBase64.isAlphabet) else {
                        throw AgeError(.headerFormat, "stanza \(stanzas.count + 1) of the age header has an invalid body line")
                    }
                    bodyText += bodyLine
                    if bodyLine.count < 64 { break }
                }
                guard let body = AgeBase64.decode(String(decoding: bodyText, as: UTF8.self)) else {
                    throw AgeError(.headerFormat, "stanza \(stanzas.count + 1) of the age header has a non-canonical base64 body")
                }
                let strings = arguments.map { String(decoding: $0, as: UTF8.self) }
                stanzas.append(AgeStanza(type: strings[0], arguments: Array(strings.dropFirst()), body: body))
            } else if line.starts(with: Array("---".utf8)) {
                guard !stanzas.isEmpty else {
                    throw AgeError(.headerFormat, "the age header has no recipient stanza")
                }
                guard line.count == 4 + 43, line[line.startIndex + 3] == UInt8(ascii: " "),
                    let mac = AgeBase64.decode(String(decoding: line.dropFirst(4), as: UTF8.self)), mac.count == 32
                else {
                    throw AgeError(.headerFormat, "the MAC line of the age header is malformed")
                }
                return AgeHeader(
                    stanzas: stanzas, mac: mac, macInput: Array(data[..<(lineStart + 3)]), byteCount: position
                )
            } else {
                throw AgeError(.headerFormat, "the age header has a line that is neither a stanza nor the MAC")
            }
        }
    }

    /// The HMAC key of a header: HKDF-SHA-256(ikm = file key, salt = empty, info = "header").
    static func macKey(_ fileKey: AgeFileKey) throws -> [UInt8] {
        try HKDFSHA256.deriveKey(inputKeyMaterial: fileKey.bytes, salt: [], info: Array("header".utf8))
    }

    /// True when this header's MAC verifies under `fileKey` (compared in constant time).
    func macVerifies(_ fileKey: AgeFileKey) throws -> Bool {
        let expected = HMACSHA256.authenticationCode(key: try Self.macKey(fileKey), message: macInput)
        var difference: UInt8 = 0
        for (a, b) in zip(expected, mac) { difference |= a ^ b }
        return difference == 0 && expected.count == mac.count
    }

    /// The complete header (ending with the MAC line's line feed) for `stanzas` under `fileKey`.
    static func encode(_ stanzas: [AgeStanza], fileKey: AgeFileKey) throws -> [UInt8] {
        var out = versionLine + [UInt8(ascii: "\n")]
        for stanza in stanzas {
            out += Array(("-> " + ([stanza.type] + stanza.arguments).joined(separator: " ") + "\n").utf8)
            var body = Array(AgeBase64.encode(stanza.body).utf8)[...]
            while body.count >= 64 {
                out += body.prefix(64) + [UInt8(ascii: "\n")]
                body = body.dropFirst(64)
            }
            out += body + [UInt8(ascii: "\n")]
        }
        out += Array("---".utf8)
        let mac = HMACSHA256.authenticationCode(key: try macKey(fileKey), message: out)
        out += Array((" " + AgeBase64.encode(mac) + "\n").utf8)
        return out
    }
}
