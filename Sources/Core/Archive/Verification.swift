import Foundation

/// The running state of one verification: fed by one libarchive session over the whole archive, or (when the
/// writer reads its archive back while writing) by one session over the components and one over the manifest.
struct Verification {
    /// Recomputed facts of one component.
    struct Actual {
        var kind: ComponentRecord.Kind
        var parts: [[UInt8]]
        var tree = TreeDigest()
        var file = SHA256()
        /// Only when `checksums` is on: XXH3 as the writer computes it on the way in.
        var treeChecksum: TreeChecksum?
        var fileChecksum: XXH3?
        /// The last `tailBytes` bytes of a `.file` component.
        var tail: [UInt8] = []
        var entries = 0
        var sizeBytes: Int64 = 0
    }

    static let maxJSONSize = 64 << 20

    /// What one component read back to, for the writer to compare with what it wrote.
    struct ReadBack {
        var sha256: String
        /// XXH3 (``TreeChecksum`` for trees), when `checksums` is on.
        var checksum: UInt64?
        var sizeBytes: Int64
        var entries: Int
    }

    /// Also compute each component's XXH3 (the writer's in-path checksum).
    let checksums: Bool
    /// Keep this many last bytes of each `.file` component (0: none).
    let tailBytes: Int
    var index: ArchiveIndex?
    var manifest: Manifest?
    var manifestSeen = false
    var problems: [String] = []
    var notes: [String] = []
    var entries = 0
    var actuals: [String: Actual] = [:]
    /// Index roots, longest first.
    var roots: [(path: String, parts: [[UInt8]])] = []

    init(checksums: Bool = false, tailBytes: Int = 0) {
        self.checksums = checksums
        self.tailBytes = tailBytes
    }

    /// Opens `reader` and reads every entry to its end; a stream libarchive cannot open is a problem.
    mutating func read(_ reader: DecompressedTarReader) {
        do {
            try reader.open()
        } catch {
            problems.append("the archive is not a readable tar stream: \(error)")
            return
        }
        readArchive(reader.tar)
    }

    /// Reads every entry of the opened `archive` to its end.
    mutating func readArchive(_ archive: TarReader) {
        while true {
            switch archive.nextEntry() {
            case .end:
                return
            case .damaged(let message):
                problems.append("the tar stream is damaged after \(entries) entries: \(message)")
                continue
            case .broken(let message):
                problems.append("the tar stream is damaged after \(entries) entries: \(message)")
                return
            case .entry(let entry):
                entries += 1
                if !readEntry(entry, archive) { return }
            }
        }
    }

    /// Handles one entry; false when the stream cannot be read further.
    mutating func readEntry(_ entry: TarEntry, _ archive: TarReader) -> Bool {
        guard let path = entry.path else {
            problems.append("entry \(entries) has no name")
            return true
        }
        let shown = ArchivePath.display(path)
        if let problem = ArchivePath.problem(path) {
            problems.append("the entry '\(shown)' \(problem): unsafe to extract")
            return true
        }
        let parts = ArchivePath.components(path)
        let isRegular = entry.isRegularFile

        if entries == 1 {
            guard parts == [Array(ArchiveIndex.entryName.utf8)], isRegular else {
                problems.append(
                    "the archive does not start with its index (\(ArchiveIndex.entryName)) but with '\(shown)'"
                )
                return readComponentEntry(entry, archive, parts: parts, shown: shown)
            }
            guard let data = readSmallFile(archive, entry, name: ArchiveIndex.entryName) else { return false }
            readIndex(data)
            return true
        }
        if parts == [Array(Manifest.entryName.utf8)] && isRegular {
            if manifestSeen { problems.append("the archive holds a second manifest") }
            manifestSeen = true
            guard let data = readSmallFile(archive, entry, name: Manifest.entryName) else { return false }
            readManifest(data)
            return true
        }
        if manifestSeen {
            problems.append("the entry '\(shown)' comes after the manifest, which must be last")
        }
        return readComponentEntry(entry, archive, parts: parts, shown: shown)
    }

    mutating func readComponentEntry(
        _ entry: TarEntry,
        _ archive: TarReader,
        parts: [[UInt8]],
        shown: String
    ) -> Bool {
        guard let root = roots.first(where: { ArchivePath.relative(parts, below: $0.parts) != nil }),
            var actual = actuals[root.path]
        else {
            if index != nil {
                problems.append("the entry '\(shown)' belongs to no component listed in the index")
            }
            return skipData(archive, shown: shown)
        }
        let relative = ArchivePath.relative(parts, below: root.parts)!

        let type: TreeDigest.EntryType
        var linkTarget: [UInt8] = []
        if let hardlink = entry.hardlink {
            type = .hardlink
            if let problem = ArchivePath.problem(hardlink) {
                problems.append(
                    "the hard link '\(shown)' points to '\(ArchivePath.display(hardlink))', which \(problem)"
                )
            }
            if let target = ArchivePath.relative(ArchivePath.components(hardlink), below: root.parts) {
                linkTarget = target
            } else {
                problems.append(
                    "the hard link '\(shown)' points outside its component to '\(ArchivePath.display(hardlink))'"
                )
                linkTarget = hardlink
            }
        } else if let mapped = TreeDigest.EntryType(fileType: entry.fileType) {
            type = mapped
            if type == .symlink { linkTarget = entry.symlink ?? [] }
        } else {
            problems.append("the entry '\(shown)' has an unsupported type")
            return skipData(archive, shown: shown)
        }
        let size: Int64 = type == .file ? entry.size : 0
        let sparse = type == .file && archive.currentEntryIsSparse

        switch actual.kind {
        case .file:
            if !relative.isEmpty || type != .file {
                problems.append("the entry '\(shown)' does not fit the file component '\(root.path)'")
            }
            if actual.entries > 0 {
                problems.append("the file component '\(root.path)' appears more than once")
            }
            if sparse {
                // Only tree components hold sparse entries; a file component is always written whole.
                problems.append("'\(shown)' is stored sparse, which stackvault never writes in a file component")
                actuals[root.path] = actual
                return skipData(archive, shown: shown)
            }
        case .tree:
            let mode = entry.permissions
            let (uid, gid) = (entry.uid, entry.gid)
            actual.tree.addEntry(relativePath: relative, type: type, mode: mode, uid: uid, gid: gid, size: size,
                                 linkTarget: linkTarget, sparse: sparse)
            actual.treeChecksum?.addEntry(relativePath: relative, type: type, mode: mode, uid: uid, gid: gid,
                                          size: size, linkTarget: linkTarget, sparse: sparse)
        }
        actual.entries += 1

        // Data is hashed in place in libarchive's buffers (the decompressor's chunks): no copy.
        var read: Int64 = 0
        var intact = true
        reading: while true {
            switch archive.nextDataBlock() {
            case .end:
                break reading
            case .failed:
                problems.append("the data of '\(shown)' is unreadable: \(archive.libarchiveMessage)")
                intact = false
                break reading
            case .data(let chunk, let offset):
                if let problem = TarReader.sparseProblem(offset: offset, count: chunk.count, position: read,
                                                         size: entry.size)
                {
                    problems.append("'\(shown)': \(problem)")
                    intact = false
                    break reading
                }
                if !sparse && offset != read {
                    problems.append("the data of '\(shown)' is out of order (offset \(offset) after \(read) bytes)")
                    intact = false
                    break reading
                }
                if type == .file {
                    switch actual.kind {
                    case .file:
                        actual.file.update(chunk)
                        actual.fileChecksum?.update(chunk)
                        if tailBytes > 0 {
                            actual.tail.append(contentsOf: chunk.suffix(tailBytes))
                            if actual.tail.count > tailBytes { actual.tail.removeFirst(actual.tail.count - tailBytes) }
                        }
                    case .tree:
                        actual.tree.addContent(chunk, at: offset)
                        actual.treeChecksum?.addContent(chunk, at: offset)
                    }
                    actual.sizeBytes += Int64(chunk.count)
                }
                read = offset + Int64(chunk.count)
            }
        }
        // A sparse entry may end in a hole, which has no data block.
        if intact && type == .file && !sparse && read != size {
            problems.append("'\(shown)' holds \(read) bytes, its header says \(size)")
        }
        actuals[root.path] = actual
        return intact
    }

    mutating func skipData(_ archive: TarReader, shown: String) -> Bool {
        if !archive.skipData() {
            problems.append("the data of '\(shown)' is unreadable: \(archive.libarchiveMessage)")
            return false
        }
        return true
    }

    /// The whole content of a small JSON entry, or nil (with a problem) when it cannot be read.
    mutating func readSmallFile(_ archive: TarReader, _ entry: TarEntry, name: String) -> Data? {
        let size = entry.size
        guard size >= 0, size <= Self.maxJSONSize else {
            problems.append("\(name) is implausibly large (\(size) bytes)")
            _ = skipData(archive, shown: name)
            return nil
        }
        guard let data = archive.readAll(size: Int(size)) else {
            problems.append("\(name) is unreadable: \(archive.libarchiveMessage)")
            return nil
        }
        return data
    }
}
