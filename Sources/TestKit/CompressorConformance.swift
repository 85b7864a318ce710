public import StackVaultCore

/// The compressor conformance suite: what every `Compressor` must do, as named checks run against each
/// implementation (restic's `internal/backend/test/suite.go` is the model: one suite, every implementation).
public enum CompressorConformance {
    /// A check the compressor did not pass.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The checks, by name, in the order `run` performs them.
    public static let checks = [
        "it has a name and a file extension",
        "bytes round-trip exactly, whatever their size and however they are cut",
        "segments decode together as one stream",
        "a truncated stream makes the decompressor throw",
        "a decompressor refuses to end a segment",
    ]

    /// Runs every check against `compressor`; throws a `Failure` naming the first one that fails.
    public static func run(_ compressor: any Compressor) throws {
        let kind = type(of: compressor)
        try check(0, !kind.name.isEmpty && !kind.fileExtension.isEmpty && !kind.fileExtension.hasPrefix("."),
                  "name '\(kind.name)', extension '\(kind.fileExtension)'")

        for size in [0, 1, 4096, 256 << 10] {
            let data = pattern(size: size)
            let compressed = try compress([data], with: compressor, writeSize: 1000)
            let back = try decompress(compressed, with: compressor, writeSize: 777)
            try check(1, back == data, "\(size) bytes came back as \(back.count) different bytes")
        }

        let segments = [pattern(size: 10_000, seed: 1), pattern(size: 0, seed: 2), pattern(size: 100_000, seed: 3)]
        let joined = try compress(segments, with: compressor, writeSize: 4096)
        try check(2, try decompress(joined, with: compressor, writeSize: 65_536) == segments.flatMap { $0 },
                  "three segments did not decode to their bytes in order")

        let whole = try compress([pattern(size: 100_000, seed: 4)], with: compressor, writeSize: 65_536)
        var threw = false
        do {
            _ = try decompress(Array(whole.prefix(whole.count / 2)), with: compressor, writeSize: 4096)
        } catch {
            threw = true
        }
        try check(3, threw, "half of a \(whole.count)-byte stream decoded without an error")

        let decompressor = try compressor.makeDecompressor(writingTo: CollectingSink())
        var refused = false
        do { try decompressor.finishSegment() } catch { refused = true }
        try check(4, refused, "finishSegment on a decompressor did not throw")
    }

    /// Bytes that compress somewhat but not trivially: a repeating text with a counter.
    static func pattern(size: Int, seed: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        var line = seed
        while out.count < size {
            out += Array("line \(line) of the conformance pattern, \(line * 7919 % 1000)\n".utf8)
            line += 1
        }
        return Array(out.prefix(size))
    }

    static func compress(_ segments: [[UInt8]], with compressor: any Compressor, writeSize: Int) throws -> [UInt8] {
        let out = CollectingSink()
        let stream = try compressor.makeCompressor(writingTo: out)
        for (index, segment) in segments.enumerated() {
            try write(segment, to: stream, writeSize: writeSize)
            if index < segments.count - 1 { try stream.finishSegment() }
        }
        try stream.finish()
        return out.bytes
    }

    static func decompress(_ bytes: [UInt8], with compressor: any Compressor, writeSize: Int) throws -> [UInt8] {
        let out = CollectingSink()
        let stream = try compressor.makeDecompressor(writingTo: out)
        try write(bytes, to: stream, writeSize: writeSize)
        try stream.finish()
        return out.bytes
    }

    private static func write(_ bytes: [UInt8], to sink: any ByteSink, writeSize: Int) throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + writeSize)
            try bytes[offset..<end].withUnsafeBytes { try sink.write($0) }
            offset = end
        }
    }

    private static func check(_ index: Int, _ condition: Bool, _ detail: @autoclosure () -> String) throws {
        guard condition else { throw Failure(description: "\(checks[index]): \(detail())") }
    }
}
