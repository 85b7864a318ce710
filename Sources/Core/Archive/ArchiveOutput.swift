import Foundation

/// The write-callback context: feeds the tar stream into the compressor and counts it.
final class ArchiveOutput: TarWriteClient {
    let stream: any CompressionStream
    var error: (any Error)?
    var discard = false
    var uncompressedBytes: Int64 = 0
    var onProgress: (@Sendable (Int64) -> Void)?
    private var reportedAt: Int64 = 0
    static let progressInterval: Int64 = 4 << 20

    init(stream: any CompressionStream) {
        self.stream = stream
    }

    /// The libarchive write callback's body: bytes accepted, or -1 with `error` set.
    func write(_ buffer: UnsafeRawBufferPointer) -> Int {
        if discard { return buffer.count }
        if error != nil { return -1 }
        do {
            try stream.write(buffer)
        } catch {
            self.error = error
            return -1
        }
        uncompressedBytes += Int64(buffer.count)
        reportProgress(force: false)
        return buffer.count
    }

    /// Counts tar bytes that reached the archive other than through ``write(_:)``.
    func count(_ bytes: Int64) {
        uncompressedBytes += bytes
        reportProgress(force: false)
    }

    func reportProgress(force: Bool) {
        guard let onProgress else { return }
        if force || uncompressedBytes - reportedAt >= Self.progressInterval {
            reportedAt = uncompressedBytes
            onProgress(uncompressedBytes)
        }
    }
}
