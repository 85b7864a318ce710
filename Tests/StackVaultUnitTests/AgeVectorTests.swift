import CZlib
import Foundation
import Testing

@testable import StackVaultCore

/// The age test vectors of C2SP CCTV (`shared/testdata/age-cctv` beside the repository, see its README; or the
/// folder `STACKVAULT_AGE_CCTV` names): each vector decrypts with the expected outcome, fed to the streaming
/// decryptor in odd-sized pieces. The set is not copied into the repository; a missing folder fails the suite.
@Suite("age: C2SP CCTV test vectors")
struct AgeVectorTests {
    static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["STACKVAULT_AGE_CCTV"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        // Tests/StackVaultUnitTests/<file> -> the repository -> its parent, which holds shared/.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/testdata/age-cctv")
    }()

    struct Vector {
        var name: String
        var expect = ""
        var payload: String?
        var identities: [String] = []
        var passphrases: [String] = []
        var armored = false
        var body: [UInt8] = []

        init(name: String, contents: [UInt8]) throws {
            self.name = name
            var index = 0
            var compressed = false
            while true {
                guard let end = contents[index...].firstIndex(of: UInt8(ascii: "\n")) else {
                    throw TestVectorError("\(name): no empty line after the vector's header")
                }
                let line = String(decoding: contents[index..<end], as: UTF8.self)
                index = end + 1
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = String(line[..<colon])
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                switch key {
                case "expect": expect = value
                case "payload": payload = value
                case "identity": identities.append(value)
                case "passphrase": passphrases.append(value)
                case "armored": armored = value == "yes"
                case "compressed": compressed = value == "zlib"
                default: break
                }
            }
            body = Array(contents[index...])
            if compressed { body = try Self.inflate(body) }
        }

        /// zlib (RFC 1950) decompression through libz.
        static func inflate(_ input: [UInt8]) throws -> [UInt8] {
            var stream = z_stream()
            guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw TestVectorError("inflateInit failed")
            }
            defer { inflateEnd(&stream) }
            var output: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            var input = input
            var status: Int32 = Z_OK
            input.withUnsafeMutableBufferPointer { inputBuffer in
                stream.next_in = inputBuffer.baseAddress
                stream.avail_in = UInt32(inputBuffer.count)
                while status == Z_OK {
                    chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                        stream.next_out = chunkBuffer.baseAddress
                        stream.avail_out = UInt32(chunkBuffer.count)
                        status = CZlib.inflate(&stream, Z_NO_FLUSH)
                        output += chunkBuffer[..<(chunkBuffer.count - Int(stream.avail_out))]
                    }
                }
            }
            guard status == Z_STREAM_END else { throw TestVectorError("inflate failed: \(status)") }
            return output
        }
    }

    struct TestVectorError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func vectorNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != "README.md" }.sorted()
    }

    /// The outcome in the vectors' words, and the plaintext passed downstream before it.
    static func decrypt(_ vector: Vector) throws -> (outcome: String, plaintext: [UInt8]) {
        var identities: [any AgeIdentity] = try vector.identities.map { try AgeX25519Identity(string: $0) }
        identities += vector.passphrases.map { AgeScryptIdentity(passphrase: $0) }
        let sink = CollectingSink()
        let decryptor = AgeDecryptor(identities: identities, writingTo: sink)
        do {
            var offset = 0
            while offset < vector.body.count {
                let end = min(offset + 4093, vector.body.count)
                try vector.body[offset..<end].withUnsafeBytes { try decryptor.write($0) }
                offset = end
            }
            try decryptor.finish()
            return ("success", sink.bytes)
        } catch let error as AgeError {
            let outcome = error.kind == .truncated ? AgeError.Kind.payload.rawValue : error.kind.rawValue
            return (outcome, sink.bytes)
        }
    }

    @Test("every supported vector gives its expected outcome")
    func allVectors() throws {
        var ran = 0
        var skipped: [String] = []
        for name in try Self.vectorNames() {
            let vector = try Vector(name: name, contents: [UInt8](Data(contentsOf: Self.directory.appendingPathComponent(name))))
            if vector.armored || vector.identities.contains(where: { $0.hasPrefix("AGE-SECRET-KEY-PQ-") }) {
                skipped.append(name)
                continue
            }
            ran += 1
            let (outcome, plaintext) = try Self.decrypt(vector)
            #expect(outcome == vector.expect, "\(name): expected \(vector.expect), got \(outcome)")
            if let payload = vector.payload, outcome == vector.expect {
                #expect(SHA256.hash(plaintext).hex == payload, "\(name): plaintext hash differs")
            }
        }
        print("age CCTV vectors: \(ran) ran, \(skipped.count) skipped (armored or post-quantum hybrid identity)")
        #expect(ran >= 90)
        #expect(skipped.allSatisfy { $0.hasPrefix("armor") || $0.hasPrefix("hybrid") })
    }
}
