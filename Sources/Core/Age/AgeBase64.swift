import Foundation

/// The base64 of the age header: RFC 4648 section 4 alphabet, no `=` padding, canonical only.
///
/// Source: age-encryption.org/v1 (C2SP age.md), "Conventions": encoders MUST produce canonical base64, decoders
/// MUST reject non-canonical encodings and `=` padding. Encoding and decoding use Foundation's base64; this type
/// only adds the padding rules and the canonical check.
enum AgeBase64 {
    /// Unpadded base64 of `bytes`.
    static func encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return text
    }

    /// The bytes of `text`, or nil when it is not canonical unpadded base64 (wrong characters, `=`, a length that
    /// no byte string encodes to, or non-zero unused bits in the last character).
    static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.allSatisfy(isAlphabet) else { return nil }
        guard utf8.count % 4 != 1 else { return nil }
        let padded = String(decoding: utf8, as: UTF8.self) + String(repeating: "=", count: (4 - utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: padded) else { return nil }
        let bytes = [UInt8](data)
        // Canonical: re-encoding gives the same text (this rejects set bits in the unused low bits).
        guard encode(bytes).utf8.elementsEqual(utf8) else { return nil }
        return bytes
    }

    /// True for the 64 characters of the standard alphabet.
    static func isAlphabet(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            true
        default:
            false
        }
    }
}
