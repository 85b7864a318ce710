import Foundation

extension TarWriter {
    /// What ``copy(_:from:as:hardlink:isFile:keepingHoles:shown:content:)`` copied.
    struct Copied {
        /// The data size the header announced (0 for anything but a regular file; the logical size, holes
        /// included, for a sparse file).
        var size: Int64
        /// Bytes accounted for: data and holes, up to `size` when the entry was read to its proper end; less when
        /// the input ended inside the entry.
        var copied: Int64
        /// libarchive's warning on the header, if any.
        var warning: String?
    }

    /// The one re-rooting copy: writes `entry`, just read from `reader`, renamed to `path` (and its hard-link
    /// target to `hardlink`), with its data, passing each data block and its offset in the file to `content`
    /// before it is written. Modes, owners, times, symlink targets and extended attributes are kept; anything but a
    /// regular file gets size 0.
    ///
    /// A sparse entry (`GNU.sparse` map) keeps its map when `keepingHoles` (only its data regions are written, and
    /// only those reach `content`: holes cost no reading and no hashing); otherwise it is written in full, holes as
    /// zeros, and `content` sees the zeros as data at their offsets. Data that its own map would drop (outside the
    /// map's data regions) is refused, naming the entry.
    ///
    /// When the data cannot be read, the entry is still finished (padded, so the stream stays well-formed) and
    /// ``TarReader/BrokenData`` is thrown.
    func copy(
        _ entry: TarEntry,
        from reader: TarReader,
        as path: [UInt8],
        hardlink: [UInt8]?,
        isFile: Bool,
        keepingHoles: Bool,
        shown: String,
        content: (UnsafeRawBufferPointer, Int64) throws -> Void
    ) throws -> Copied {
        if let hardlink { entry.setHardlink(hardlink) }
        entry.setPath(path)
        let sparse = keepingHoles && isFile && reader.currentEntryIsSparse
        let regions = sparse ? entry.sparseRegions : []
        if !sparse { entry.clearSparse() }
        let size: Int64 = isFile ? entry.size : 0
        entry.setSize(size)
        let warning = try writeHeader(entry, shown: shown)
        let copied: Int64
        do {
            if sparse {
                try writeSparseMap(shown: shown)
                var region = 0
                var position: Int64 = 0
                _ = try reader.readBlocks(size: size) { block, offset in
                    let end = offset + Int64(block.count)
                    while region < regions.count && regions[region].offset + regions[region].length < end {
                        region += 1
                    }
                    guard region < regions.count, regions[region].offset <= offset || block.isEmpty else {
                        throw TarReader.BrokenData(message: "its sparse map does not cover its data at offset "
                                                   + "\(offset) (\(block.count) bytes)")
                    }
                    // The zeros of the hole before this block: libarchive's writer skips them without reading.
                    while position < offset {
                        let hole = Int(min(Int64(zeroBytes.count), offset - position))
                        try writeData(UnsafeRawBufferPointer(rebasing: zeroBytes[0..<hole]), shown: shown)
                        position += Int64(hole)
                    }
                    try content(block, offset)
                    try writeData(block, shown: shown)
                    position = end
                }
                copied = size  // read to its end: a trailing hole has no data block
            } else {
                var position: Int64 = 0
                copied = try reader.readData(size: size) { chunk in
                    try content(chunk, position)
                    try writeData(chunk, shown: shown)
                    position += Int64(chunk.count)
                }
            }
        } catch let broken as TarReader.BrokenData {
            try finishEntry(shown: shown)
            throw broken
        }
        try finishEntry(shown: shown)
        return Copied(size: size, copied: copied, warning: warning)
    }
}
