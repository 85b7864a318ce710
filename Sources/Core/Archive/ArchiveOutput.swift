import Foundation

/// The write-callback context: feeds the tar stream into the compressor and counts it.
final class ArchiveOutput: TarWriteClient {
    let stream: any CompressionStream
    var error: (any Error)?
    var discard = false
    var uncompressedBytes: Int64 = 0

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
        return buffer.count
    }

    /// Counts tar bytes that reached the archive other than through ``write(_:)``.
    func count(_ bytes: Int64) {
        uncompressedBytes += bytes
    }
}
