import Foundation

extension ArchiveWriter {
    /// Ends the archive and verifies it: ends the compressed segment of the components, waits for the read-back
    /// to reach it, builds the manifest (the `header`, then one entry per component added, in the order added,
    /// from its index entry and what was written, with its SHA-256 from the read-back after checking that the
    /// read-back's XXH3, size and entry count of it equal what was written), writes it as the last entry, ends
    /// the tar stream and the compression, syncs the file to disk and reads the manifest back.
    ///
    /// Returns the verification of the whole archive (its `manifest` is the one written); throws a
    /// `.verification` error, and removes the file, when the archive as read back is not exactly what was
    /// written.
    @discardableResult
    public func finish(_ header: Manifest.Header) async throws -> VerificationReport {
        try requireOpen()
        let manifest = Manifest(
            formatVersion: header.formatVersion, toolVersion: header.toolVersion, host: header.host,
            stack: header.stack, archiveName: header.archiveName, compression: header.compression,
            startedAt: header.startedAt, finishedAt: Date(),
            components: addedOrder.map { path in
                indexed[path]!.manifestComponent(record: records[path]!, contents: contents[path])
            },
            warnings: header.warnings + warnings)
        do {
            // 1. The components: end their segment, let the read-back reach its end.
            try output.stream.finishSegment()
            try alignForReadBack()
            let componentsEnd = fileSink.totalBytes
            let tailDecryption = encryption?.decryption(resumingAt: componentsEnd)
            growth.setEnd(componentsEnd)
            let (verification, componentsBytes) = try Self.checkReadBack(await readBack.value(), of: outputPath)

            // 2. The manifest, with the SHA-256s from the read-back.
            var sealed = manifest
            for index in sealed.components.indices {
                let component = sealed.components[index]
                let back = verification.readBack(component.archivePath)
                guard let back, back.checksum == checksums[component.archivePath],
                    back.sizeBytes == component.sizeBytes, back.entries == component.entries
                else {
                    throw StackVaultError(
                        .verification,
                        "the archive '\(outputPath)' as read back differs from what was written for "
                            + "'\(component.archivePath)': \(back?.entries ?? 0) entries and \(back?.sizeBytes ?? 0) bytes "
                            + "read back, \(component.entries) entries and \(component.sizeBytes) bytes written"
                            + (back?.entries == component.entries && back?.sizeBytes == component.sizeBytes
                                ? ", different content" : "")
                    )
                }
                sealed.components[index].sha256 = back.sha256
            }
            try writeSmallFile(name: Manifest.entryName, data: try sealed.jsonData())
            try writing { try tar.finish() }
            try output.stream.finish()
            try encryption?.finish()
            encryption = nil  // the file key is not needed any more
            try fileSink.flush()
            try syscall("fsync", path: outputPath, failing: "cannot sync '\(outputPath)' to disk") { fsync(fd) }
            // Written once, read back once: none of it stays in the page cache (the manifest is read back from disk).
            try fileSink.flushAndDropCache()
            fdClosed = true
            // Never retried: a close that failed with EINTR must not be repeated on Linux.
            if close(fd) != 0 {
                throw StackVaultError(
                    SystemCallError(call: "close", path: outputPath, errno: errno), failing: "cannot close '\(outputPath)'")
            }
            syncParentDirectory()

            // 3. Read the manifest back and judge the whole archive.
            let (path, compressor) = (outputPath, self.compressor)
            let report = try await runBlocking { _ in
                try Self.readTail(of: path, from: componentsEnd, compressor: compressor, decryption: tailDecryption,
                                  continuing: verification, componentsBytes: componentsBytes)
            }
            guard report.ok else {
                throw StackVaultError(
                    .verification,
                    "the archive '\(outputPath)' failed verification when read back: "
                        + report.problems.joined(separator: "; ")
                )
            }
            state = .finished
            return report
        } catch {
            // Nothing half-made or unverified is left behind.
            abort()
            throw error
        }
    }

    /// Reads the last segment (the manifest) of the finished archive and reports on the whole.
    static func readTail(
        of path: String,
        from offset: Int64,
        compressor: any Compressor,
        decryption: ArchiveDecryption?,
        continuing verification: Verification,
        componentsBytes: Int64
    ) throws -> VerificationReport {
        let fd = try syscall("open", path: path, failing: "cannot open '\(path)' to read it back") {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(fd) }
        let reader = try DecompressedTarReader(
            fileDescriptor: fd, from: off_t(offset), compressor: compressor, what: "archive '\(path)' as read back",
            threadName: "stackvault-readback-decompress", decryption: decryption)
        var verification = verification
        verification.read(reader)
        let tail = reader.close(drain: true)
        return verification.report(decompressed: tail.map { $0 + componentsBytes })
    }

    /// Syncs the directory entry of the new file (best effort: not every file system allows it).
    func syncParentDirectory() {
        let parent = (outputPath as NSString).deletingLastPathComponent
        let dirFD = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { return }
        _ = fsync(dirFD)
        close(dirFD)
    }
}
