import CStackVaultShims
import Foundation

/// Keeps a file that StackVault streams once (an archive being written and read back, uploaded, downloaded,
/// verified, restored, copied) out of the page cache: behind the stream, it tells the kernel the bytes already
/// consumed are not needed again (`posix_fadvise(POSIX_FADV_DONTNEED)`), so that a 1 GiB archive does not leave
/// 1 GiB of cache charged to StackVault's container (`docker stats`, memory limits) nor push the host's own hot
/// data out (issue #20).
///
/// Readers call ``consumed(upTo:)`` with the offset read so far. Writers call ``written(upTo:)`` with the offset
/// written so far; since the kernel only drops clean pages, a writer has write-back started for each new chunk
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`) and drops it one chunk later, by when it is normally written. It never
/// waits for the disk: an archive is written while containers are stopped, and waiting would lengthen their
/// downtime whenever the disk is slower than the copy; pages still being written then stay until ``dropAll()``,
/// which ends a stream (a writer: after waiting for the write-back of the whole file, as its `fsync` does anyway).
/// Everything is advised in whole pages, in chunks of ``defaultChunk`` bytes: two system calls per chunk.
///
/// Advice only: failures are ignored (a write-back error surfaces at the writer's `fsync`, or in the verification
/// that reads the file back). Not thread-safe: one stream, one thread at a time; ``drop(_:offset:length:system:)``
/// serves streams that read ranges in parallel (S3 upload parts). Only for files StackVault itself made or fetches:
/// dropping is global, so it is never used on a user's own files (a volume being backed up is the host's hot data).
package final class PageCacheDropper {
    /// The advice given.
    package enum Advice: Sendable, Equatable {
        /// `POSIX_FADV_DONTNEED`: drop the (clean) pages of the range.
        case dontNeed
        /// `POSIX_FADV_SEQUENTIAL`: the file is read front to back (Linux doubles its read-ahead).
        case sequential
    }

    /// The system calls the dropper makes, injectable so that tests can record them.
    package struct System: Sendable {
        /// `posix_fadvise(fd, offset, length, advice)`; length 0 means to the end of the file.
        package var advise: @Sendable (_ fd: Int32, _ offset: Int64, _ length: Int64, _ advice: Advice) -> Void
        /// `sync_file_range`: starts write-back of the range (length 0: to the end); with `wait`, also waits for it
        /// and for write-back already under way in it.
        package var writeBack: @Sendable (_ fd: Int32, _ offset: Int64, _ length: Int64, _ wait: Bool) -> Void

        package init(
            advise: @escaping @Sendable (Int32, Int64, Int64, Advice) -> Void,
            writeBack: @escaping @Sendable (Int32, Int64, Int64, Bool) -> Void
        ) {
            self.advise = advise
            self.writeBack = writeBack
        }

        /// The real calls.
        package static let linux = System(
            advise: { fd, offset, length, advice in
                let value = advice == .dontNeed ? POSIX_FADV_DONTNEED : POSIX_FADV_SEQUENTIAL
                _ = posix_fadvise(fd, off_t(offset), off_t(length), value)
            },
            writeBack: { fd, offset, length, wait in
                _ = CStackVaultShims_sync_file_range(fd, offset, length, wait ? 1 : 0)
            })
    }

    /// Bytes between two drops: 32 MiB (large enough that the calls cost nothing next to the I/O, small enough that
    /// the cache a stream holds stays far below what memory limits are set to).
    package static let defaultChunk: Int64 = 32 << 20
    /// Offsets advised are multiples of this (the kernel keeps partial pages at the ends of a range).
    static let pageSize = Int64(max(4096, sysconf(Int32(_SC_PAGESIZE))))

    private let fd: Int32
    private let chunk: Int64
    private let system: System
    private let isWriter: Bool
    private let start: Int64
    private let readLimit: (() -> Int64)?
    /// Everything from the stream's start up to here was advised away.
    package private(set) var dropped: Int64
    /// A writer: write-back was started up to here.
    private var writeBackStarted: Int64

    /// A dropper for a stream that reads `fd` from `offset` onwards; advises sequential reading of that range.
    package convenience init(reading fd: Int32, from offset: Int64 = 0, chunk: Int64 = defaultChunk,
                             system: System = .linux) {
        self.init(fd: fd, offset: offset, chunk: chunk, system: system, isWriter: false, readLimit: nil)
        system.advise(fd, start, 0, .sequential)
    }

    /// A dropper for a stream that writes `fd` from `offset` onwards. With `readLimit`, another stream reads the
    /// file as it grows (the archive writer's read-back): nothing past what it has read is dropped, so that it
    /// reads from memory, not from disk.
    package convenience init(writing fd: Int32, from offset: Int64 = 0, chunk: Int64 = defaultChunk,
                             system: System = .linux, readLimit: (() -> Int64)? = nil) {
        self.init(fd: fd, offset: offset, chunk: chunk, system: system, isWriter: true, readLimit: readLimit)
    }

    private init(fd: Int32, offset: Int64, chunk: Int64, system: System, isWriter: Bool, readLimit: (() -> Int64)?) {
        self.fd = fd
        self.chunk = max(chunk, Self.pageSize)
        self.system = system
        self.isWriter = isWriter
        self.readLimit = readLimit
        start = offset - offset % Self.pageSize
        dropped = start
        writeBackStarted = offset
    }

    /// A reader consumed the file up to `end` (exclusive).
    package func consumed(upTo end: Int64) {
        let target = pageAligned(min(end, readLimit?() ?? .max))
        guard target - dropped >= chunk else { return }
        system.advise(fd, dropped, target - dropped, .dontNeed)
        dropped = target
    }

    /// A writer wrote the file up to `end` (exclusive): starts write-back of each new chunk and drops the one before
    /// (what of it is written back by then).
    package func written(upTo end: Int64) {
        guard end - writeBackStarted >= chunk else { return }
        let previous = writeBackStarted
        system.writeBack(fd, previous, end - previous, false)
        writeBackStarted = end
        // What lies before `previous` had its write-back started a chunk ago.
        let target = pageAligned(min(previous, readLimit?() ?? .max))
        guard target > dropped else { return }
        system.advise(fd, dropped, target - dropped, .dontNeed)
        dropped = target
    }

    /// The writer cut the file back to `size` bytes.
    package func truncated(to size: Int64) {
        dropped = min(dropped, pageAligned(size))
        writeBackStarted = min(writeBackStarted, size)
    }

    /// The stream is over: drops everything from its start to the end of the file (a writer: once written back,
    /// including bytes rewritten in place behind the stream).
    package func dropAll() {
        if isWriter { system.writeBack(fd, start, 0, true) }
        system.advise(fd, start, 0, .dontNeed)
    }

    /// Drops `length` bytes at `offset` of `fd` (clean pages only), for streams that read ranges in parallel.
    package static func drop(_ fd: Int32, offset: Int64, length: Int64, system: System = .linux) {
        system.advise(fd, offset, length, .dontNeed)
    }

    private func pageAligned(_ offset: Int64) -> Int64 { offset - offset % Self.pageSize }
}
