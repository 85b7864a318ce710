internal import CArchive
import Foundation

/// Reads a tar stream (ustar, pax, GNU) entry by entry from chunks handed over in memory: the one libarchive read
/// set-up and entry iterator of the package.
///
/// Each chunk `next` returns stays valid until the following call, as libarchive's read callback requires; entry
/// data is read in place from libarchive's buffers (mostly those chunks), without a copy. Used from one thread.
final class TarReader {
    /// The outcome of ``nextEntry()``.
    enum Next {
        /// The next entry; valid until the following call.
        case entry(TarEntry)
        /// The stream ended properly.
        case end
        /// This header cannot be read, but reading may go on with the next one (libarchive's FAILED or RETRY).
        case damaged(String)
        /// The stream cannot be read further (libarchive's FATAL), with libarchive's message.
        case broken(String)
    }

    /// The outcome of one ``nextDataBlock()`` call.
    enum DataBlock {
        /// The next bytes of the current entry, in libarchive's buffer (valid until the next read call), and their
        /// offset in the entry (ahead of the bytes so far after a hole of a sparse entry).
        case data(UnsafeRawBufferPointer, offset: Int64)
        /// The entry's data is complete.
        case end
        /// The data cannot be read (``errorMessage`` says why).
        case failed
    }

    private let archive: OpaquePointer
    private let source: ChunkSource

    /// What `next` threw, which libarchive only knows as a fatal read error.
    var sourceError: (any Error)? { source.error }
    /// Why the last call failed: the chunk source's error, else libarchive's message.
    var errorMessage: String { source.error.map { "\($0)" } ?? archiveErrorString(archive) }
    /// libarchive's own message for the last failure.
    var libarchiveMessage: String { archiveErrorString(archive) }

    init(next: @escaping () throws -> UnsafeRawBufferPointer?) throws {
        guard let archive = archive_read_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a read handle (out of memory?)")
        }
        self.archive = archive
        self.source = ChunkSource(next: next)
        // Only tar (ustar, pax, GNU): the input is always a tar stream, and accepting other formats from a
        // container would only widen the attack surface.
        try archiveCheck(archive_read_support_format_tar(archive), archive, "enabling the tar reader")
    }

    deinit {
        archive_read_free(archive)
    }

    /// Opens the stream (libarchive reads the first header to recognise the format). Call once, first.
    func open(_ what: @autoclosure () -> String) throws {
        let context = Unmanaged.passUnretained(source).toOpaque()
        let status = archive_read_open(archive, context, nil, { _, clientData, buffer in
            guard let clientData, let buffer else { return -1 }
            return Unmanaged<ChunkSource>.fromOpaque(clientData).takeUnretainedValue().read(into: buffer)
        }, nil)
        if status != ARCHIVE_OK, let error = source.error { throw error }
        try archiveCheck(status, archive, what())
    }

    /// True when the current entry is sparse (GNU sparse formats): its data blocks skip the holes, a trailing one
    /// included. Recorded when the header is read, as the entry's map may be cleared later.
    private(set) var currentEntryIsSparse = false

    /// The next entry's header.
    func nextEntry() -> Next {
        var entryPointer: OpaquePointer?
        let status = withLibArchiveUTF8Locale { archive_read_next_header(archive, &entryPointer) }
        if status == ARCHIVE_EOF { return .end }
        if status == ARCHIVE_OK || status == ARCHIVE_WARN, let entryPointer {
            currentEntryIsSparse = archive_entry_sparse_count(entryPointer) > 0
            return .entry(TarEntry(borrowing: entryPointer))
        }
        if status == ARCHIVE_FAILED || status == ARCHIVE_RETRY { return .damaged(archiveErrorString(archive)) }
        return .broken(archiveErrorString(archive))
    }

    /// Calls `visit` with every entry until it returns false or the stream ends; a header that cannot be read is
    /// fatal: it throws the chunk source's error, or `unreadable(libarchive's message)`.
    func forEachEntry(unreadable: (String) -> any Error, _ visit: (TarEntry) throws -> Bool) throws {
        while true {
            switch nextEntry() {
            case .end: return
            case .damaged(let message), .broken(let message):
                if let error = source.error { throw error }
                throw unreadable(message)
            case .entry(let entry):
                if try !visit(entry) { return }
            }
        }
    }

    /// Reads the next block of the current entry's data in place (no copy).
    func nextDataBlock() -> DataBlock {
        while true {
            var block: UnsafeRawPointer?
            var count = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(archive, &block, &count, &offset)
            if status == ARCHIVE_EOF { return .end }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { return .failed }
            if count > 0, let block { return .data(UnsafeRawBufferPointer(start: block, count: count), offset: offset) }
        }
    }

    /// The current entry's data cannot be read (libarchive's or the chunk source's message).
    struct BrokenData: Error {
        var message: String
    }

    /// Why a data block of a sparse entry at `offset` with `count` bytes cannot follow the data so far, which ended
    /// at `position`, in an entry of `size` logical bytes; nil when it can. (libarchive's tar reader takes a
    /// `GNU.sparse` map as it comes: regions out of order, overlapping or past the size are for its user to refuse.)
    static func sparseProblem(offset: Int64, count: Int, position: Int64, size: Int64) -> String? {
        if offset < position {
            return "its sparse map is out of order or overlapping (a data region at offset \(offset) after data "
                + "up to offset \(position))"
        }
        if offset > size || Int64(count) > size - offset {
            return "its sparse map has a data region (offset \(offset), \(count) bytes) past its size of "
                + "\(size) bytes"
        }
        return nil
    }

    /// Passes the current entry's data blocks to `body` in place with their offsets in the entry (ahead of the
    /// data so far after a hole of a sparse entry), checked with ``sparseProblem(offset:count:position:size:)``
    /// against `size`; returns the offset where the data ended. Throws ``BrokenData`` when the data cannot be read
    /// or its map is not sane, or `body`'s error.
    func readBlocks(size: Int64, _ body: (UnsafeRawBufferPointer, Int64) throws -> Void) throws -> Int64 {
        var position: Int64 = 0
        while true {
            switch nextDataBlock() {
            case .end:
                return position
            case .failed:
                throw BrokenData(message: errorMessage)
            case .data(let block, let offset):
                if let problem = Self.sparseProblem(offset: offset, count: block.count, position: position,
                                                    size: size)
                {
                    throw BrokenData(message: problem)
                }
                try body(block, offset)
                position = offset + Int64(block.count)
            }
        }
    }

    /// Passes the current entry's data to `body` in place, the holes of a sparse entry as zeros (a trailing hole
    /// included), `size` bytes at most; returns the bytes passed. Throws ``BrokenData`` when the data cannot be
    /// read, or `body`'s error.
    func readData(size: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        var copied: Int64 = 0
        func zeros(_ end: Int64) throws {
            while copied < end {
                let hole = Int(min(Int64(zeroBytes.count), end - copied))
                try body(UnsafeRawBufferPointer(rebasing: zeroBytes[0..<hole]))
                copied += Int64(hole)
            }
        }
        _ = try readBlocks(size: size) { block, offset in
            try zeros(offset)
            try body(block)
            copied += Int64(block.count)
        }
        // A sparse entry that ends in a hole has no data block for it.
        if currentEntryIsSparse { try zeros(size) }
        return copied
    }

    /// Skips the current entry's data; false when it cannot be read.
    func skipData() -> Bool {
        archive_read_data_skip(archive) == ARCHIVE_OK
    }

    /// Reads the current entry's whole data (at most `size` bytes) into memory; nil when it cannot be read.
    func readAll(size: Int) -> Data? {
        var data = Data(count: size)
        var filled = 0
        let ok = data.withUnsafeMutableBytes { bytes -> Bool in
            while filled < bytes.count {
                let count = archive_read_data(archive, bytes.baseAddress! + filled, bytes.count - filled)
                if count <= 0 { return false }
                filled += count
            }
            return true
        }
        return ok ? data : nil
    }

    /// Feeds libarchive's read callback from the chunks `next` returns.
    private final class ChunkSource {
        private let nextChunk: () throws -> UnsafeRawBufferPointer?
        private(set) var error: (any Error)?

        init(next: @escaping () throws -> UnsafeRawBufferPointer?) {
            self.nextChunk = next
        }

        func read(into buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
            do {
                guard let chunk = try nextChunk() else { return 0 }
                buffer.pointee = chunk.baseAddress
                return chunk.count
            } catch {
                self.error = error
                return -1
            }
        }
    }
}
