import Foundation
import Testing

@testable import StackVaultCore

/// The archive writer's read-back (the archive is verified while it is written) and its parts: the in-memory chunk
/// queue between threads, and the XXH3 checksum that ties the bytes written to the bytes read back.
@Suite("Archive read-back")
struct ArchiveReadBackTests {
    typealias Support = ArchiveTestSupport

    // MARK: - ByteChunkQueue

    @Test func aQueueDeliversEveryByteInOrderWhateverTheWriteSizes() async throws {
        let data = Support.sampleBytes(count: 5_000_003, seed: 11)
        let queue = ByteChunkQueue(what: "test stream", count: 3, bufferSize: 65_536)
        let producer = ArchiveThreadCompletion<Void>()
        let thread = Thread {
            producer.complete(Result {
                // Sizes below, at and above the buffer size.
                try data.withUnsafeBytes { all in
                    var offset = 0
                    var turn = 0
                    let sizes = [1, 511, 65_536, 200_001, 7]
                    while offset < all.count {
                        let end = min(offset + sizes[turn % sizes.count], all.count)
                        try queue.write(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                        offset = end
                        turn += 1
                    }
                }
                queue.closeWriting()
            })
        }
        thread.start()
        var received: [UInt8] = []
        while let chunk = try queue.next() { received.append(contentsOf: chunk) }
        queue.closeReading()
        try producer.wait().get()
        #expect(received.count == data.count)
        #expect(received == data)
    }

    @Test func aProducerWhoseReaderStoppedGetsAClearError() throws {
        let queue = ByteChunkQueue(what: "the tar stream for 'x'", count: 2, bufferSize: 1024)
        queue.closeReading()
        let error = #expect(throws: StackVaultError.self) {
            try [UInt8](repeating: 1, count: 10_000).withUnsafeBytes { try queue.write($0) }
        }
        #expect(queue.readerGone)
        #expect(error?.message.contains("the tar stream for 'x' could not be delivered") == true)
    }

    @Test func cancellingWakesAWaitingReader() throws {
        let queue = ByteChunkQueue(what: "test stream")
        let reader = ArchiveThreadCompletion<Int?>()
        let thread = Thread { reader.complete(Result { try queue.next()?.count }) }
        thread.start()
        Thread.sleep(forTimeInterval: 0.05)
        queue.cancel()
        let error = #expect(throws: StackVaultError.self) { try reader.wait().get() }
        #expect(error?.code == .cancelled)
    }

    // MARK: - XXH3

    @Test func xxh3MatchesTheReferenceAndHashesIncrementally() {
        // XXH3_64bits("") from the xxHash reference.
        #expect(XXH3.hash([UInt8]()) == 0x2D06_8005_38D3_94C2)
        let data = Support.sampleBytes(count: 300_000, seed: 5)
        var pieces = XXH3()
        pieces.update(bytes: data[0..<1])
        pieces.update(bytes: data[1..<100_000])
        pieces.update(bytes: data[100_000...])
        #expect(pieces.finalize() == XXH3.hash(data))
        #expect(XXH3.hash(data) != XXH3.hash(data.dropLast()))

        // A value type: a copy goes its own way.
        var original = XXH3()
        original.update(bytes: [1, 2, 3])
        let copy = original
        original.update(bytes: [4])
        #expect(copy.finalize() == XXH3.hash([1, 2, 3]))
        #expect(original.finalize() == XXH3.hash([1, 2, 3, 4]))
    }

    // MARK: - The writer's read-back

    /// zstd, except that what the read-back decompresses is altered: a bit flipped at `flipAt` of the decompressed
    /// stream (data that decodes cleanly but differs from what was written), or an error after `failAfter` bytes.
    struct TamperingCompressor: Compressor {
        static let name = "zstd"
        static let fileExtension = "zst"
        var flipAt: Int64? = nil
        var failAfter: Int64? = nil

        init(settings: CompressionSettings) throws {}
        init(flipAt: Int64? = nil, failAfter: Int64? = nil) {
            self.flipAt = flipAt
            self.failAfter = failAfter
        }

        /// Level 3, 2 workers.
        let zstd = try! ZstdCompressor(settings: CompressionSettings(level: 3, threads: 2))

        func makeCompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream {
            try zstd.makeCompressor(writingTo: downstream)
        }

        func makeDecompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream {
            try zstd.makeDecompressor(
                writingTo: Tamper(downstream: downstream, flipAt: flipAt, failAfter: failAfter))
        }

        final class Tamper: ByteSink {
            let downstream: any ByteSink
            let flipAt: Int64?
            let failAfter: Int64?
            var position: Int64 = 0

            init(downstream: any ByteSink, flipAt: Int64?, failAfter: Int64?) {
                self.downstream = downstream
                self.flipAt = flipAt
                self.failAfter = failAfter
            }

            func write(_ bytes: UnsafeRawBufferPointer) throws {
                defer { position += Int64(bytes.count) }
                if let failAfter, position + Int64(bytes.count) > failAfter {
                    throw StackVaultError(.io, "simulated read error")
                }
                guard let flipAt, flipAt >= position, flipAt < position + Int64(bytes.count) else {
                    return try downstream.write(bytes)
                }
                var copy = Array(bytes)
                copy[Int(flipAt - position)] ^= 0x01
                try copy.withUnsafeBytes { try downstream.write($0) }
            }
        }
    }

    /// Writes an index, a 1 MiB file and a tree with a 200 kB file through `compressor`, then finishes.
    static func writeArchive(in directory: Support.TemporaryDirectory, compressor: any Compressor) async throws
        -> VerificationReport
    {
        let made = try Support.shell(
            "cd \(Support.quote(directory.root)) && mkdir -p t/data && printf 'a\\n' > t/data/a "
                + "&& head -c 200000 /dev/urandom > t/data/b && tar -C t -cf tree.tar data"
        )
        try #require(made.status == 0, "\(made.output)")
        let writer = try ArchiveWriter(outputPath: directory.path("out.tar.zst"), compressor: compressor)
        try writer.writeIndex(ArchiveWriterTests.index([("db/x.sql", .file), ("volumes/t", .tree)]))
        _ = try await writer.addFile(at: "db/x.sql", mode: 0o600) { sink in
            try Support.feed(Support.sampleBytes(count: 1_048_576, seed: 3), chunk: 100_000, into: sink)
        }
        _ = try await writer.addTar(at: "volumes/t") { sink in
            try ArchiveWriterTests.stream(file: directory.path("tree.tar"), chunk: 4096, into: sink)
        }
        return try await writer.finish(ArchiveWriterTests.header())
    }

    @Test func theRoomForAFileHeaderFitsTheLargestHeader() throws {
        let name = Array("db/database/pg_dumpall.sql".utf8)
        let small = try ArchiveWriter.tarHeader(path: name, size: 1_000, mode: 0o600)
        let large = try ArchiveWriter.tarHeader(path: name, size: ArchiveWriter.largestHeaderSize, mode: 0o600)
        #expect(small.count == 512)  // a plain ustar header
        #expect(large.count > small.count && large.count % 512 == 0)  // with a PAX size record (over 8 GiB)
        #expect(String(decoding: large, as: UTF8.self).contains("size=1099511627776"))
    }

    @Test func theManifestGetsTheTreeDigestOfWhatWasReadBack() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let report = try await Self.writeArchive(in: directory, compressor: TamperingCompressor())
        #expect(report.ok, "\(report.problems)")
        let tree = try #require(report.manifest?.components.first { $0.archivePath == "volumes/t" })
        #expect(tree.sha256.count == 64 && tree.entries == 3 && tree.sizeBytes == 200_002)
        // An independent verification computes the same digest from the file.
        let again = try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor())
        #expect(again.ok && again.manifest == report.manifest)
        // Two segments (zstd frames): the components, then the manifest; the zstd CLI reads them as one stream.
        #expect(try Support.shell("zstd -q -t \(Support.quote(directory.path("out.tar.zst")))").status == 0)
    }

    @Test func contentThatReadsBackDifferentlyFailsTheArchiveAndRemovesIt() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        // The index is ~1 KiB, the dump 1 MiB: 1.2 MiB into the tar stream is inside the tree's 200 kB file.
        let error = await #expect(throws: StackVaultError.self) {
            try await Self.writeArchive(in: directory, compressor: TamperingCompressor(flipAt: 1_250_000))
        }
        #expect(error?.code == .verification)
        #expect(
            error?.message.contains("as read back differs from what was written for 'volumes/t'") == true,
            "\(String(describing: error))")
        #expect(error?.message.contains("different content") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.root).filter { $0.hasSuffix(".zst") }
            .isEmpty)
    }

    @Test func aDumpThatReadsBackDifferentlyFailsTheArchive() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let error = await #expect(throws: StackVaultError.self) {
            try await Self.writeArchive(in: directory, compressor: TamperingCompressor(flipAt: 600_000))
        }
        #expect(error?.code == .verification)
        #expect(error?.message.contains("as read back differs from what was written for 'db/x.sql'") == true,
                "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.tar.zst")))
    }

    @Test func anUnreadableArchiveFailsAndIsRemoved() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let error = await #expect(throws: StackVaultError.self) {
            try await Self.writeArchive(in: directory, compressor: TamperingCompressor(failAfter: 700_000))
        }
        #expect(error?.code == .verification)
        #expect(error?.message.contains("simulated read error") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: directory.path("out.tar.zst")))
    }
}
