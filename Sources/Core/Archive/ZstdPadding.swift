internal import CZstd
import Foundation

/// The archive writer's padding trick: a compressed segment that fills a room reserved in the archive file exactly.
///
/// ``ArchiveWriter/addFile(at:mode:produce:)`` reserves room for a file's tar header, streams the content compressed
/// behind it and, once the size is known, fills the room with the header compressed as a frame of its own
/// followed by a zstd skippable frame (magic `0x184D2A50`, 4-byte little-endian length, that many bytes; RFC 8878,
/// section 3.1.2) that every decoder passes over. This is a property of the zstd format, not a role of a
/// ``Compressor``: the writer only needs its compressor to produce zstd frames.
enum ZstdPadding {
    /// The skippable frame's magic number and length field.
    static let skippableHeaderSize = 8

    /// True when `compressor` writes zstd frames, which this padding can fill a room with.
    static func supports(_ compressor: any Compressor) -> Bool {
        type(of: compressor).name == ZstdCompressor.name
    }

    /// The room ``segment(of:length:compressor:)`` needs for `count` bytes: the frame (compressBound covers its
    /// header; +4 for the content checksum) and a skippable frame's header.
    static func bound(_ count: Int) -> Int {
        Int(ZSTD_compressBound(count)) + 4 + skippableHeaderSize
    }

    /// `bytes` compressed by `compressor` as one standalone frame (single-threaded at its level, for a
    /// ``ZstdCompressor``: a header is too small for worker threads), then a skippable frame: exactly `length`
    /// bytes. Throws when they do not fit (`length` below ``bound(_:)`` of the count).
    static func segment(of bytes: [UInt8], length: Int, compressor: any Compressor) throws -> [UInt8] {
        let collector = CollectingSink(limit: length)
        let frameCompressor: any Compressor =
            try (compressor as? ZstdCompressor).map { try ZstdCompressor(level: $0.level, workers: 0) } ?? compressor
        let stream = try frameCompressor.makeCompressor(writingTo: collector)
        try bytes.withUnsafeBytes { try stream.write($0) }
        try stream.finish()
        let padding = length - collector.bytes.count
        guard !collector.truncated, padding >= skippableHeaderSize else {
            throw StackVaultError(
                .compression, "zstd: \(bytes.count) bytes do not fit a padded segment of \(length) bytes")
        }
        var out = collector.bytes
        out.reserveCapacity(length)
        out += skippableFrameHeader(skipping: padding - skippableHeaderSize)!
        out.append(contentsOf: repeatElement(0, count: padding - skippableHeaderSize))
        return out
    }

    /// The header of a skippable frame whose payload is the next `count` bytes, whatever they are; nil when
    /// `count` does not fit the frame's 32-bit length field. The encrypted archive writer hides a file component
    /// that failed half-way behind one (its bytes cannot be cut back out of an age file).
    static func skippableFrameHeader(skipping count: Int) -> [UInt8]? {
        guard count >= 0, count <= Int(UInt32.max) else { return nil }
        var out: [UInt8] = []
        for value in [UInt32(0x184D_2A50), UInt32(count)] {
            withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }
}
