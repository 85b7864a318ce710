import Foundation

extension ArchiveWriter {
    /// Adds the tar stream `produce` writes, its top entry renamed to `root`; see ``ArchiveSink/addTar(at:produce:)``.
    ///
    /// The stream is handed to a helper thread through a ``ByteChunkQueue`` and copied entry by entry: the first path component
    /// of every entry (and of every hard-link target) becomes `root`; symlink targets, modes, owners, times,
    /// extended attributes and sparse maps are kept (a sparse file costs its data regions, not its size). Entries
    /// with absolute paths or `..` components, or outside the first entry's top-level directory, and sparse maps
    /// that are out of order, overlapping or past their file's size are refused with an error naming the entry.
    public func addTar(at root: String, produce: (any ByteSink) async throws -> Void) async throws -> ComponentRecord {
        try requireAddable(root, kind: .tree)
        let queue = ByteChunkQueue(what: "the tar stream for '\(root)'")
        let completion = ArchiveThreadCompletion<(ComponentRecord, UInt64)>()
        let thread = Thread {
            completion.complete(Result { try self.copyTar(from: queue, root: root) })
        }
        thread.name = "stackvault-tar-reader"
        thread.start()

        var produceError: (any Error)?
        // Cancellation stops the reader thread at its next chunk; its closed queue then stops the producer,
        // which may be blocked waiting for a free buffer where it cannot see the cancellation itself.
        let result = await withTaskCancellationHandler {
            do {
                try await produce(queue)
            } catch {
                produceError = error
            }
            queue.closeWriting()
            return await completion.value()
        } onCancel: {
            queue.cancel()
        }

        if let produceError {
            // If the reader gave up first, its error is the cause and the stopped queue only the consequence.
            if queue.readerGone, case .failure(let readerError) = result { throw readerError }
            throw produceError
        }
        let (record, checksum) = try result.get()
        records[root] = record
        addedOrder.append(root)
        checksums[root] = checksum
        return record
    }

    /// Runs on the reader thread: copies every entry of the tar stream in `queue` below `root`.
    func copyTar(from queue: ByteChunkQueue, root: String) throws -> (ComponentRecord, UInt64) {
        defer { queue.closeReading() }
        let reader = try TarReader(next: queue.next)
        try reader.open("reading the tar stream for '\(root)'")

        let rootParts = ArchivePath.components(Array(root.utf8))
        var top: [UInt8]?
        var digest = TreeChecksum()
        let progress = self.progress
        try queue.checkCancellation("reading the tar stream for '\(root)'")
        try reader.forEachEntry(unreadable: {
            StackVaultError(.archive, "the tar stream for '\(root)' is unreadable: \($0)")
        }) { entry in
            guard let path = entry.path else {
                throw StackVaultError(.archive, "the tar stream for '\(root)' has an entry without a name")
            }
            let shown = ArchivePath.display(path)
            if let problem = ArchivePath.problem(path) {
                throw StackVaultError(
                    .archive,
                    "refusing the tar stream for '\(root)': its entry '\(shown)' \(problem)"
                )
            }
            let parts = ArchivePath.components(path)
            if top == nil { top = parts[0] }
            guard parts[0] == top else {
                throw StackVaultError(
                    .archive,
                    "refusing the tar stream for '\(root)': its entry '\(shown)' is outside its top-level entry "
                        + "'\(ArchivePath.display(top ?? []))'"
                )
            }
            let relative = ArchivePath.join(parts.dropFirst())

            let type: TreeDigest.EntryType
            var linkTarget: [UInt8] = []
            var hardlinkCopy: [UInt8]?
            if let hardlink = entry.hardlink {
                let shownTarget = ArchivePath.display(hardlink)
                if let problem = ArchivePath.problem(hardlink) {
                    throw StackVaultError(
                        .archive,
                        "refusing the tar stream for '\(root)': the hard link '\(shown)' points to '\(shownTarget)', "
                            + "which \(problem)"
                    )
                }
                let targetParts = ArchivePath.components(hardlink)
                guard targetParts[0] == top else {
                    throw StackVaultError(
                        .archive,
                        "refusing the tar stream for '\(root)': the hard link '\(shown)' points outside the tree "
                            + "to '\(shownTarget)'"
                    )
                }
                linkTarget = ArchivePath.join(targetParts.dropFirst())
                hardlinkCopy = ArchivePath.join(rootParts + targetParts.dropFirst())
                type = .hardlink
            } else {
                guard let mapped = TreeDigest.EntryType(fileType: entry.fileType) else {
                    throw StackVaultError(
                        .archive,
                        "refusing the tar stream for '\(root)': the entry '\(shown)' has an unsupported type "
                            + "(mode \(String(entry.mode, radix: 8)))"
                    )
                }
                type = mapped
                if type == .symlink { linkTarget = entry.symlink ?? [] }
            }
            let size: Int64 = type == .file ? entry.size : 0
            // A sparse file keeps its map: only its data regions are copied and hashed (see `TreeDigest`).
            let sparse = type == .file && reader.currentEntryIsSparse
            digest.addEntry(
                relativePath: relative, type: type, mode: entry.permissions, uid: entry.uid, gid: entry.gid,
                size: size, linkTarget: linkTarget, sparse: sparse)
            let entryName = relative.isEmpty ? root : "\(root)/\(ArchivePath.display(relative))"

            // Entry data is read in place from libarchive's buffers (the queue's chunks, mostly): no copy.
            let copied: TarWriter.Copied
            do {
                copied = try writing {
                    try tar.copy(
                        entry, from: reader, as: ArchivePath.join(rootParts + parts.dropFirst()),
                        hardlink: hardlinkCopy, isFile: type == .file, keepingHoles: true, shown: entryName
                    ) { chunk, offset in
                        try queue.checkCancellation("reading the tar stream for '\(root)'")
                        digest.addContent(chunk, at: offset)
                        progress?.add(Int64(chunk.count))
                    }
                }
            } catch let broken as TarReader.BrokenData {
                throw StackVaultError(
                    .archive,
                    "the tar stream for '\(root)' broke off in the entry '\(shown)': \(broken.message)"
                )
            }
            if let warning = copied.warning { warnings.append("\(entryName): \(warning)") }
            guard copied.copied == size else {
                throw StackVaultError(
                    .archive,
                    "the tar stream for '\(root)' ended inside the entry '\(shown)' (\(copied.copied) of \(size) bytes)"
                )
            }
            try queue.checkCancellation("reading the tar stream for '\(root)'")
            return true
        }
        // libarchive stops at the end-of-archive blocks; drain the rest (record padding) so the producer
        // never sees a stopped reader after a good stream.
        while try queue.next() != nil {}
        guard digest.entries > 0 else {
            throw StackVaultError(.archive, "the tar stream for '\(root)' contains no entries")
        }
        // The SHA-256 comes from the read-back (see `finish(_:)`).
        let record = ComponentRecord(
            archivePath: root, kind: .tree, sizeBytes: digest.contentBytes, entries: digest.entries, sha256: "")
        return (record, digest.finalize())
    }
}
