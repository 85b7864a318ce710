/// Receives a stream of bytes, one buffer at a time.
///
/// Sinks are used from one thread at a time and are not `Sendable`.
public protocol ByteSink: AnyObject {
    /// Consumes `bytes`; the buffer is only valid during the call.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// A streaming (de)compression transform: bytes written in come out transformed into the downstream sink.
public protocol CompressionStream: ByteSink {
    /// Flushes everything still buffered into the downstream sink and ends the stream.
    /// For a decompressor, throws if the input ended in the middle of a frame.
    func finish() throws

    /// Compressors: ends the current segment (for zstd, the frame) so that everything written so far decodes on
    /// its own; further writes start a new segment, and the segments together decode as one stream (a compression
    /// role: what a flush to a frame boundary does). The archive writer ends a segment after the last component, so
    /// it can read the components back before it writes the manifest, and before the room it reserves for a file's
    /// header. Decompressors throw.
    func finishSegment() throws
}

/// A compression format, registered by its name (`zstd`).
///
/// An implementation must guarantee:
/// - memory use is bounded by its settings, never by the size of the data;
/// - a compressed stream decodes to exactly the bytes written, and a damaged or truncated stream makes the
///   decompressor throw rather than return wrong data silently;
/// - its output is readable by the format's standard command-line tool (for zstd: `zstd -d`, `tar --zstd`),
///   also when it is made of several segments (``CompressionStream/finishSegment()``).
public protocol Compressor: Sendable {
    /// The name users select it by, e.g. `zstd`.
    static var name: String { get }
    /// The file name extension of its output, e.g. `zst`.
    static var fileExtension: String { get }
    /// Builds a compressor from its settings (level, threads); nil settings mean defaults.
    init(settings: CompressionSettings) throws
    func makeCompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream
    func makeDecompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream
}

/// Settings shared by compressors; each compressor documents which it honours.
public struct CompressionSettings: Sendable, Equatable {
    /// Compression level; nil = the compressor's default.
    public var level: Int?
    /// Worker threads; 0 = all cores.
    public var threads: Int

    public init(level: Int? = nil, threads: Int = 0) {
        self.level = level
        self.threads = threads
    }
}
