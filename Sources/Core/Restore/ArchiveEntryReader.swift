import Foundation

/// Reads the tar entries of a local, compressed archive in order, with bounded memory.
///
/// The file is read with `pread` from offset 0 (so several readers may share one descriptor) and decompressed on
/// a helper thread for libarchive (``DecompressedTarReader``), as ``ArchiveVerifier`` does. Blocking: use it from a thread
/// of your own. A visitor may stop early; the helper thread is then told to stop and joined. It leaves the file in the
/// page cache, since passes follow one another (``LocalArchive`` drops it when released).
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
    private let decryption: ArchiveDecryption?

    init(fileDescriptor: Int32, compressor: any Compressor, what: String, decryption: ArchiveDecryption? = nil) {
        self.fileDescriptor = fileDescriptor
        self.compressor = compressor
        self.what = what
        self.decryption = decryption
    }

    /// Calls `visit` with every entry (the reader, for its data; the entry; its path bytes) until it returns
    /// `.stop` or the archive ends. Throws when the archive cannot be read, or with the visitor's error.
    func forEachEntry(
        _ visit: (_ reader: TarReader, _ entry: TarEntry, _ path: [UInt8]) throws -> Next
    ) throws {
        let reader = try DecompressedTarReader(
            fileDescriptor: fileDescriptor, from: 0, compressor: compressor, what: what,
            threadName: "stackvault-restore-decompress", decryption: decryption, dropsPageCache: false)
        var stoppedEarly = false
        let visited: Result<Void, any Error> = Result {
            try reader.open()
            let tar = reader.tar
            try tar.forEachEntry(unreadable: { StackVaultError(.archive, "\(what) is unreadable: \($0)") }) { entry in
                guard let path = entry.path else {
                    throw StackVaultError(.archive, "\(what) has an entry without a name")
                }
                if try visit(tar, entry, path) == .stop {
                    stoppedEarly = true
                    return false
                }
                return true
            }
        }
        // After the end of the tar stream, drain the rest so the decompressor reaches the end of the file and
        // checks it whole; when abandoned, tell it to stop.
        let abandoned = stoppedEarly || (try? visited.get()) == nil
        let decompressed = reader.close(drain: !abandoned)
        try visited.get()
        if !abandoned { _ = try decompressed.get() }
    }
}

/// Copies the data of the current entry into `sink`; returns the bytes copied.
func copyEntryData(
    _ reader: TarReader,
    _ entry: TarEntry,
    shown: String,
    into sink: (UnsafeRawBufferPointer) throws -> Void
) throws -> Int64 {
    do {
        return try reader.readData(size: entry.size, sink)
    } catch let broken as TarReader.BrokenData {
        throw StackVaultError(.archive, "the data of '\(shown)' is unreadable: \(broken.message)")
    }
}
