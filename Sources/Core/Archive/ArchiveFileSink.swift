import Foundation

/// Buffers writes into 1 MiB chunks for a file descriptor it does not own; publishes each write to `growth`.
final class ArchiveFileSink: ByteSink {
    let fd: Int32
    let what: String
    private let growth: ArchiveGrowth?
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Bytes accepted so far (written or buffered).
    private(set) var totalBytes: Int64 = 0
    /// Bytes written to the file so far.
    private var writtenBytes: Int64 = 0

    init(fd: Int32, what: String, growth: ArchiveGrowth? = nil, bufferSize: Int = 1 << 20) {
        self.fd = fd
        self.what = what
        self.growth = growth
        self.buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        totalBytes += Int64(bytes.count)
        if used + bytes.count <= buffer.count {
            buffer.baseAddress!.advanced(by: used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            used += bytes.count
            if used == buffer.count { try flush() }
            return
        }
        try flush()
        if bytes.count >= buffer.count {
            try FileDescriptorIO.writeAll(fd, bytes, what: what)
            writtenBytes += Int64(bytes.count)
            growth?.publish(writtenBytes)
        } else {
            buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            used = bytes.count
        }
    }

    /// Overwrites bytes already written (and flushed) at `offset`.
    func write(_ bytes: [UInt8], at offset: Int64) throws {
        precondition(offset + Int64(bytes.count) <= writtenBytes, "overwriting bytes not written yet")
        try bytes.withUnsafeBytes { try FileDescriptorIO.writeAll(fd, $0, at: offset, what: what) }
    }

    /// Drops everything after `size` bytes (buffered bytes included).
    func truncate(to size: Int64) throws {
        used = 0
        try syscall("ftruncate", path: what, failing: "cannot cut \(what) back to \(size) bytes") {
            ftruncate(fd, off_t(size))
        }
        try syscall("lseek", path: what, failing: "cannot cut \(what) back to \(size) bytes") {
            lseek(fd, off_t(size), SEEK_SET)
        }
        totalBytes = size
        writtenBytes = size
        growth?.retract(to: size)
    }

    func flush() throws {
        guard used > 0 else { return }
        let pending = UnsafeRawBufferPointer(rebasing: buffer[0..<used])
        used = 0
        try FileDescriptorIO.writeAll(fd, pending, what: what)
        writtenBytes += Int64(pending.count)
        growth?.publish(writtenBytes)
    }
}
