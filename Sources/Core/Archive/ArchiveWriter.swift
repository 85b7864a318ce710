import Foundation

/// Writes one backup archive: a PAX tar stream, compressed, into a new file.
///
/// The archive holds, in this order: the index (`stackvault-index.json`, see ``ArchiveIndex``), the components
/// (each either one file added with ``addFile(at:mode:produce:)`` or a tree added with
/// ``addTar(at:produce:)``), and the manifest (`stackvault.json`, see ``Manifest``) written by
/// ``finish(_:)``. The output is a standard `.tar.zst` that `tar --zstd -xpf` extracts.
///
/// Memory stays bounded whatever the size of the data: a file's content streams compressed straight into the
/// archive behind room reserved for its header (filled in once the size is known), tar streams are copied entry
/// by entry in place. No temporary file is made: the only disk used is the archive's.
///
/// The archive is read back while it is written (``DecompressedTarReader`` following the file), so that verifying
/// it costs little time after the last byte: ``finish(_:)`` waits for the read-back to reach the end of
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
    /// The progress of the component being added: told the content bytes of each chunk (a dump's bytes, the data
    /// of a directory's files: the unit of the manifest's `sizeBytes`) as they pass. Set it before `addFile` or
    /// `addTar`; nil: nobody is told.
    public var progress: ProgressReporter?
    /// Compressed bytes produced so far (the size of the archive file once finished).
    public var compressedBytesWritten: Int64 { fileSink.totalBytes }
    /// Uncompressed tar bytes written so far.
    public var uncompressedBytesWritten: Int64 { output.uncompressedBytes }
    /// Non-fatal remarks from libarchive, such as names that are not valid UTF-8 and were stored as raw bytes.
    public internal(set) var warnings: [String] = []

    enum State {
        case awaitingIndex
        case open
        case failed(String)
        case finished
        case aborted
    }

    var state = State.awaitingIndex
    let fd: Int32
    var fdClosed = false
    let fileSink: ArchiveFileSink
    let output: ArchiveOutput
    /// The tar writer over the compressed output.
    let tar: TarWriter
    /// Zeros: sparse holes, tar padding, the room reserved for a file header.
    let zeros: UnsafeMutableRawBufferPointer
    /// The index's components by archive path: what may be added, and what the manifest says of each.
    var indexed: [String: ArchiveIndex.IndexComponent] = [:]
    /// What was written for each component added, in the order added (the manifest's order).
    var records: [String: ComponentRecord] = [:]
    var addedOrder: [String] = []
    /// What each dump holds (``recordContents(_:of:)``), for the manifest.
    var contents: [String: DumpContents] = [:]
    /// In-path XXH3 of each component (``TreeChecksum`` for trees, of the content for files), compared with the
    /// read-back's.
    var checksums: [String: UInt64] = [:]
    let compressor: any Compressor
    /// The age stage between the compressor and the file, when the archive is encrypted. Holds the file key for
    /// the read-back; dropped once the archive is finished.
    var encryption: AgeArchiveOutput?
    /// Where compressed bytes go: the age stage or the file.
    let payload: any ByteSink
    /// What the read-back may read of the file so far.
    let growth = ArchiveGrowth()
    /// The read-back of everything before the manifest, running on its own threads.
    let readBack = ArchiveThreadCompletion<ReadBackPart>()

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
        let fd = try syscall(
            "open", path: outputPath, failing: "cannot create the archive file '\(outputPath)'",
            hint: { $0 == EEXIST ? " (a file of that name exists already; it is never overwritten)" : "" }
        ) { open(outputPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }

        let readFD: Int32
        do {
            readFD = try syscall(
                "open", path: outputPath, failing: "cannot open the new archive file '\(outputPath)' to read it back"
            ) { open(outputPath, O_RDONLY | O_CLOEXEC) }
        } catch {
            close(fd)
            unlink(outputPath)
            throw error
        }
        let fileSink = ArchiveFileSink(fd: fd, what: "the archive file '\(outputPath)'", growth: growth)
        let output: ArchiveOutput
        let tar: TarWriter
        let encryption: AgeArchiveOutput?
        do {
            encryption = recipients.isEmpty ? nil : try AgeArchiveOutput(recipients: recipients, file: fileSink)
            output = ArchiveOutput(stream: try compressor.makeCompressor(writingTo: encryption ?? fileSink))
            tar = try TarWriter(client: output, what: "the archive for writing")
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
        self.tar = tar
        self.zeros = .allocate(byteCount: Self.zerosSize, alignment: 16)
        self.zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        abort()
        zeros.deallocate()
    }

    // MARK: - Index and manifest

    /// Writes the index as the first entry. Must be called once, before any component is added; afterwards
    /// only the components it lists can be added, each with the kind it declares. The index's components also
    /// carry what the manifest records of each (container, name, source path): ``finish(_:)`` builds the
    /// manifest from them and from what was written.
    public func writeIndex(_ index: ArchiveIndex) throws {
        guard case .awaitingIndex = state else {
            throw StackVaultError(.archive, "the archive index must be written once, before any component")
        }
        var kinds: [String: ArchiveIndex.IndexComponent] = [:]
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
            kinds[path] = component
            roots.append(parts)
        }
        try writeSmallFile(name: ArchiveIndex.entryName, data: try index.jsonData())
        indexed = kinds
        state = .open
    }
}

extension ArchiveWriter {
    /// Stops writing and removes the partial output. Idempotent; does nothing once ``finish(_:)``
    /// succeeded. Called by `deinit` when the archive was neither finished nor aborted.
    public func abort() {
        switch state {
        case .finished, .aborted: return
        default: break
        }
        state = .aborted
        growth.fail("the archive was abandoned")
        output.discard = true
        tar.abandon()  // so that freeing the writer does not try to end the tar stream
        if !fdClosed {
            fdClosed = true
            close(fd)
        }
        unlink(outputPath)
    }

    // MARK: - Entries

    func requireOpen() throws {
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

    func requireAddable(_ path: String, kind: ComponentRecord.Kind) throws {
        try requireOpen()
        guard let listed = indexed[path]?.kind else {
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

    func writeSmallFile(name: String, data: Data) throws {
        let entry = try TarEntry.regularFile(path: Array(name.utf8), size: Int64(data.count), permissions: 0o644)
        try writeHeader(entry, path: name)
        try data.withUnsafeBytes { try writeData($0, path: name) }
        try finishEntry(path: name)
    }

    /// Writes an entry header; a failure makes the writer unusable.
    func writeHeader(_ entry: TarEntry, path: String) throws {
        if let warning = try writing({ try tar.writeHeader(entry, shown: path) }) {
            warnings.append("\(path): \(warning)")
        }
    }

    func writeData(_ buffer: UnsafeRawBufferPointer, path: String) throws {
        try writing { try tar.writeData(buffer, shown: path) }
    }

    func finishEntry(path: String) throws {
        try writing { try tar.finishEntry(shown: path) }
    }

    /// Runs a write call of the tar writer; turns its failure into an error about the archive file (the output's
    /// own error as the cause when it has one) and marks the writer unusable.
    @discardableResult
    func writing<Result>(_ call: () throws -> Result) throws -> Result {
        do {
            return try call()
        } catch let failure as TarWriter.Failure {
            throw outputFailure(failure.doing, libarchiveMessage: failure.libarchiveMessage)
        }
    }

    /// The error for a failed write call; marks the writer unusable.
    func outputFailure(_ what: String, libarchiveMessage: String) -> StackVaultError {
        let error: StackVaultError
        if let cause = output.error {
            error = StackVaultError(.io, "\(what) in '\(outputPath)' failed", cause: cause)
        } else {
            error = StackVaultError(.archive, "\(what) in '\(outputPath)' failed: \(libarchiveMessage)")
        }
        if case .open = state { state = .failed(error.description) }
        return error
    }
}
