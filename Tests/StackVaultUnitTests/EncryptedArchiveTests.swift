import Foundation
import Testing

@testable import StackVaultCore

/// ArchiveWriter with age encryption: the read-back decrypts as it goes, the file is one age file of the
/// `.tar.zst` stream, and readers open it with the identity, check only its envelope without, and name each damage.
@Suite("Encrypted archives (age)")
struct EncryptedArchiveTests {
    typealias Support = ArchiveTestSupport

    static func header(_ name: String) -> Manifest.Header {
        Manifest.Header(toolVersion: "test", host: "h", stack: "demo", archiveName: name, compression: "zstd",
                        startedAt: Date(), warnings: [])
    }

    /// Writes an encrypted archive with two file components around a tree (with a sparse file, as GNU tar's own
    /// sparse entry), to `identity`; returns the dump bytes.
    static func writeArchive(
        in directory: Support.TemporaryDirectory, to identity: AgeX25519Identity, name: String = "out.tar.zst.age"
    ) async throws -> [UInt8] {
        #expect(try Support.shell("""
            set -e; cd \(Support.quote(directory.root)); mkdir -p src/data/sub
            head -c 200000 /dev/urandom > src/data/sub/random.bin; printf 'hello\\n' > src/data/hello.txt
            truncate -s 8M src/data/sparse
            printf 'inside' | dd of=src/data/sparse bs=1 seek=5000000 conv=notrunc 2>/dev/null
            tar --sparse -C src -cf tree.tar data
            """).status == 0)
        let writer = try ArchiveWriter(
            outputPath: directory.path(name), compressor: ZstdCompressor(settings: CompressionSettings(level: 3)),
            recipients: [identity.recipient])
        try writer.writeIndex(ArchiveIndex(stack: "demo", components: [
            .init(service: "db", type: "dump", archivePath: "db/dump.sql", kind: .file, container: "c"),
            .init(service: "app", type: "volume", archivePath: "volumes/data", kind: .tree, container: "c"),
            .init(service: "db", type: "dump", archivePath: "db/small.sql", kind: .file, container: "c"),
        ]))
        let dump = Support.sampleBytes(count: 700_001, seed: 3)
        _ = try await writer.addFile(at: "db/dump.sql", mode: 0o600) { try Support.feed(dump, chunk: 9_999, into: $0) }
        _ = try await writer.addTar(at: "volumes/data") { sink in
            try Support.feed([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path("tree.tar")))), chunk: 4096, into: sink)
        }
        _ = try await writer.addFile(at: "db/small.sql", mode: 0o600) { try Support.feed(Array("-- done\n".utf8), chunk: 3, into: $0) }
        let report = try await writer.finish(Self.header(name))
        #expect(report.ok, "\(report.problems)")
        return dump
    }

    @Test("round trip: the age file decrypts to a .tar.zst that tar reads; verify and read with the identity")
    func roundTrip() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let identity = try AgeX25519Identity.generate()
        let dump = try await Self.writeArchive(in: directory, to: identity)
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path("out.tar.zst.age"))))
        #expect(file.starts(with: Array("age-encryption.org/v1\n".utf8)))

        let plain = try AgeTests.decrypt(file, with: [identity])
        try Data(plain).write(to: URL(fileURLWithPath: directory.path("plain.tar.zst")))
        let listing = try Support.shell("tar --zstd -tf \(Support.quote(directory.path("plain.tar.zst")))")
        #expect(listing.status == 0, "\(listing.output)")
        let names = listing.output.split(separator: "\n")
        #expect(names.first == "stackvault-index.json" && names.last == "stackvault.json")
        #expect(names.contains("db/dump.sql") && names.contains { $0.hasPrefix("volumes/data/") && $0.hasSuffix("random.bin") })
        let sparse = try Support.shell("""
            cd \(Support.quote(directory.root)) && mkdir x && tar --zstd -xf plain.tar.zst -C x \\
              && cmp src/data/sparse x/volumes/data/sparse && du -k x/volumes/data/sparse | cut -f1
            """)
        #expect(sparse.output == "4\n", "the sparse file keeps its holes through age: \(sparse.output)")

        let archive = try LocalArchive.open(localPath: directory.path("out.tar.zst.age"), compressor: ZstdCompressor(settings: .init()),
                                            identities: [identity])
        #expect(archive.isEncrypted)
        let check = try archive.check(strategies: try StrategyRegistry([]))
        #expect(check.ok && check.envelope == nil, "\(check.problems)")
        let sink = CollectingSink()
        try archive.readFile("db/dump.sql", into: sink)
        #expect(sink.bytes == dump)
    }

    @Test("without an identity: the envelope is checked, the content needs the key")
    func envelopeOnly() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let identity = try AgeX25519Identity.generate()
        _ = try await Self.writeArchive(in: directory, to: identity)
        let path = directory.path("out.tar.zst.age")
        let archive = try LocalArchive.open(localPath: path, compressor: ZstdCompressor(settings: .init()))
        let check = try archive.check(strategies: try StrategyRegistry([]))
        #expect(check.ok && check.envelope?.recipientTypes == ["X25519"])
        #expect(check.report.notes.contains { $0.contains("needs the identity") })
        #expect(throws: StackVaultError.self) { try archive.readFile("db/dump.sql", into: CollectingSink()) }

        // A file cut to a length no complete age file has.
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let header = try AgeHeader.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(4096)), atEnd: false)!
        let cut = header.byteCount + 16 + AgePayload.sealedChunkSize + 5
        #expect(cut < size)
        #expect(truncate(path, off_t(cut)) == 0)
        let damaged = try LocalArchive.open(localPath: path, compressor: ZstdCompressor(settings: .init())).check(strategies: try StrategyRegistry([]))
        #expect(!damaged.ok && damaged.problems.contains { $0.contains("truncated") })
    }

    @Test("wrong key, tampered header, damaged first and last chunk, truncation: each refused, named")
    func damage() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let identity = try AgeX25519Identity.generate()
        _ = try await Self.writeArchive(in: directory, to: identity)
        let path = directory.path("out.tar.zst.age")
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = try AgeHeader.parse(good, atEnd: true)!.byteCount

        func problems(_ bytes: [UInt8], _ identities: [any AgeIdentity]) throws -> [String] {
            let damaged = directory.path("damaged-\(UUID()).tar.zst.age")
            try Data(bytes).write(to: URL(fileURLWithPath: damaged))
            let archive = try LocalArchive.open(localPath: damaged, compressor: ZstdCompressor(settings: .init()),
                                                identities: identities)
            let check = try archive.check(strategies: try StrategyRegistry([]))
            #expect(!check.ok)
            return check.problems
        }
        #expect(try problems(good, [try AgeX25519Identity.generate()]).joined().contains("no identity given opens"))
        var header = good
        header[headerLength - 5] = header[headerLength - 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(try problems(header, [identity]).joined().contains("MAC"))
        var first = good
        first[headerLength + 16 + 100] ^= 1
        #expect(try problems(first, [identity]).joined().contains("chunk 1 "))
        var last = good
        last[last.count - 20] ^= 1
        #expect(try problems(last, [identity]).joined().contains("the last"))
        let cut = Array(good.prefix(headerLength + 16 + 2 * AgePayload.sealedChunkSize))
        #expect(try problems(cut, [identity]).joined().contains("cut short"))
    }

    @Test("a component that fails half-way is hidden behind a skippable frame; the archive stays usable")
    func failingComponent() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        struct Boom: Error {}
        let identity = try AgeX25519Identity.generate()
        let path = directory.path("x.tar.zst.age")
        let writer = try ArchiveWriter(outputPath: path, compressor: ZstdCompressor(settings: .init()),
                                       recipients: [identity.recipient])
        try writer.writeIndex(ArchiveIndex(stack: "demo", components: [
            .init(service: "db", type: "dump", archivePath: "db/broken.sql", kind: .file, container: "c"),
            .init(service: "db", type: "dump", archivePath: "db/dump.sql", kind: .file, container: "c"),
        ]))
        let noise = Support.sampleBytes(count: 3_000_000, seed: 9)
        await #expect(throws: Boom.self) {
            _ = try await writer.addFile(at: "db/broken.sql", mode: 0o600) { sink in
                try Support.feed(noise, chunk: 65_000, into: sink)
                throw Boom()
            }
        }
        let dump = Support.sampleBytes(count: 100_000, seed: 4)
        _ = try await writer.addFile(at: "db/dump.sql", mode: 0o600) { try Support.feed(dump, chunk: 7_000, into: $0) }
        let report = try await writer.finish(Self.header("x.tar.zst.age"))
        #expect(report.ok, "\(report.problems)")
        let plain = try AgeTests.decrypt([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), with: [identity])
        try Data(plain).write(to: URL(fileURLWithPath: directory.path("plain.tar.zst")))
        let names = try Support.shell("tar --zstd -tf \(Support.quote(directory.path("plain.tar.zst")))")
        #expect(names.status == 0 && names.output == "stackvault-index.json\ndb/dump.sql\nstackvault.json\n",
                "\(names.output)")
    }
}
