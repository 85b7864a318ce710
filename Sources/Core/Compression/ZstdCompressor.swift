internal import CZstd
import Foundation

/// Zstandard compression through libzstd's streaming API.
///
/// Output is a standard zstd frame with a content checksum, readable by `zstd -d` and `tar --zstd`.
/// Honours `CompressionSettings.level` (default 3, any level libzstd accepts, negative = fast) and
/// `CompressionSettings.threads` (libzstd worker threads; 0 = one per online CPU; falls back to
/// single-threaded when the library was built without multithreading).
///
/// Memory is bounded by the level and the number of workers, never by the size of the data.
public struct ZstdCompressor: Compressor {
    public static let name = "zstd"
    public static let fileExtension = "zst"
    /// libzstd's own default, a good speed/ratio trade-off for backups.
    public static let defaultLevel = 3

    /// The compression level in use.
    public let level: Int
    /// The number of libzstd worker threads compression uses (0 = compress on the calling thread).
    public let workers: Int

    public init(settings: CompressionSettings = CompressionSettings()) throws {
        let level = settings.level ?? Self.defaultLevel
        try Self.validate(level: level)
        guard settings.threads >= 0 else {
            throw StackVaultError(
                .invalidConfiguration,
                "zstd: the number of compression threads must be 0 (all cores) or more, not \(settings.threads)"
            )
        }
        let requested = settings.threads == 0 ? Self.onlineCPUs() : settings.threads
        self.level = level
        self.workers = min(requested, Self.maxWorkers())
    }

    /// A compressor with an explicit number of libzstd workers (0 = single-threaded, blocking).
    init(level: Int, workers: Int) throws {
        try Self.validate(level: level)
        self.level = level
        self.workers = max(0, min(workers, Self.maxWorkers()))
    }

    public func makeCompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream {
        try ZstdCompressionStream(level: level, workers: workers, downstream: downstream)
    }

    public func makeDecompressor(writingTo downstream: any ByteSink) throws -> any CompressionStream {
        try ZstdDecompressionStream(downstream: downstream)
    }

    /// The levels libzstd accepts (`ZSTD_minCLevel()...ZSTD_maxCLevel()`, e.g. -131072...22).
    public static var levels: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    private static func validate(level: Int) throws {
        let range = levels
        guard range.contains(level) else {
            throw StackVaultError(
                .invalidConfiguration,
                "zstd: compression level \(level) is out of range; use \(range.lowerBound) to \(range.upperBound)"
            )
        }
    }

    private static func onlineCPUs() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The most workers libzstd accepts; 0 when it was built without multithreading.
    private static func maxWorkers() -> Int {
        let bounds = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers)
        if ZSTD_isError(bounds.error) != 0 { return 0 }
        return max(0, Int(bounds.upperBound))
    }
}

/// Turns a libzstd return code into a Swift error carrying `ZSTD_getErrorName`; passes other values through.
@discardableResult
func zstdCheck(_ code: Int, _ what: @autoclosure () -> String = "zstd") throws -> Int {
    if ZSTD_isError(code) != 0 {
        let name = String(cString: ZSTD_getErrorName(code))
        throw StackVaultError(.compression, "\(what()): \(name)")
    }
    return code
}

/// One streaming compression: owns its `ZSTD_CCtx` and output buffer, freed in `deinit`.
final class ZstdCompressionStream: CompressionStream {
    private let cctx: OpaquePointer
    private let downstream: any ByteSink
    private let output: UnsafeMutableRawBufferPointer
    private var finished = false

    init(level: Int, workers: Int, downstream: any ByteSink) throws {
        guard let cctx = ZSTD_createCCtx() else {
            throw StackVaultError(.compression, "zstd: cannot allocate a compression context (out of memory?)")
        }
        self.cctx = cctx
        self.downstream = downstream
        self.output = .allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 16)
        try zstdCheck(
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level)),
            "zstd: setting level \(level)"
        )
        try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1), "zstd: enabling the content checksum")
        if workers > 0 {
            // Fails only if the library has no MT support; stay single-threaded then.
            if ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, Int32(workers))) != 0 {
                try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, 0), "zstd: setting workers")
            } else {
                // zstd's default job (4 x window, 8 MiB at level 3) keeps several jobs' input and output buffers
                // in flight: peak RSS of a whole backup was 137 MB. 2 MiB jobs measured 73 MB for +0.9% size and
                // the same speed (332 MB mixed data, 2 workers).
                try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_jobSize, Self.jobSize), "zstd: setting the job size")
                // Each job starts with the whole window before it as context (overlapLog 9), as single-threaded
                // zstd would see it; zstd's default for level 3 is 1/8 of the window. On the 1.5 GiB benchmark
                // data this made the archive 14% smaller (709 -> 609 MB) and the compression cheaper (5.0 -> 4.2 s
                // user CPU: long matches are fast to encode); on incompressible data it costs ~0.35 s CPU per GB.
                // Memory is unchanged: the window is kept for the next job anyway.
                try zstdCheck(ZSTD_CCtx_setParameter(cctx, ZSTD_c_overlapLog, 9), "zstd: setting the job overlap")
            }
        }
    }

    /// Bytes per multithreaded compression job.
    static let jobSize: Int32 = 2 << 20

    deinit {
        ZSTD_freeCCtx(cctx)
        output.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw StackVaultError(.compression, "zstd: write after the stream was finished") }
        guard bytes.count > 0 else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        repeat {
            try step(&input, ZSTD_e_continue)
        } while input.pos < input.size
    }

    func finish() throws {
        guard !finished else { return }
        finished = true
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&input, ZSTD_e_end) != 0 {}
    }

    /// Ends the frame (with its checksum); the next write starts a new frame with the same settings.
    func finishSegment() throws {
        guard !finished else { throw StackVaultError(.compression, "zstd: the stream was already finished") }
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&input, ZSTD_e_end) != 0 {}
    }

    /// One call to ZSTD_compressStream2; returns its "bytes still to flush" hint.
    @discardableResult
    private func step(_ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective) throws -> Int {
        var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        let remaining = try zstdCheck(ZSTD_compressStream2(cctx, &out, &input, directive), "zstd: compressing")
        if out.pos > 0 {
            try downstream.write(UnsafeRawBufferPointer(rebasing: output[0..<out.pos]))
        }
        return remaining
    }
}

/// One streaming decompression: owns its `ZSTD_DCtx` and output buffer, freed in `deinit`.
///
/// Accepts any number of concatenated frames. Corrupt input (including a wrong content checksum) makes
/// `write` throw; `finish` throws when the input stopped in the middle of a frame or was empty.
final class ZstdDecompressionStream: CompressionStream {
    private let dctx: OpaquePointer
    private let downstream: any ByteSink
    private let output: UnsafeMutableRawBufferPointer
    /// The last return value of ZSTD_decompressStream: 0 exactly when a frame ended and was fully flushed.
    private var lastHint = 0
    private var sawInput = false
    private var finished = false

    init(downstream: any ByteSink) throws {
        guard let dctx = ZSTD_createDCtx() else {
            throw StackVaultError(.compression, "zstd: cannot allocate a decompression context (out of memory?)")
        }
        self.dctx = dctx
        self.downstream = downstream
        self.output = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(dctx)
        output.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw StackVaultError(.compression, "zstd: write after the stream was finished") }
        guard bytes.count > 0 else { return }
        sawInput = true
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while true {
            var out = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let consumedBefore = input.pos
            let hint = try zstdCheck(
                ZSTD_decompressStream(dctx, &out, &input),
                "zstd: the compressed data is corrupt"
            )
            // A call that neither read nor wrote anything only announces the next frame header: not a state change.
            if out.pos > 0 || input.pos != consumedBefore { lastHint = hint }
            if out.pos > 0 {
                try downstream.write(UnsafeRawBufferPointer(rebasing: output[0..<out.pos]))
            }
            // Once the input is used up, stop unless a full output buffer may hide more output of this frame.
            if input.pos == input.size && (out.pos < out.size || hint == 0) { break }
        }
    }

    func finishSegment() throws {
        throw StackVaultError(.compression, "zstd: a decompressor has no segments to end")
    }

    func finish() throws {
        guard !finished else { return }
        finished = true
        guard sawInput else {
            throw StackVaultError(.compression, "zstd: the compressed stream is empty (no zstd frame)")
        }
        if lastHint != 0 {
            throw StackVaultError(
                .compression,
                "zstd: the compressed stream is truncated (it ends in the middle of a frame)"
            )
        }
    }
}
