import Foundation

extension TarWriter {
    /// What ``copy(_:from:as:hardlink:isFile:shown:content:)`` copied.
    struct Copied {
        /// The data size the header announced (0 for anything but a regular file).
        var size: Int64
        /// Data bytes copied; less than `size` when the input ended inside the entry.
        var copied: Int64
        /// libarchive's warning on the header, if any.
        var warning: String?
    }

    /// The one re-rooting copy: writes `entry`, just read from `reader`, renamed to `path` (and its hard-link
    /// target to `hardlink`), with its data, passing each data chunk to `content` before it is written. Modes,
    /// owners, times, symlink targets and extended attributes are kept; a sparse entry is copied in full (holes as
    /// zeros), and anything but a regular file gets size 0.
    ///
    /// When the data cannot be read, the entry is still finished (padded, so the stream stays well-formed) and
    /// ``TarReader/BrokenData`` is thrown.
    func copy(
        _ entry: TarEntry,
        from reader: TarReader,
        as path: [UInt8],
        hardlink: [UInt8]?,
        isFile: Bool,
        shown: String,
        content: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Copied {
        if let hardlink { entry.setHardlink(hardlink) }
        entry.setPath(path)
        entry.clearSparse()
        let size: Int64 = isFile ? entry.size : 0
        entry.setSize(size)
        let warning = try writeHeader(entry, shown: shown)
        let copied: Int64
        do {
            copied = try reader.readData(size: size) { chunk in
                try content(chunk)
                try writeData(chunk, shown: shown)
            }
        } catch let broken as TarReader.BrokenData {
            try finishEntry(shown: shown)
            throw broken
        }
        try finishEntry(shown: shown)
        return Copied(size: size, copied: copied, warning: warning)
    }
}
