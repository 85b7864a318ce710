internal import CArchive
import Foundation

/// Reads the tar entries of a local, compressed archive in order, with bounded memory.
///
/// The file is read with `pread` from offset 0 (so several readers may share one descriptor) and decompressed on
/// a helper thread into a pipe that libarchive reads, as ``ArchiveVerifier`` does. Blocking: use it from a thread
/// of your own. A visitor may stop early; the helper thread is then told to stop and joined.
final class ArchiveEntryReader {
    /// What the visitor wants next.
    enum Next {
        /// Go on with the next entry (unread data of this one is skipped).
        case next
        /// Stop reading: the rest of the archive is not needed.
        case stop
    }

    private let fileDescriptor: Int32
    private let compressor: any Compressor
    private let what: String

    init(fileDescriptor: Int32, compressor: any Compressor, what: String) {
        self.fileDescriptor = fileDescriptor
        self.compressor = compressor
        self.what = what
    }

    /// Calls `visit` with every entry (libarchive handle, entry, path bytes) until it returns `.stop` or the
    /// archive ends. Throws when the archive cannot be read, or with the visitor's error.
    func forEachEntry(
        _ visit: (_ archive: OpaquePointer, _ entry: OpaquePointer, _ path: [UInt8]) throws -> Next
    ) throws {
        _ = ignoreSIGPIPEOnce
        let pipe = try ArchivePipe()
        let reader = try ArchiveReadHandle()
        let completion = ArchiveThreadCompletion<Void>()
        let fd = fileDescriptor
        let compressor = self.compressor
        let what = self.what
        let thread = Thread {
            completion.complete(Result { _ = try decompressArchive(fd, from: 0, compressor, into: pipe, what: what) })
        }
        thread.name = "stackvault-restore-decompress"
        thread.start()

        var stoppedEarly = false
        let visited: Result<Void, any Error> = Result {
            let archive = reader.pointer
            try archiveCheck(archive_read_open_fd(archive, pipe.readEnd, 1 << 20), archive, "reading \(what)")
            while true {
                var entryPointer: OpaquePointer?
                let status = withLibArchiveUTF8Locale { archive_read_next_header(archive, &entryPointer) }
                if status == ARCHIVE_EOF { return }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry = entryPointer else {
                    throw StackVaultError(.archive, "\(what) is unreadable: \(archiveErrorString(archive))")
                }
                guard
                    let path = ArchivePath.bytes(archive_entry_pathname(entry))
                        ?? ArchivePath.bytes(archive_entry_pathname_utf8(entry))
                else {
                    throw StackVaultError(.archive, "\(what) has an entry without a name")
                }
                if try visit(archive, entry, path) == .stop {
                    stoppedEarly = true
                    return
                }
            }
        }
        let abandoned = stoppedEarly || (try? visited.get()) == nil
        if abandoned {
            // Ask the decompressor to stop; closing the pipe unblocks it if it is writing.
            pipe.cancel()
        } else {
            // libarchive stops at the end-of-archive blocks: drain the rest so the decompressor reaches the end
            // of the file and checks it whole.
            let drain = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { drain.deallocate() }
            while (try? archiveRead(pipe.readEnd, drain, what: what)) ?? 0 > 0 {}
        }
        pipe.closeReadEnd()
        let decompressed = completion.wait()
        try visited.get()
        if !abandoned { try decompressed.get() }
    }

}

/// Copies the data of the current entry into `sink` through `buffer`; returns the bytes copied.
func copyEntryData(
    _ archive: OpaquePointer,
    _ buffer: UnsafeMutableRawBufferPointer,
    shown: String,
    into sink: (UnsafeRawBufferPointer) throws -> Void
) throws -> Int64 {
    var copied: Int64 = 0
    while true {
        let count = archive_read_data(archive, buffer.baseAddress, buffer.count)
        if count < 0 {
            throw StackVaultError(.archive, "the data of '\(shown)' is unreadable: \(archiveErrorString(archive))")
        }
        if count == 0 { return copied }
        try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        copied += Int64(count)
    }
}
