import Foundation
import Testing

@testable import StackVaultCore

@Suite("ZstdCompressor")
struct ZstdCompressorTests {
    typealias Support = ArchiveTestSupport

    private static func compress(
        _ data: [UInt8],
        _ compressor: ZstdCompressor,
        chunk: Int = 7919
    ) throws -> [UInt8] {
        let sink = CollectingSink()
        let stream = try compressor.makeCompressor(writingTo: sink)
        try Support.feed(data, chunk: chunk, into: stream)
        try stream.finish()
        try stream.finish()  // idempotent
        return sink.bytes
    }

    private static func decompress(_ data: [UInt8], chunk: Int = 4093) throws -> [UInt8] {
        let sink = CollectingSink()
        let stream = try ZstdCompressor().makeDecompressor(writingTo: sink)
        try Support.feed(data, chunk: chunk, into: stream)
        try stream.finish()
        return sink.bytes
    }

    @Test(arguments: [0, 1, 1_000, 5 * 1_048_576 + 17], [0, 1, 2])
    func roundTrips(size: Int, threads: Int) throws {
        let data = Support.sampleBytes(count: size, seed: UInt64(size + 1))
        let compressor = try ZstdCompressor(settings: CompressionSettings(threads: threads))
        let compressed = try Self.compress(data, compressor)
        if size > 100_000 { #expect(compressed.count < size / 2) }
        #expect(try Self.decompress(compressed) == data)
    }

    @Test func framesCarryAContentChecksumAndTheCLIAcceptsThem() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let data = Support.sampleBytes(count: 3 * 1_048_576 + 5, seed: 9)
        let compressed = try Self.compress(data, ZstdCompressor(settings: CompressionSettings(level: 5, threads: 2)))
        // Frame header descriptor (after the 4-byte magic): bit 2 = Content_Checksum_flag.
        #expect(compressed.count > 5 && compressed[4] & 0x04 != 0)

        let file = directory.path("data.zst")
        try Data(compressed).write(to: URL(fileURLWithPath: file))
        let test = try Support.shell("zstd -q -t \(Support.quote(file))")
        #expect(test.status == 0, "\(test.output)")
        let decoded = try Support.shell(
            "zstd -q -d -c \(Support.quote(file)) > \(Support.quote(directory.path("data")))"
        )
        #expect(decoded.status == 0, "\(decoded.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.path("data"))) == Data(data))
    }

    @Test func decodesWhatTheCLIProduces() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let data = Support.sampleBytes(count: 2 * 1_048_576 + 3, seed: 4)
        try Data(data).write(to: URL(fileURLWithPath: directory.path("in")))
        // Two frames back to back (zstd output concatenated), the second at a high level.
        let made = try Support.shell(
            "cd \(Support.quote(directory.path(""))) && zstd -q -1 -c in > in.zst && zstd -q -19 -c in >> in.zst"
        )
        #expect(made.status == 0, "\(made.output)")
        let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory.path("in.zst"))))
        #expect(try Self.decompress(compressed, chunk: 65_537) == data + data)
    }

    /// A frame whose content ends exactly on a block boundary, fed in one piece: the last call that reads and
    /// writes nothing must not make the complete frame look truncated.
    @Test(arguments: [131_072, 1_048_576])
    func decodesFramesEndingOnABlockBoundaryInOneWrite(size: Int) throws {
        let data = Support.sampleBytes(count: size, seed: 3)
        for level in [1, 3] {
            let compressed = try Self.compress(data, ZstdCompressor(level: level, workers: 0), chunk: 100_000)
            #expect(try Self.decompress(compressed, chunk: compressed.count) == data)
            #expect(try Self.decompress(compressed + compressed, chunk: 2 * compressed.count) == data + data)
        }
    }

    @Test func truncatedInputThrowsOnFinish() throws {
        let data = Support.sampleBytes(count: 1_048_576, seed: 2)
        let compressed = try Self.compress(data, ZstdCompressor())
        for cut in [compressed.count / 2, compressed.count - 1, 3] {
            let sink = CollectingSink()
            let stream = try ZstdCompressor().makeDecompressor(writingTo: sink)
            let error = #expect(throws: StackVaultError.self) {
                try stream.write(Array(compressed[..<cut]))
                try stream.finish()
            }
            #expect(error?.code == .compression)
            #expect(error?.message.contains("truncated") == true || cut == 3, "\(String(describing: error))")
            // Everything that was decoded is a true prefix; losing only the checksum still fails.
            #expect(Array(data.prefix(sink.bytes.count)) == sink.bytes)
        }
    }

    @Test func corruptInputThrowsWithZstdsErrorName() throws {
        let garbage = Array("this is not a zstd frame at all".utf8)
        let error = #expect(throws: StackVaultError.self) { _ = try Self.decompress(garbage) }
        #expect(error?.message.contains("Unknown frame descriptor") == true, "\(String(describing: error))")

        // One flipped byte in the middle: a block decode error or the content checksum catches it.
        let data = Support.sampleBytes(count: 2 * 1_048_576, seed: 7)
        var compressed = try Self.compress(data, ZstdCompressor())
        compressed[compressed.count / 2] ^= 0x40
        #expect(throws: StackVaultError.self) { _ = try Self.decompress(compressed) }
    }

    @Test func emptyInputIsNotAStream() throws {
        #expect(throws: StackVaultError.self) { _ = try Self.decompress([]) }
    }

    @Test func settings() throws {
        #expect(ZstdCompressor.name == "zstd")
        #expect(ZstdCompressor.fileExtension == "zst")
        let defaults = try ZstdCompressor(settings: CompressionSettings())
        #expect(defaults.level == 3)
        #expect(defaults.workers >= 1)  // 0 = one per online CPU
        #expect(try ZstdCompressor(settings: CompressionSettings(level: -5, threads: 1)).workers == 1)
        #expect(throws: StackVaultError.self) { try ZstdCompressor(settings: CompressionSettings(level: 99)) }
        #expect(throws: StackVaultError.self) { try ZstdCompressor(settings: CompressionSettings(threads: -1)) }
    }

    @Test func helperTurnsZstdErrorCodesIntoErrors() throws {
        #expect(try zstdCheck(42) == 42)
        let error = #expect(throws: StackVaultError.self) { try zstdCheck(-1, "testing") }
        #expect(error?.message.hasPrefix("testing: ") == true)
    }

    /// Segments: frames that concatenate into one stream, and a padded frame that fills a reserved room exactly.
    @Test func segmentsAndPaddedSegmentsDecodeAsOneStream() throws {
        let compressor = try ZstdCompressor(settings: CompressionSettings(threads: 2))
        let sink = CollectingSink()
        let stream = try compressor.makeCompressor(writingTo: sink)
        let first = Support.sampleBytes(count: 300_000, seed: 1)
        let second = Support.sampleBytes(count: 1_000, seed: 2)
        try stream.write(first)
        try stream.finishSegment()
        let frameA = sink.bytes  // everything written so far is out: the segment ended
        try stream.write(second)
        try stream.finish()
        let frameB = Array(sink.bytes[frameA.count...])
        #expect(try Self.decompress(frameA) == first)
        // A padded segment fills a reserved room exactly, and decodes in place as if it were not padded.
        let header = Support.sampleBytes(count: 1_536, seed: 9)
        let room = ZstdPadding.bound(header.count)
        let padded = try ZstdPadding.segment(of: header, length: room, compressor: compressor)
        #expect(padded.count == room)
        let assembled = frameA + padded + frameB
        #expect(try Self.decompress(assembled) == first + header + second)
        // The zstd CLI agrees, skippable frame included.
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        try Data(assembled).write(to: URL(fileURLWithPath: directory.path("segments.zst")))
        #expect(try Support.shell("zstd -q -t \(Support.quote(directory.path("segments.zst")))").status == 0)
        // A room too small is refused, not overrun.
        #expect(throws: StackVaultError.self) { try ZstdPadding.segment(of: header, length: 100, compressor: compressor) }
    }

    @Test func writingAfterFinishThrows() throws {
        let stream = try ZstdCompressor().makeCompressor(writingTo: CollectingSink())
        try stream.finish()
        #expect(throws: StackVaultError.self) { try [UInt8]([1, 2, 3]).withUnsafeBytes { try stream.write($0) } }
    }
}

extension CompressionStream {
    fileprivate func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

/// Helpers shared by the compression, crypto and archive tests.
enum ArchiveTestSupport {
    /// Writes `data` in chunks of `chunk` bytes.
    static func feed(_ data: [UInt8], chunk: Int, into sink: any ByteSink) throws {
        var offset = 0
        try data.withUnsafeBytes { all in
            while offset < all.count {
                let end = min(offset + chunk, all.count)
                try sink.write(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                offset = end
            }
        }
    }

    /// Deterministic bytes, half random and half repetitive text, so they compress somewhat.
    static func sampleBytes(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8]()
        out.reserveCapacity(count)
        let text = Array("INSERT INTO accounts VALUES (42, 'stackvault', now());\n".utf8)
        while out.count < count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            if state & 1 == 0 {
                for shift in stride(from: 0, to: 64, by: 8) where out.count < count {
                    out.append(UInt8(truncatingIfNeeded: state >> UInt64(shift)))
                }
            } else {
                out.append(contentsOf: text.prefix(count - out.count))
            }
        }
        return out
    }

    /// A fresh directory under /tmp, removed when the value is destroyed.
    final class TemporaryDirectory {
        let root: String

        init() throws {
            root = NSTemporaryDirectory() + "stackvault-test-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }

        deinit {
            remove()
        }

        /// Removes the directory; call it from a `defer` so the directory lives as long as the test.
        func remove() {
            try? FileManager.default.removeItem(atPath: root)
        }

        func path(_ relative: String) -> String {
            relative.isEmpty ? root : root + "/" + relative
        }
    }

    /// Runs a bash script; returns its exit status and combined output.
    @discardableResult
    static func shell(_ script: String) throws -> (status: Int32, output: String) {
        let process = bashProcess(script)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// A bash process running `script` in the C.UTF-8 locale, not started yet.
    static func bashProcess(_ script: String) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C.UTF-8"
        process.environment = environment
        return process
    }

    /// Single-quotes `string` for bash.
    static func quote(_ string: String) -> String {
        "'" + string.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
