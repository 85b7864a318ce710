internal import CArchive
import Foundation

/// Where a ``TarWriter``'s bytes go: bytes accepted, or -1 after an error (which the client keeps).
protocol TarWriteClient: AnyObject {
    func write(_ buffer: UnsafeRawBufferPointer) -> Int
}

/// Writes a PAX (restricted) tar stream with libarchive: the one writer set-up of the package (the archive writer,
/// header building, uploads into containers).
///
/// Every byte goes to the client at once: unblocked, no tar-level padding to 10 KiB records. Every write failure is
/// thrown as ``Failure``, which each user words in its own terms (it knows its client's own error). Used from one
/// thread.
final class TarWriter {
    private let archive: OpaquePointer
    /// The write callback's context: a plain closure, so the hot write path needs no dynamic cast.
    private let target: Target

    private final class Target {
        let write: (UnsafeRawBufferPointer) -> Int
        init(_ write: @escaping (UnsafeRawBufferPointer) -> Int) { self.write = write }
    }

    /// A failed write call: what was being done ("writing the header of 'x'") and libarchive's message.
    struct Failure: Error {
        var doing: String
        var libarchiveMessage: String
    }

    /// Opens a writer into `client`; `what` names the stream for set-up errors ("the archive for writing").
    init(client: some TarWriteClient, what: @autoclosure () -> String) throws {
        guard let archive = archive_write_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a write handle (out of memory?)")
        }
        self.archive = archive
        self.target = Target { client.write($0) }
        try archiveCheck(archive_write_set_format_pax_restricted(archive), archive, "selecting the PAX format")
        try archiveCheck(archive_write_set_bytes_per_block(archive, 0), archive, "setting the block size")
        try archiveCheck(archive_write_set_bytes_in_last_block(archive, 1), archive, "setting the last block")
        let opened = archive_write_open(
            archive,
            Unmanaged.passUnretained(target).toOpaque(),
            nil,
            { _, clientData, buffer, length in
                guard let clientData else { return -1 }
                return Unmanaged<Target>.fromOpaque(clientData).takeUnretainedValue()
                    .write(UnsafeRawBufferPointer(start: buffer, count: length))
            },
            nil
        )
        try archiveCheck(opened, archive, "opening \(what())")
    }

    deinit {
        archive_write_free(archive)
    }

    /// Writes `entry`'s header; returns libarchive's warning, if it gave one (e.g. a name stored as raw bytes).
    @discardableResult
    func writeHeader(_ entry: TarEntry, shown: @autoclosure () -> String) throws -> String? {
        let status = withLibArchiveUTF8Locale { archive_write_header(archive, entry.pointer) }
        if status == ARCHIVE_OK { return nil }
        if status == ARCHIVE_WARN { return archiveErrorString(archive) }
        throw fail("writing the header of '\(shown())'")
    }

    /// Writes data of the current entry; more than its header announced is an error.
    func writeData(_ bytes: UnsafeRawBufferPointer, shown: @autoclosure () -> String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = archive_write_data(archive, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 { throw fail("writing the data of '\(shown())'") }
            if written == 0 { throw fail("writing the data of '\(shown())': more data than its header announced") }
            offset += written
        }
    }

    /// Starts the data of an entry with a sparse map: libarchive's PAX writer emits the `GNU.sparse` 1.0 map with
    /// the first data call, so an entry whose data regions are all empty (a file that is one hole) needs this one.
    func writeSparseMap(shown: @autoclosure () -> String) throws {
        if archive_write_data(archive, zeroBytes.baseAddress, 0) < 0 {
            throw fail("writing the sparse map of '\(shown())'")
        }
    }

    /// Ends the current entry, padding its data to the size its header announced and to 512 bytes.
    func finishEntry(shown: @autoclosure () -> String) throws {
        let status = archive_write_finish_entry(archive)
        if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw fail("finishing '\(shown())'") }
    }

    /// Writes the end-of-archive blocks.
    func finish() throws {
        if archive_write_close(archive) != ARCHIVE_OK { throw fail("ending the tar stream") }
    }

    /// Stops without finishing the entry or the stream: nothing more reaches the client, not even when the writer
    /// is freed (libarchive would otherwise pad the open entry to the size its header announced).
    func abandon() {
        archive_write_fail(archive)
    }

    private func fail(_ doing: String) -> Failure {
        Failure(doing: doing, libarchiveMessage: archiveErrorString(archive))
    }
}

extension TarWriter {
    /// The tar header bytes this writer set-up produces for a regular file `path` of `size` bytes, owned by root,
    /// modified now (what the archive writer reserves room for and later fills in).
    static func regularFileHeader(path: [UInt8], size: Int64, mode: UInt32) throws -> [UInt8] {
        let collector = CollectingSink(limit: 64 << 10)
        let shown = ArchivePath.display(path)
        let writer = try TarStreamWriter(sink: collector, what: "the header of '\(shown)'")
        defer { writer.abandon() }  // only the header is wanted, never its content or padding
        try writer.writeHeader(try TarEntry.regularFile(path: path, size: size, permissions: mode), shown: shown)
        let header = collector.bytes  // unblocked: the header is out at once
        guard header.count >= 512, header.count % 512 == 0 else {
            throw StackVaultError(.archive, "libarchive wrote a header of \(header.count) bytes")
        }
        return header
    }
}
