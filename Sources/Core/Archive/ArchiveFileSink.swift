import Foundation

/// Buffers writes into 1 MiB chunks for a file descriptor it does not own; publishes each write to `growth`, and
/// keeps what it wrote out of the page cache behind it (``PageCacheDropper``; not past what `growth`'s reader has
/// read). Used for every file StackVault writes as a stream: the archive, a download, a copy to another file system.
package final class ArchiveFileSink: ByteSink {
    let fd: Int32
    let what: String
    private let growth: ArchiveGrowth?
    private let pageCache: PageCacheDropper
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Bytes accepted so far (written or buffered).
    package private(set) var totalBytes: Int64 = 0
    /// Bytes written to the file so far.
    private var writtenBytes: Int64 = 0

    /// Writes at `fd`'s current offset, which must be 0 (a new file).
    package convenience init(fd: Int32, what: String) {
        self.init(fd: fd, what: what, growth: nil)
    }

    /// `pageCache` and `pageCacheChunk` are the ``PageCacheDropper``'s (tests record its calls).
    init(fd: Int32, what: String, growth: ArchiveGrowth?, bufferSize: Int = 1 << 20,
         pageCache system: PageCacheDropper.System = .linux, pageCacheChunk: Int64 = PageCacheDropper.defaultChunk) {
        self.fd = fd
        self.what = what
        self.growth = growth
        self.pageCache = PageCacheDropper(writing: fd, chunk: pageCacheChunk, system: system,
                                          readLimit: growth.map { growth in { growth.readPosition } })
        self.buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws {
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
            pageCache.written(upTo: writtenBytes)
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
        pageCache.truncated(to: size)
    }

    /// Flushes, then drops the whole file from the page cache once it is written back (the stream is over; call it
    /// after `fsync`, if any, and before closing the descriptor).
    package func flushAndDropCache() throws {
        try flush()
        pageCache.dropAll()
    }

    package func flush() throws {
        guard used > 0 else { return }
        let pending = UnsafeRawBufferPointer(rebasing: buffer[0..<used])
        used = 0
        try FileDescriptorIO.writeAll(fd, pending, what: what)
        writtenBytes += Int64(pending.count)
        growth?.publish(writtenBytes)
        pageCache.written(upTo: writtenBytes)
    }
}
