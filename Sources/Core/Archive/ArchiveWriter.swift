internal import CArchive
import Foundation

/// Writes one backup archive: a PAX tar stream, compressed, into a new file.
///
/// The archive holds, in this order: the index (`stackvault-index.json`, see ``ArchiveIndex``), the components
/// (each either one file added with ``addFile(at:mode:produce:)`` or a tree added with
/// ``addTar(at:produce:)``), and the manifest (`stackvault.json`, see ``Manifest``) written by
/// ``finish(manifest:)``. The output is a standard `.tar.zst` that `tar --zstd -xpf` extracts.
///
/// Memory stays bounded whatever the size of the data: a file's content streams compressed straight into the
/// archive behind room reserved for its header (filled in once the size is known), tar streams are copied entry
/// by entry in place. No temporary file is made: the only disk used is the archive's.
///
/// The archive is read back while it is written (``DecompressedTarReader`` following the file), so that verifying
/// it costs little time after the last byte: ``finish(manifest:)`` waits for the read-back to reach the end of
/// the components, writes the manifest and returns the full verification. Components are checksummed on the way
/// in with XXH3 only (``TreeChecksum`` for trees); their SHA-256 is computed by the read-back, off the path that
/// containers and dumps wait for, and the two reads are tied together by comparing their XXH3.
/// The read-back runs at the lowest CPU priority: while containers are stopped it takes only CPU time their copy
/// leaves idle, and it yields to the host's own work.
///
/// Not thread-safe: it must be used by one task at a time (as ``ArchiveSink`` requires); it is
/// `@unchecked Sendable` so that this one task may move between threads, and so that its own helper threads
/// can work on it while the caller awaits them.
///
/// Errors from the *input* side (a `produce` closure that throws, a malformed or malicious tar stream) leave the
/// writer usable; a tar stream that fails half-way may leave that component's first entries in the archive (the
/// archive stays well-formed; the manifest must not list the component). Errors from the *output* side (disk
/// full, compressor failure) make the writer unusable: call ``abort()``.
public final class ArchiveWriter: ArchiveSink, @unchecked Sendable {
    /// The archive file being written.
    public let outputPath: String
    /// Called with the number of uncompressed (tar) bytes written so far, at most every 4 MiB and once at the end.
    public var onProgress: (@Sendable (_ uncompressedBytes: Int64) -> Void)? {
        didSet { output.onProgress = onProgress }
    }
    /// Compressed bytes produced so far (the size of the archive file once finished).
    public var compressedBytesWritten: Int64 { fileSink.totalBytes }
    /// Uncompressed tar bytes written so far.
    public var uncompressedBytesWritten: Int64 { output.uncompressedBytes }
    /// Non-fatal remarks from libarchive, such as names that are not valid UTF-8 and were stored as raw bytes.
    public private(set) var warnings: [String] = []

    private enum State {
        case awaitingIndex
        case open
        case failed(String)
        case finished
        case aborted
    }

    private var state = State.awaitingIndex
    private let fd: Int32
    private var fdClosed = false
    private let fileSink: ArchiveFileSink
    private let output: ArchiveOutput
    private let handle: ArchiveWriteHandle
    /// Zeros: sparse holes, tar padding, the room reserved for a file header.
    private let zeros: UnsafeMutableRawBufferPointer
    private var indexKinds: [String: ComponentRecord.Kind] = [:]
    private var records: [String: ComponentRecord] = [:]
    /// In-path XXH3 of each component (``TreeChecksum`` for trees, of the content for files), compared with the
    /// read-back's.
    private var checksums: [String: UInt64] = [:]
    private let compressor: any Compressor
    /// The age stage between the compressor and the file, when the archive is encrypted. Holds the file key for
    /// the read-back; dropped once the archive is finished.
    private var encryption: AgeArchiveOutput?
    /// Where compressed bytes go: the age stage or the file.
    private let payload: any ByteSink
    /// What the read-back may read of the file so far.
    private let growth = ArchiveGrowth()
    /// The read-back of everything before the manifest, running on its own threads.
    private let readBack = ArchiveThreadCompletion<ReadBackPart>()

    /// What the read-back found in the archive up to the end of the components.
    struct ReadBackPart: Sendable {
        var verification: Verification
        var decompressed: Result<Int64, any Error>
    }

    static let zerosSize = 64 << 10

    /// Creates `outputPath` (it must not exist; mode 0600) and prepares to write into it; `compressor` compresses
    /// the whole archive. With `recipients`, the compressed stream is encrypted to them as one age file
    /// (``AgeArchiveOutput``), and the read-back decrypts it with the file key, which the writer holds until it
    /// is finished.
    public init(outputPath: String, compressor: any Compressor, recipients: [any AgeRecipient] = []) throws {
        let fd = open(outputPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw StackVaultError(
                .io,
                "cannot create the archive file '\(outputPath)': \(String(cString: strerror(code)))"
                    + (code == EEXIST ? " (a file of that name exists already; it is never overwritten)" : "")
            )
        }

        let readFD = open(outputPath, O_RDONLY | O_CLOEXEC)
        guard readFD >= 0 else {
            let code = errno
            close(fd)
            unlink(outputPath)
            throw StackVaultError(
                .io, "cannot open the new archive file '\(outputPath)' to read it back: \(String(cString: strerror(code)))"
            )
        }
        let fileSink = ArchiveFileSink(fd: fd, what: "the archive file '\(outputPath)'", growth: growth)
        let output: ArchiveOutput
        let handle: ArchiveWriteHandle
        let encryption: AgeArchiveOutput?
        do {
            encryption = recipients.isEmpty ? nil : try AgeArchiveOutput(recipients: recipients, file: fileSink)
            output = ArchiveOutput(stream: try compressor.makeCompressor(writingTo: encryption ?? fileSink))
            handle = try ArchiveWriteHandle.openPAX(client: output, what: "the archive for writing")
        } catch {
            close(fd)
            close(readFD)
            unlink(outputPath)
            throw error
        }

        self.compressor = compressor
        self.encryption = encryption
        self.payload = encryption ?? fileSink
        Self.startReadBack(of: outputPath, fileDescriptor: readFD, growth: growth, compressor: compressor,
                           decryption: encryption.map { .fileKey($0.fileKey) }, into: readBack)
        self.outputPath = outputPath
        self.fd = fd
        self.fileSink = fileSink
        self.output = output
        self.handle = handle
        self.zeros = .allocate(byteCount: Self.zerosSize, alignment: 16)
        self.zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        abort()
        zeros.deallocate()
    }

    // MARK: - Index and manifest

    /// Writes the index as the first entry. Must be called once, before any component is added; afterwards
    /// only the components it lists can be added, each with the kind it declares.
    public func writeIndex(_ index: ArchiveIndex) throws {
        guard case .awaitingIndex = state else {
            throw StackVaultError(.archive, "the archive index must be written once, before any component")
        }
        var kinds: [String: ComponentRecord.Kind] = [:]
        var roots: [[[UInt8]]] = []
        for component in index.components {
            let path = component.archivePath
            try Self.validateComponentPath(path)
            guard kinds[path] == nil else {
                throw StackVaultError(.archive, "the archive index lists the component path '\(path)' twice")
            }
            let parts = ArchivePath.components(Array(path.utf8))
            if let other = roots.first(where: { $0.starts(with: parts) || parts.starts(with: $0) }) {
                throw StackVaultError(
                    .archive,
                    "the component paths '\(path)' and '\(String(decoding: ArchivePath.join(other), as: UTF8.self))' "
                        + "are nested; every component needs its own root"
                )
            }
            kinds[path] = component.kind
            roots.append(parts)
        }
        try writeSmallFile(name: ArchiveIndex.entryName, data: try index.jsonData())
        indexKinds = kinds
        state = .open
    }

    /// Ends the archive and verifies it: ends the compressed segment of the components, waits for the read-back
    /// to reach it, fills each component's SHA-256 into the manifest from the read-back (after checking that the
    /// read-back's XXH3 of the component equals what was written), writes the manifest as the last entry, ends the tar
    /// stream and the compression, syncs the file to disk and reads the manifest back.
    ///
    /// Every component the manifest lists must have been added to this archive, with the record it returned (its
    /// `sha256` is empty: it is known only here). Returns the verification of the whole archive;
    /// throws a `.verification` error, and removes the file, when the archive as read back is not exactly what
    /// was written.
    @discardableResult
    public func finish(manifest: Manifest) async throws -> VerificationReport {
        try requireOpen()
        for component in manifest.components {
            guard let record = records[component.archivePath] else {
                throw StackVaultError(
                    .archive,
                    "the manifest lists the component '\(component.archivePath)' that was not added to this archive"
                )
            }
            guard record == component.record else {
                throw StackVaultError(
                    .archive,
                    "the manifest's record of '\(component.archivePath)' differs from what was written (\(record))"
                )
            }
        }
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
            let closed = archive_write_close(handle.pointer)
            if closed != ARCHIVE_OK { throw outputFailure("ending the tar stream") }
            try output.stream.finish()
            try encryption?.finish()
            encryption = nil  // the file key is not needed any more
            try fileSink.flush()
            if fsync(fd) != 0 {
                throw StackVaultError(.io, "cannot sync '\(outputPath)' to disk: \(String(cString: strerror(errno)))")
            }
            fdClosed = true
            if close(fd) != 0 {
                throw StackVaultError(.io, "cannot close '\(outputPath)': \(String(cString: strerror(errno)))")
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
            output.reportProgress(force: true)
            return report
        } catch {
            // Nothing half-made or unverified is left behind.
            abort()
            throw error
        }
    }

    /// Starts reading the archive back as it grows, on helper threads, until the end the writer sets.
    private static func startReadBack(
        of path: String,
        fileDescriptor: Int32,
        growth: ArchiveGrowth,
        compressor: any Compressor,
        decryption: ArchiveDecryption?,
        into completion: ArchiveThreadCompletion<ReadBackPart>
    ) {
        let thread = Thread {
            lowerThreadPriority()
            defer { close(fileDescriptor) }
            completion.complete(Result {
                let reader = try DecompressedTarReader(
                    fileDescriptor: fileDescriptor, from: 0, growth: growth, compressor: compressor,
                    what: "archive '\(path)' as read back", threadName: "stackvault-readback-decompress",
                    lowPriority: true, decryption: decryption)
                var verification = Verification(checksums: true)
                verification.read(reader)  // ends at the end of the components
                return ReadBackPart(verification: verification, decompressed: reader.close(drain: true))
            })
        }
        thread.name = "stackvault-readback"
        thread.start()
    }

    /// The read-back's verification so far, or a `.verification` error when it could not read the components.
    private static func checkReadBack(
        _ result: Result<ReadBackPart, any Error>,
        of path: String
    ) throws -> (Verification, Int64) {
        let part: ReadBackPart
        do {
            part = try result.get()
        } catch {
            throw StackVaultError(.verification, "the archive '\(path)' could not be read back: \(error)")
        }
        let bytes: Int64
        switch part.decompressed {
        case .success(let count): bytes = count
        case .failure(let error):
            throw StackVaultError(.verification, "the archive '\(path)' as read back is damaged: \(error)")
        }
        if !part.verification.problems.isEmpty {
            throw StackVaultError(
                .verification,
                "the archive '\(path)' as read back is damaged: " + part.verification.problems.joined(separator: "; ")
            )
        }
        return (part.verification, bytes)
    }

    /// Reads the last segment (the manifest) of the finished archive and reports on the whole.
    private static func readTail(
        of path: String,
        from offset: Int64,
        compressor: any Compressor,
        decryption: ArchiveDecryption?,
        continuing verification: Verification,
        componentsBytes: Int64
    ) throws -> VerificationReport {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw StackVaultError(.io, "cannot open '\(path)' to read it back: \(String(cString: strerror(errno)))")
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

    /// Makes everything written so far readable in the file: flushes it and, encrypted, pads the compressed stream
    /// to an age chunk boundary with a skippable segment and seals that chunk.
    private func alignForReadBack() throws {
        if let encryption {
            let compressor = self.compressor
            try encryption.alignToChunk(minimumPadding: compressor.paddedSegmentBound(0)) {
                try compressor.paddedSegment(of: [], length: $0)
            }
        } else {
            try fileSink.flush()
        }
    }

    /// Stops writing and removes the partial output. Idempotent; does nothing once ``finish(manifest:)``
    /// succeeded. Called by `deinit` when the archive was neither finished nor aborted.
    public func abort() {
        switch state {
        case .finished, .aborted: return
        default: break
        }
        state = .aborted
        growth.fail("the archive was abandoned")
        output.discard = true
        archive_write_fail(handle.pointer)  // so that freeing the handle does not try to end the tar stream
        if !fdClosed {
            fdClosed = true
            close(fd)
        }
        unlink(outputPath)
    }

    // MARK: - ArchiveSink

    /// Adds one regular file whose content `produce` writes; see ``ArchiveSink/addFile(at:mode:produce:)``.
    ///
    /// The tar entry (mtime now, owner 0:0, permissions `mode & 0o7777`) is written without a temporary copy: the
    /// running compressed segment ends, room for the entry's header is reserved in the file, the content streams
    /// behind it compressed as a segment of its own (XXH3 on the way), and once its size is known the header fills
    /// the room (``Compressor/paddedSegment(of:length:)``). The read-back waits before the room until then. If
    /// `produce` throws, the file is cut back to before the room: nothing was added.
    public func addFile(
        at path: String,
        mode: UInt32,
        produce: (any ByteSink) async throws -> Void
    ) async throws -> ComponentRecord {
        try requireAddable(path, kind: .file)
        let name = Array(path.utf8)
        let largest = try Self.tarHeader(path: name, size: Self.largestHeaderSize, mode: mode)
        let room = compressor.paddedSegmentBound(largest.count)
        guard room <= zeros.count else {
            throw StackVaultError(.archive, "the name '\(path)' is too long for a tar header (\(largest.count) bytes)")
        }
        let roomStart: Int64
        var reserved: AgeEncryptor.ReservedChunk?
        do {
            try output.stream.finishSegment()
            try alignForReadBack()
            roomStart = fileSink.totalBytes
            growth.setBarrier(roomStart)
            if let encryption {
                // Encrypted, the room is one whole age chunk, sealed once the header is known.
                reserved = try encryption.reserveChunk()
            } else {
                try fileSink.write(UnsafeRawBufferPointer(rebasing: zeros[0..<room]))
                try fileSink.flush()
            }
        } catch {
            if case .open = state { state = .failed("reserving room for '\(path)': \(error)") }
            throw error
        }

        let content: ChecksummingSink
        do {
            let stream = try compressor.makeCompressor(writingTo: payload)
            content = ChecksummingSink(downstream: stream)
            try await produce(content)
            try stream.finish()
            try fileSink.flush()
        } catch {
            if encryption != nil {
                // Cutting back would seal chunk counters a second time; the archive is given up instead.
                if case .open = state {
                    state = .failed("'\(path)' failed and an encrypted archive cannot drop it: \(error)")
                }
                growth.fail("'\(path)' failed")
                throw error
            }
            // Nothing was added: cut the file back to before the room (the read-back never went past it).
            do {
                try fileSink.truncate(to: roomStart)
                growth.removeBarrier()
            } catch let truncation {
                if case .open = state { state = .failed("removing the partial '\(path)': \(truncation)") }
            }
            throw error
        }

        do {
            let header = try Self.tarHeader(path: name, size: content.count, mode: mode)
            if let encryption, let reserved {
                try encryption.fill(reserved, plaintext: try compressor.paddedSegment(of: header, length: AgePayload.chunkSize))
            } else {
                try fileSink.write(try compressor.paddedSegment(of: header, length: room), at: roomStart)
            }
            growth.removeBarrier()
            // The tar padding after the content starts the next segment of the main stream.
            let padding = Int((512 - content.count % 512) % 512)
            try output.stream.write(UnsafeRawBufferPointer(rebasing: zeros[0..<padding]))
            output.count(Int64(header.count) + content.count + Int64(padding))
        } catch {
            if case .open = state { state = .failed("writing the header of '\(path)': \(error)") }
            throw error
        }
        let record = ComponentRecord(archivePath: path, kind: .file, sizeBytes: content.count, entries: 1, sha256: "")
        records[path] = record
        checksums[path] = content.checksum.finalize()
        return record
    }

    /// A size that makes libarchive write the largest header for a path (a PAX size record: over 8 GiB).
    static let largestHeaderSize: Int64 = 1 << 40

    /// The tar header bytes libarchive writes for a regular file (PAX restricted, as the archive's other entries).
    static func tarHeader(path: [UInt8], size: Int64, mode: UInt32) throws -> [UInt8] {
        let collector = CollectingSink(limit: 64 << 10)
        let shown = ArchivePath.display(path)
        let writer = try TarStreamWriter(sink: collector, what: "the header of '\(shown)'")
        defer { writer.abandon() }  // only the header is wanted, never its content or padding
        let entry = try ArchiveEntryHandle()
        entry.setRegularFile(path: path, size: size, permissions: mode)
        try writer.writeHeader(entry.pointer, shown: shown)
        let header = collector.bytes  // unblocked: the header is out at once
        guard header.count >= 512, header.count % 512 == 0 else {
            throw StackVaultError(.archive, "libarchive wrote a header of \(header.count) bytes")
        }
        return header
    }

    /// Adds the tar stream `produce` writes, its top entry renamed to `root`; see ``ArchiveSink/addTar(at:produce:)``.
    ///
    /// The stream is handed to a helper thread through a ``ByteChunkQueue`` and copied entry by entry: the first path component
    /// of every entry (and of every hard-link target) becomes `root`; symlink targets, modes, owners, times and
    /// extended attributes are kept. Entries with absolute paths or `..` components, or outside the first entry's
    /// top-level directory, are refused with an error naming the entry.
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
        checksums[root] = checksum
        return record
    }

    // MARK: - Entries

    private func requireOpen() throws {
        switch state {
        case .open: return
        case .awaitingIndex:
            throw StackVaultError(.archive, "the archive index must be written before anything else")
        case .failed(let reason):
            throw StackVaultError(
                .archive,
                "the archive '\(outputPath)' is unusable after an earlier error (\(reason)); abort it"
            )
        case .finished:
            throw StackVaultError(.archive, "the archive '\(outputPath)' is already finished")
        case .aborted:
            throw StackVaultError(.archive, "the archive '\(outputPath)' was aborted")
        }
    }

    private func requireAddable(_ path: String, kind: ComponentRecord.Kind) throws {
        try requireOpen()
        guard let listed = indexKinds[path] else {
            throw StackVaultError(
                .archive,
                "the component '\(path)' is not listed in the archive index; every component must be"
            )
        }
        guard listed == kind else {
            throw StackVaultError(
                .archive,
                "the component '\(path)' is listed in the index as a \(listed.rawValue), not a \(kind.rawValue)"
            )
        }
        guard records[path] == nil else {
            throw StackVaultError(.archive, "the component '\(path)' was already added to the archive")
        }
    }

    static func validateComponentPath(_ path: String) throws {
        let bytes = Array(path.utf8)
        if let problem = ArchivePath.problem(bytes) {
            throw StackVaultError(.archive, "the component path '\(path)' \(problem)")
        }
        let parts = ArchivePath.components(bytes)
        guard ArchivePath.join(parts) == bytes, !parts.contains([UInt8(ascii: ".")]) else {
            throw StackVaultError(
                .archive,
                "the component path '\(path)' is not canonical (no '.', '//' or trailing '/' allowed)"
            )
        }
        guard path != ArchiveIndex.entryName, path != Manifest.entryName else {
            throw StackVaultError(.archive, "the component path '\(path)' is reserved for the archive's own files")
        }
    }

    private func writeSmallFile(name: String, data: Data) throws {
        let entry = try ArchiveEntryHandle()
        entry.setRegularFile(path: Array(name.utf8), size: Int64(data.count), permissions: 0o644)
        try writeHeader(entry.pointer, path: name)
        try data.withUnsafeBytes { try writeData($0, path: name) }
        try finishEntry(path: name)
    }

    /// Runs on the reader thread: copies every entry of the tar stream in `queue` below `root`.
    private func copyTar(from queue: ByteChunkQueue, root: String) throws -> (ComponentRecord, UInt64) {
        defer { queue.closeReading() }
        let reader = try ArchiveReadHandle()
        let archive = reader.pointer
        let source = ArchiveChunkSource(next: queue.next)
        try source.open(archive, "reading the tar stream for '\(root)'")

        let rootParts = ArchivePath.components(Array(root.utf8))
        var top: [UInt8]?
        var digest = TreeChecksum()
        while true {
            try queue.checkCancellation("reading the tar stream for '\(root)'")
            var entryPointer: OpaquePointer?
            let status = withLibArchiveUTF8Locale { archive_read_next_header(archive, &entryPointer) }
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry = entryPointer else {
                if let error = source.error { throw error }
                throw StackVaultError(
                    .archive,
                    "the tar stream for '\(root)' is unreadable: \(archiveErrorString(archive))"
                )
            }
            guard
                let path = ArchivePath.bytes(archive_entry_pathname(entry))
                    ?? ArchivePath.bytes(archive_entry_pathname_utf8(entry))
            else {
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
            if let hardlink = ArchivePath.bytes(archive_entry_hardlink(entry)) {
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
                withNulTerminated(ArchivePath.join(rootParts + targetParts.dropFirst())) {
                    archive_entry_copy_hardlink(entry, $0)
                }
                type = .hardlink
            } else {
                guard let mapped = TreeDigest.EntryType(fileType: archive_entry_filetype(entry)) else {
                    throw StackVaultError(
                        .archive,
                        "refusing the tar stream for '\(root)': the entry '\(shown)' has an unsupported type "
                            + "(mode \(String(archive_entry_mode(entry), radix: 8)))"
                    )
                }
                type = mapped
                if type == .symlink {
                    linkTarget = ArchivePath.bytes(archive_entry_symlink(entry)) ?? []
                }
            }
            withNulTerminated(ArchivePath.join(rootParts + parts.dropFirst())) {
                archive_entry_copy_pathname(entry, $0)
            }
            archive_entry_sparse_clear(entry)  // the data is copied in full, holes as zeros
            let size: Int64 = type == .file ? archive_entry_size(entry) : 0
            archive_entry_set_size(entry, size)

            digest.addEntry(
                relativePath: relative,
                type: type,
                mode: UInt32(archive_entry_perm(entry)),
                uid: archive_entry_uid(entry),
                gid: archive_entry_gid(entry),
                size: size,
                linkTarget: linkTarget
            )
            let entryName = relative.isEmpty ? root : "\(root)/\(ArchivePath.display(relative))"
            try writeHeader(entry, path: entryName)

            // Entry data is read in place from libarchive's buffers (the queue's chunks, mostly): no copy.
            var copied: Int64 = 0
            reading: while true {
                try queue.checkCancellation("reading the tar stream for '\(root)'")
                switch nextDataBlock(archive) {
                case .end:
                    break reading
                case .failed:
                    let message = source.error.map { "\($0)" } ?? archiveErrorString(archive)
                    try finishEntry(path: entryName)  // pads the entry so the archive stays well-formed
                    throw StackVaultError(
                        .archive,
                        "the tar stream for '\(root)' broke off in the entry '\(shown)': \(message)"
                    )
                case .data(let block, let offset):
                    // A sparse source entry: its holes are written out as zeros (the copy is never sparse).
                    while copied < offset && copied < size {
                        let hole = min(Int64(zeros.count), offset - copied, size - copied)
                        let chunk = UnsafeRawBufferPointer(rebasing: zeros[0..<Int(hole)])
                        try writeData(chunk, path: entryName)
                        digest.addContent(chunk)
                        copied += hole
                    }
                    let chunk = UnsafeRawBufferPointer(rebasing: block.prefix(Int(max(0, size - copied))))
                    try writeData(chunk, path: entryName)
                    digest.addContent(chunk)
                    copied += Int64(chunk.count)
                }
            }
            try finishEntry(path: entryName)
            guard copied == size else {
                throw StackVaultError(
                    .archive,
                    "the tar stream for '\(root)' ended inside the entry '\(shown)' (\(copied) of \(size) bytes)"
                )
            }
        }
        // libarchive stops at the end-of-archive blocks; drain the rest (record padding) so the producer
        // never sees a stopped reader after a good stream.
        while try queue.next() != nil {}
        guard digest.entries > 0 else {
            throw StackVaultError(.archive, "the tar stream for '\(root)' contains no entries")
        }
        // The SHA-256 comes from the read-back (see `finish(manifest:)`).
        let record = ComponentRecord(
            archivePath: root, kind: .tree, sizeBytes: digest.contentBytes, entries: digest.entries, sha256: "")
        return (record, digest.finalize())
    }

    /// Writes an entry header; a failure makes the writer unusable.
    private func writeHeader(_ entry: OpaquePointer, path: String) throws {
        let status = withLibArchiveUTF8Locale { archive_write_header(handle.pointer, entry) }
        if status == ARCHIVE_OK { return }
        if status == ARCHIVE_WARN {
            warnings.append("\(path): \(archiveErrorString(handle.pointer))")
            return
        }
        throw outputFailure("writing the header of '\(path)'")
    }

    fileprivate func writeData(_ buffer: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let written = archive_write_data(handle.pointer, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 { throw outputFailure("writing the data of '\(path)'") }
            if written == 0 {
                throw outputFailure("writing the data of '\(path)': more data than its header announced")
            }
            offset += written
        }
    }

    private func finishEntry(path: String) throws {
        let status = archive_write_finish_entry(handle.pointer)
        if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw outputFailure("finishing '\(path)'") }
    }

    /// The error for a failed libarchive write call; marks the writer unusable.
    private func outputFailure(_ what: String) -> StackVaultError {
        let error: StackVaultError
        if let cause = output.error {
            error = StackVaultError(.io, "\(what) in '\(outputPath)' failed", cause: cause)
        } else {
            error = StackVaultError(
                .archive,
                "\(what) in '\(outputPath)' failed: \(archiveErrorString(handle.pointer))"
            )
        }
        if case .open = state { state = .failed(error.description) }
        return error
    }

    private func syncParentDirectory() {
        let parent = (outputPath as NSString).deletingLastPathComponent
        let dirFD = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { return }
        _ = fsync(dirFD)
        close(dirFD)
    }
}

// MARK: - libarchive plumbing (shared with ArchiveVerifier)

/// Owns one libarchive write handle, freed in `deinit`; keeps its callback context alive as long as itself.
final class ArchiveWriteHandle {
    let pointer: OpaquePointer
    private let client: AnyObject

    init(client: AnyObject) throws {
        guard let pointer = archive_write_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a write handle (out of memory?)")
        }
        self.pointer = pointer
        self.client = client
    }

    deinit {
        archive_write_free(pointer)
    }

    /// An opened PAX (restricted) tar writer that hands every byte to `client` at once: unblocked, no tar-level
    /// padding to 10 KiB records. The one set-up of the archive writer, header building and uploads.
    static func openPAX(client: some TarWriteClient, what: @autoclosure () -> String) throws -> ArchiveWriteHandle {
        // The callback's context: a plain closure, so the hot write path needs no dynamic cast.
        let target = TarWriteTarget { client.write($0) }
        let handle = try ArchiveWriteHandle(client: target)
        let archive = handle.pointer
        try archiveCheck(archive_write_set_format_pax_restricted(archive), archive, "selecting the PAX format")
        try archiveCheck(archive_write_set_bytes_per_block(archive, 0), archive, "setting the block size")
        try archiveCheck(archive_write_set_bytes_in_last_block(archive, 1), archive, "setting the last block")
        let opened = archive_write_open(
            archive,
            Unmanaged.passUnretained(target).toOpaque(),
            nil,
            { _, clientData, buffer, length in
                guard let clientData else { return -1 }
                return Unmanaged<TarWriteTarget>.fromOpaque(clientData).takeUnretainedValue()
                    .write(UnsafeRawBufferPointer(start: buffer, count: length))
            },
            nil
        )
        try archiveCheck(opened, archive, "opening \(what())")
        return handle
    }
}

/// Where a libarchive tar writer's bytes go: bytes accepted, or -1 after an error (which the client keeps).
protocol TarWriteClient: AnyObject {
    func write(_ buffer: UnsafeRawBufferPointer) -> Int
}

/// The write callback's context of ``ArchiveWriteHandle/openPAX(client:what:)`` (it keeps the client alive).
private final class TarWriteTarget {
    let write: (UnsafeRawBufferPointer) -> Int

    init(_ write: @escaping (UnsafeRawBufferPointer) -> Int) {
        self.write = write
    }
}

/// Owns one libarchive read handle for tar streams, freed in `deinit`.
final class ArchiveReadHandle {
    let pointer: OpaquePointer

    init() throws {
        guard let pointer = archive_read_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a read handle (out of memory?)")
        }
        self.pointer = pointer
        // Only tar (ustar, pax, GNU): the input is always a tar stream, and accepting other formats from a
        // container would only widen the attack surface.
        try archiveCheck(archive_read_support_format_tar(pointer), pointer, "enabling the tar reader")
    }

    deinit {
        archive_read_free(pointer)
    }
}

/// Feeds a libarchive read handle from chunks handed over in memory (no file descriptor, no copy): each chunk
/// `next` returns stays valid until the following call, as libarchive's read callback requires.
final class ArchiveChunkSource {
    private let nextChunk: () throws -> UnsafeRawBufferPointer?
    /// The error `next` threw, which libarchive only knows as a fatal read error.
    private(set) var error: (any Error)?

    init(next: @escaping () throws -> UnsafeRawBufferPointer?) {
        self.nextChunk = next
    }

    /// Opens `archive` on this source; `self` must outlive the reading.
    func open(_ archive: OpaquePointer, _ what: @autoclosure () -> String) throws {
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open(archive, context, nil, { _, clientData, buffer in
            guard let clientData, let buffer else { return -1 }
            let source = Unmanaged<ArchiveChunkSource>.fromOpaque(clientData).takeUnretainedValue()
            return source.read(into: buffer)
        }, nil)
        if status != ARCHIVE_OK, let error { throw error }
        try archiveCheck(status, archive, what())
    }

    private func read(into buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
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

/// Owns one libarchive entry, freed in `deinit`.
final class ArchiveEntryHandle {
    let pointer: OpaquePointer

    init() throws {
        guard let pointer = archive_entry_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate an entry (out of memory?)")
        }
        self.pointer = pointer
    }

    deinit {
        archive_entry_free(pointer)
    }

    /// A regular file owned by root, modified now.
    func setRegularFile(path: [UInt8], size: Int64, permissions: UInt32) {
        withNulTerminated(path) { archive_entry_copy_pathname(pointer, $0) }
        archive_entry_set_filetype(pointer, TarFileType.regular)
        archive_entry_set_perm(pointer, mode_t(permissions & 0o7777))
        archive_entry_set_size(pointer, size)
        archive_entry_set_uid(pointer, 0)
        archive_entry_set_gid(pointer, 0)
        archive_entry_copy_uname(pointer, "root")
        archive_entry_copy_gname(pointer, "root")
        archive_entry_set_mtime(pointer, time(nil), 0)
    }
}

/// The outcome of one `archive_read_data_block` call.
enum DataBlock {
    /// The next bytes of the current entry, in libarchive's buffer (valid until the next read call), and their
    /// offset in the entry (ahead of the bytes so far after a hole of a sparse entry).
    case data(UnsafeRawBufferPointer, offset: Int64)
    /// The entry's data is complete.
    case end
    /// The data cannot be read (`archive_error_string` says why).
    case failed
}

/// Reads the next block of the current entry's data in place (no copy).
func nextDataBlock(_ archive: OpaquePointer) -> DataBlock {
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

/// Turns a libarchive status into a Swift error carrying `archive_error_string`; OK, EOF and WARN pass.
@discardableResult
func archiveCheck(_ status: Int32, _ archive: OpaquePointer, _ what: @autoclosure () -> String) throws -> Int32 {
    if status == ARCHIVE_OK || status == ARCHIVE_EOF || status == ARCHIVE_WARN { return status }
    throw StackVaultError(.archive, "\(what()): \(archiveErrorString(archive))")
}

func archiveErrorString(_ archive: OpaquePointer) -> String {
    guard let message = archive_error_string(archive) else { return "unknown libarchive error" }
    return String(decoding: ArchivePath.bytes(message) ?? [], as: UTF8.self)
}

extension TreeEntryType {
    /// The type of a non-hard-link entry from its libarchive file type, nil for types tar cannot hold.
    init?(fileType: UInt32) {
        switch fileType & TarFileType.mask {
        case TarFileType.regular: self = .file
        case TarFileType.directory: self = .directory
        case TarFileType.symlink: self = .symlink
        case TarFileType.characterDevice: self = .characterDevice
        case TarFileType.blockDevice: self = .blockDevice
        case TarFileType.fifo: self = .fifo
        default: return nil
        }
    }
}

/// libarchive's `AE_IF*` file-type bits (the POSIX values; the C macros are casts Swift does not import).
enum TarFileType {
    static let mask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let fifo: UInt32 = 0o010000
}

/// The write-callback context: feeds the tar stream into the compressor and counts it.
final class ArchiveOutput: TarWriteClient {
    let stream: any CompressionStream
    var error: (any Error)?
    var discard = false
    var uncompressedBytes: Int64 = 0
    var onProgress: (@Sendable (Int64) -> Void)?
    private var reportedAt: Int64 = 0
    static let progressInterval: Int64 = 4 << 20

    init(stream: any CompressionStream) {
        self.stream = stream
    }

    /// The libarchive write callback's body: bytes accepted, or -1 with `error` set.
    func write(_ buffer: UnsafeRawBufferPointer) -> Int {
        if discard { return buffer.count }
        if error != nil { return -1 }
        do {
            try stream.write(buffer)
        } catch {
            self.error = error
            return -1
        }
        uncompressedBytes += Int64(buffer.count)
        reportProgress(force: false)
        return buffer.count
    }

    /// Counts tar bytes that reached the archive other than through ``write(_:)``.
    func count(_ bytes: Int64) {
        uncompressedBytes += bytes
        reportProgress(force: false)
    }

    func reportProgress(force: Bool) {
        guard let onProgress else { return }
        if force || uncompressedBytes - reportedAt >= Self.progressInterval {
            reportedAt = uncompressedBytes
            onProgress(uncompressedBytes)
        }
    }
}

/// Checksums (XXH3) and counts what passes through on its way downstream.
private final class ChecksummingSink: ByteSink {
    private let downstream: any ByteSink
    private(set) var checksum = XXH3()
    private(set) var count: Int64 = 0

    init(downstream: any ByteSink) {
        self.downstream = downstream
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        checksum.update(bytes)
        count += Int64(bytes.count)
    }
}

/// Buffers writes into 1 MiB chunks for a file descriptor it does not own; publishes each write to `growth`.
final class ArchiveFileSink: ByteSink, AgeOutputFile {
    let fd: Int32
    let what: String
    private let growth: ArchiveGrowth?
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    /// Bytes accepted so far (written or buffered).
    private(set) var totalBytes: Int64 = 0
    /// Bytes written to the file so far.
    private var writtenBytes: Int64 = 0

    init(fd: Int32, what: String, growth: ArchiveGrowth? = nil, bufferSize: Int = 1 << 20) {
        self.fd = fd
        self.what = what
        self.growth = growth
        self.buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        totalBytes += Int64(bytes.count)
        if used + bytes.count <= buffer.count {
            buffer.baseAddress!.advanced(by: used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            used += bytes.count
            if used == buffer.count { try flush() }
            return
        }
        try flush()
        if bytes.count >= buffer.count {
            try archiveWriteAll(fd, bytes, what: what)
            writtenBytes += Int64(bytes.count)
            growth?.publish(writtenBytes)
        } else {
            buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            used = bytes.count
        }
    }

    /// Overwrites bytes already written (and flushed) at `offset`.
    func write(_ bytes: [UInt8], at offset: Int64) throws {
        precondition(offset + Int64(bytes.count) <= writtenBytes, "overwriting bytes not written yet")
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let count = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset) + off_t(done))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StackVaultError(.io, "cannot write to \(what): \(String(cString: strerror(errno)))")
                }
                done += count
            }
        }
    }

    /// Drops everything after `size` bytes (buffered bytes included).
    func truncate(to size: Int64) throws {
        used = 0
        guard ftruncate(fd, off_t(size)) == 0, lseek(fd, off_t(size), SEEK_SET) == size else {
            throw StackVaultError(.io, "cannot cut \(what) back to \(size) bytes: \(String(cString: strerror(errno)))")
        }
        totalBytes = size
        writtenBytes = size
        growth?.retract(to: size)
    }

    func flush() throws {
        guard used > 0 else { return }
        let pending = UnsafeRawBufferPointer(rebasing: buffer[0..<used])
        used = 0
        try archiveWriteAll(fd, pending, what: what)
        writtenBytes += Int64(pending.count)
        growth?.publish(writtenBytes)
    }
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes.
func archiveWriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: @autoclosure () -> String) throws {
    var offset = 0
    while offset < bytes.count {
        let written = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            throw StackVaultError(.io, "cannot write to \(what()): \(String(cString: strerror(errno)))")
        }
        offset += written
    }
}

/// Reads up to `buffer.count` bytes, retrying on EINTR; 0 means end of file.
func archiveRead(
    _ fd: Int32,
    _ buffer: UnsafeMutableRawBufferPointer,
    what: @autoclosure () -> String
) throws -> Int {
    while true {
        let count = read(fd, buffer.baseAddress, buffer.count)
        if count >= 0 { return count }
        if errno == EINTR { continue }
        throw StackVaultError(.io, "cannot read \(what()): \(String(cString: strerror(errno)))")
    }
}

/// The result of work on a helper thread, awaited without blocking the cooperative pool (or waited for
/// synchronously).
final class ArchiveThreadCompletion<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Value, any Error>?
    private var continuation: CheckedContinuation<Result<Value, any Error>, Never>?

    func complete(_ result: Result<Value, any Error>) {
        condition.lock()
        if let continuation {
            self.continuation = nil
            condition.unlock()
            continuation.resume(returning: result)
            return
        }
        self.result = result
        condition.broadcast()
        condition.unlock()
    }

    func value() async -> Result<Value, any Error> {
        await withCheckedContinuation { continuation in
            condition.lock()
            if let result {
                condition.unlock()
                continuation.resume(returning: result)
            } else {
                self.continuation = continuation
                condition.unlock()
            }
        }
    }

    func wait() -> Result<Value, any Error> {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
func withNulTerminated<Result>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws -> Result) rethrows -> Result {
    try (bytes + [0]).withUnsafeBufferPointer { buffer in
        try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}

/// A C.UTF-8 `LC_CTYPE` for libarchive's name conversions (nil if the system lacks it).
///
/// Swift programs run in the "C" locale, where libarchive cannot convert non-ASCII names to or from UTF-8:
/// it still keeps them byte-exact, but marks PAX headers `hdrcharset=BINARY` (GNU tar then warns on every such
/// entry) and returns warnings. Under C.UTF-8 it reads and writes standard UTF-8 PAX names, and falls back to
/// `hdrcharset=BINARY` only for names that are not valid UTF-8. Switched per thread with `uselocale`, never
/// process-wide.
nonisolated(unsafe) private let utf8Locale: locale_t? = newlocale(Int32(1) << LC_CTYPE, "C.UTF-8", nil)

/// Runs `body` with the C.UTF-8 character type on this thread (libarchive decides charsets per call).
func withLibArchiveUTF8Locale<Result>(_ body: () throws -> Result) rethrows -> Result {
    guard let utf8Locale else { return try body() }
    let previous = uselocale(utf8Locale)
    defer { uselocale(previous) }
    return try body()
}
