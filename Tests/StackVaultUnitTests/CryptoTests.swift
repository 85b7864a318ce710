import Foundation
import Testing

@testable import StackVaultCore

@Suite("SHA-256 and HMAC-SHA256 (OpenSSL)")
struct CryptoTests {
    private static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    // FIPS 180-2 / NIST example vectors.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func sha256KnownVectors(input: String, expected: String) {
        #expect(SHA256.hash(input).hex == expected)
        #expect(SHA256.hash(Array(input.utf8)).hex == expected)
        #expect(SHA256.hash(input).bytes == Self.bytes(hex: expected))
        #expect(SHA256.hash(input).bytes.count == SHA256.byteCount)
    }

    @Test func sha256OfAMillionAsIncrementally() {
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 {
            chunk.withUnsafeBytes { hasher.update($0) }
        }
        #expect(hasher.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func incrementalEqualsOneShotForAnySplit() {
        let data = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let expected = SHA256.hash(data)
        for split in [0, 1, 63, 64, 65, 4096, 9_999, 10_000] {
            var hasher = SHA256()
            hasher.update(bytes: data[..<split])
            hasher.update(bytes: data[split...])
            #expect(hasher.finalize() == expected, "split at \(split)")
        }
    }

    @Test func copiesHashIndependentlyAndFinalizeDoesNotConsume() {
        var first = SHA256()
        first.update("ab")
        var second = first
        second.update("c")
        #expect(first.finalize() == SHA256.hash("ab"))
        #expect(second.finalize() == SHA256.hash("abc"))
        first.update("c")
        #expect(first.finalize().hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(second.finalize().description == second.finalize().hex)
    }

    // RFC 4231 test cases 1, 2, 3 and 6.
    @Test func hmacRFC4231() {
        #expect(
            HMACSHA256.authenticationCode(key: [UInt8](repeating: 0x0b, count: 20), message: "Hi There")
                == Self.bytes(hex: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        )
        #expect(
            HMACSHA256.authenticationCode(key: Array("Jefe".utf8), message: "what do ya want for nothing?")
                == Self.bytes(hex: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        )
        #expect(
            HMACSHA256.authenticationCode(
                key: [UInt8](repeating: 0xaa, count: 20),
                message: [UInt8](repeating: 0xdd, count: 50)
            )
                == Self.bytes(hex: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")
        )
        #expect(
            HMACSHA256.authenticationCode(
                key: [UInt8](repeating: 0xaa, count: 131),
                message: "Test Using Larger Than Block-Size Key - Hash Key First"
            )
                == Self.bytes(hex: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        )
    }

    @Test func hmacWithEmptyKeyAndMessage() {
        #expect(
            HMACSHA256.authenticationCode(key: [], message: [])
                == Self.bytes(hex: "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
        )
    }

    /// The AWS SigV4 signing-key derivation example (secret wJalr..., 20120215, us-east-1, iam).
    @Test func hmacChainDerivesTheSigV4ExampleSigningKey() {
        var key = Array("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".utf8)
        for part in ["20120215", "us-east-1", "iam", "aws4_request"] {
            key = HMACSHA256.authenticationCode(key: key, message: part)
        }
        #expect(SHA256.hex(key) == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    @Test func openSSLErrorHelperReportsAnEmptyQueue() {
        #expect(openSSLError() == "unknown OpenSSL error")
        #expect(throws: StackVaultError.self) { try openSSLCheck(0, "a deliberately failing call") }
    }
}
