import Foundation
public import Logging

/// A verified archive, read one component at a time: what strategies restore from.
///
/// Every method blocks while it reads and decompresses the archive, with bounded memory: call it from a thread of
/// your own, such as the producer of `DockerEngine.putArchive`, never from a cooperative task.
public protocol RestoreSource: Sendable {
    /// Streams the content of the `.file` component `archivePath` into `sink`.
    func readFile(_ archivePath: String, into sink: any ByteSink) throws

    /// Writes the `.tree` component `archivePath` into `sink` as a tar stream whose top entry is named `top` (a
    /// single name, no `/`), everything below it moved along; modes, owners, times and links as archived.
    func writeTree(_ archivePath: String, as top: String, layout: TreeTarLayout, into sink: any ByteSink) throws

    /// This source, telling `progress` the content bytes it reads (a file's bytes, the data of a tree's files: the
    /// unit of the manifest's `sizeBytes`). Default: the source itself, which tells nobody.
    func reporting(to progress: ProgressReporter) -> any RestoreSource
}

extension RestoreSource {
    public func reporting(to progress: ProgressReporter) -> any RestoreSource { self }
}

/// How `RestoreSource.writeTree` lays out the tar stream of a tree.
///
/// Sparse files are written in full (holes as zeros) for Docker's archive upload, whose extraction writes every
/// byte anyway; only ``wholeKeepingHoles`` keeps their sparse maps.
public enum TreeTarLayout: Sendable, Equatable {
    /// Every entry of the tree.
    case whole
    /// Every entry of the tree, sparse files as sparse entries (`GNU.sparse` 1.0, only their data regions): for
    /// `stackvault helper tar-extract`, which recreates the holes.
    case wholeKeepingHoles
    /// Every entry, preceded by an empty regular file named like the top entry. Docker's archive upload removes
    /// whatever is in the way of a non-directory entry, so extracting this stream replaces the directory `top`
    /// as a whole: nothing that was in it survives. Never use it where `top` is a mount point.
    case replacingTop
    /// Only the top directory entry: extracting it over an existing directory sets that directory's own mode,
    /// owner and times and leaves its content alone.
    case topOnly
}

/// The outcome of checking an archive before it is trusted: ``ArchiveVerifier``'s report plus each strategy's
/// completeness check of its dumps.
public struct ArchiveCheck: Sendable {
    public var archive: String
    public var report: VerificationReport
    /// Completeness problems by component archive path (a dump that does not end the way complete dumps end).
    public var completeness: [String: String] = [:]
    /// Components whose strategy this stackvault does not know, so their completeness was not checked.
    public var unknownStrategies: [String: String] = [:]
    /// For an age-encrypted archive checked without its identity: what could be checked (its header and length);
    /// the report then holds only problems and notes, no manifest.
    public var envelope: AgeFileSummary?

    public var ok: Bool {
        if envelope != nil { return report.problems.isEmpty }
        return report.ok && completeness.isEmpty
    }

    /// Everything that makes the archive untrustworthy, each naming its culprit.
    public var problems: [String] {
        report.problems + completeness.keys.sorted().map { "the component '\($0)' \(completeness[$0]!)" }
    }
}

/// An archive on local disk, opened once and read through that descriptor until it is released: from a local
/// directory target, a local file, or downloaded from a remote target into a temporary file that is unlinked at
/// once (so nothing is left behind, whatever happens).
///
/// Page cache (``PageCacheDropper``): ``check(strategies:keepingPageCache:)`` drops the file behind it unless told it
/// is read again next (restore, drill: their passes then read it from memory, not a second time from disk); passes
/// over components leave it; releasing the archive drops all of it, so nothing stays charged to StackVault.
public final class LocalArchive: RestoreSource, @unchecked Sendable {
    /// The archive's name (`backup-app-20261127-120000-<uuid>.tar.zst`).
    public let name: String
    /// Where it came from, for messages.
    public let origin: String
    public let sizeBytes: Int64
    /// True when the file is an age file (an encrypted archive, `.tar.zst.age`).
    public let isEncrypted: Bool
    private let fileDescriptor: Int32
    private let compressor: any Compressor
    /// How to decrypt it: nil for a plaintext archive, or an encrypted one without identities.
    private let decryption: ArchiveDecryption?

    private init(
        name: String, origin: String, fileDescriptor: Int32, compressor: any Compressor, identities: [any AgeIdentity]
    ) {
        self.name = name
        self.origin = origin
        self.fileDescriptor = fileDescriptor
        self.compressor = compressor
        var info = stat()
        sizeBytes = fstat(fileDescriptor, &info) == 0 ? Int64(info.st_size) : 0
        let magic = Array(AgeHeader.versionPrefix)
        var start = [UInt8](repeating: 0, count: magic.count)
        let count = start.withUnsafeMutableBytes { pread(fileDescriptor, $0.baseAddress, $0.count, 0) }
        isEncrypted = count == magic.count && start == magic
        decryption = isEncrypted && !identities.isEmpty ? .identities(identities) : nil
    }

    deinit {
        PageCacheDropper.drop(fileDescriptor, offset: 0, length: 0)
        close(fileDescriptor)
    }

    /// Opens the local file at `path`; an encrypted one is read with `identities` (none: only its envelope can
    /// be checked).
    public static func open(localPath path: String, compressor: any Compressor, identities: [any AgeIdentity] = [])
        throws -> LocalArchive
    {
        try open(path, name: (path as NSString).lastPathComponent, origin: path, compressor: compressor,
                 identities: identities)
    }

    private static func open(
        _ path: String, name: String, origin: String, compressor: any Compressor, identities: [any AgeIdentity]
    ) throws -> LocalArchive {
        let fd = try syscall("open", path: path, failing: "cannot open the archive \(origin)") {
            Foundation.open(path, O_RDONLY | O_CLOEXEC)
        }
        return LocalArchive(name: name, origin: origin, fileDescriptor: fd, compressor: compressor,
                            identities: identities)
    }

    /// Opens the archive `name` of `storage`: in place for a local directory target, else downloaded (streamed)
    /// into a temporary file in `workDirectory` that is unlinked as soon as it is created. The download's
    /// progress lines have no total (the backend's read says no size up front).
    public static func open(
        name: String,
        storage: any StorageBackend,
        workDirectory: String,
        compressor: any Compressor,
        identities: [any AgeIdentity] = [],
        logger: Logger
    ) async throws -> LocalArchive {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw StackVaultError(.invalidConfiguration, "'\(name)' is not an archive name")
        }
        let origin = "\(storage.description)/\(name)"
        if let directory = storage.localDirectory {
            return try open(directory + "/" + name, name: name, origin: origin, compressor: compressor,
                            identities: identities)
        }
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let path = "\(workDirectory)/.stackvault-fetch-\(UUID().uuidString).tar.zst"
        let fd = try syscall(
            "open", path: path, failing: "cannot create a temporary file in \(workDirectory) to download \(name) into",
            hint: { _ in "; set STACKVAULT_WORK_DIR or --work-dir" }
        ) { Foundation.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
        unlink(path)
        do {
            let progress = ProgressReporter(operation: "download", subject: "\(name) from \(storage.description)",
                                            total: nil,
                                            logger: logger).start()
            defer { progress.finish() }
            let sink = DescriptorSink(fd: fd, what: "the temporary copy of \(name) in \(workDirectory)",
                                      progress: progress)
            logger.info("downloading \(name) from \(storage.description)")
            try await storage.read(name, into: sink)
            try sink.flush()
        } catch {
            close(fd)
            throw error
        }
        return LocalArchive(name: name, origin: origin, fileDescriptor: fd, compressor: compressor,
                            identities: identities)
    }

    // MARK: - Verification

    /// Verifies the whole archive (``ArchiveVerifier``) and, when that passes, asks each component's strategy
    /// whether its dump ends the way a complete dump ends (from the dumps' last bytes, kept in the same pass).
    /// With `keepingPageCache` (its components are read next) the file stays in the page cache until the archive is
    /// released; without, it is dropped behind the reader. With a `logger`, logs progress lines (compressed bytes
    /// read of the file's size, exact). Blocking.
    public func check(strategies: StrategyRegistry, keepingPageCache: Bool = false, logger: Logger? = nil) throws
        -> ArchiveCheck
    {
        if isEncrypted && decryption == nil { return try checkEnvelope() }
        try syscall("lseek", path: origin, failing: "cannot rewind \(origin)") { lseek(fileDescriptor, 0, SEEK_SET) }
        let progress = logger.map {
            ProgressReporter(operation: "verification", subject: name,
                             total: ProgressTotal(bytes: sizeBytes, estimated: false), logger: $0).start()
        }
        defer { progress?.finish() }
        var check = ArchiveCheck(archive: name, report: try ArchiveVerifier.verify(
            fileDescriptor: fileDescriptor, compressor: compressor,
            keepingFileTails: RestoreLimits.completenessTailBytes, decryption: decryption,
            keepingPageCache: keepingPageCache, progress: progress))
        guard check.report.ok, let manifest = check.report.manifest else { return check }
        for component in manifest.components {
            guard let strategy = strategies.strategy(forType: component.type) else {
                check.unknownStrategies[component.archivePath] = component.type
                continue
            }
            if component.kind == .file, let tail = check.report.fileTails[component.archivePath],
                let problem = strategy.checkCompleteness(of: component, tail: tail)
            {
                check.completeness[component.archivePath] = problem
            }
        }
        return check
    }

    /// What can be checked of an encrypted archive without its identity: the age header parses, and the length
    /// fits a complete payload. The content needs the identity.
    private func checkEnvelope() throws -> ArchiveCheck {
        var prefix = [UInt8](repeating: 0, count: Int(min(sizeBytes, Int64(AgeHeader.maximumByteCount))))
        var count = 0
        while count < prefix.count {
            let read = try prefix.withUnsafeMutableBytes {
                try FileDescriptorIO.read(fileDescriptor, into: UnsafeMutableRawBufferPointer(rebasing: $0[count...]),
                                          at: Int64(count), what: origin)
            }
            guard read > 0 else { throw StackVaultError(.io, "cannot read \(origin): it ended after \(count) bytes") }
            count += read
        }
        var report = VerificationReport()
        report.compressedBytes = sizeBytes
        var check = ArchiveCheck(archive: name, report: report)
        do {
            let summary = try AgeFileSummary(prefix: prefix, fileSize: sizeBytes)
            check.envelope = summary
            if !summary.lengthIsPlausible {
                check.report.problems.append(
                    "the encrypted archive's length does not fit a complete age file: it is truncated")
            }
            check.report.notes.append(
                "the archive is encrypted (age, to \(summary.recipientTypes.joined(separator: ", "))); without "
                    + "AGE_IDENTITY_FILE or AGE_PASSPHRASE only its header and length were checked: its content "
                    + "needs the identity")
        } catch let error as AgeError {
            check.envelope = AgeFileSummary.unreadable
            check.report.problems.append("the encrypted archive's \(error.message)")
        }
        return check
    }

    /// `check(strategies:keepingPageCache:logger:)` on a thread of its own, so the cooperative pool stays free.
    public func verify(strategies: StrategyRegistry, keepingPageCache: Bool = false, logger: Logger? = nil)
        async throws -> ArchiveCheck
    {
        try await runBlocking { _ in
            try self.check(strategies: strategies, keepingPageCache: keepingPageCache, logger: logger)
        }
    }

    // MARK: - RestoreSource

    public func readFile(_ archivePath: String, into sink: any ByteSink) throws {
        try readFile(archivePath, into: sink, progress: nil)
    }

    public func writeTree(_ archivePath: String, as top: String, layout: TreeTarLayout, into sink: any ByteSink)
        throws
    {
        try writeTree(archivePath, as: top, layout: layout, into: sink, progress: nil)
    }

    public func reporting(to progress: ProgressReporter) -> any RestoreSource {
        ReportingArchive(archive: self, progress: progress)
    }

    func readFile(_ archivePath: String, into sink: any ByteSink, progress: ProgressReporter?) throws {
        let wanted = ArchivePath.components(Array(archivePath.utf8))
        var found = false
        try reader().forEachEntry { tar, entry, path in
            guard ArchivePath.components(path) == wanted, entry.isRegularFile else { return .next }
            found = true
            _ = try copyEntryData(tar, entry, shown: archivePath) { chunk in
                try sink.write(chunk)
                progress?.add(Int64(chunk.count))
            }
            return .stop
        }
        guard found else {
            throw StackVaultError(.archive, "\(origin) holds no file '\(archivePath)'")
        }
    }

    func writeTree(_ archivePath: String, as top: String, layout: TreeTarLayout, into sink: any ByteSink,
                   progress: ProgressReporter?) throws
    {
        let topBytes = Array(top.utf8)
        guard ArchivePath.problem(topBytes) == nil, ArchivePath.components(topBytes) == [topBytes] else {
            throw StackVaultError(.archive, "'\(top)' is not a single name to extract '\(archivePath)' as")
        }
        let root = ArchivePath.components(Array(archivePath.utf8))
        let writer = try TarStreamWriter(sink: sink, what: "the tar stream of '\(archivePath)'")
        var inside = false
        var wroteTop = false
        try reader().forEachEntry { tar, entry, path in
            let parts = ArchivePath.components(path)
            guard let relative = ArchivePath.relative(parts, below: root) else {
                // A component's entries are contiguous: once past them, the rest is not needed.
                return inside ? .stop : .next
            }
            inside = true
            let shown = ArchivePath.display(path)
            if let problem = ArchivePath.problem(path) {
                throw StackVaultError(.archive, "the entry '\(shown)' \(problem): refusing to restore it")
            }
            if layout == .topOnly && !relative.isEmpty { return .next }
            if relative.isEmpty && layout == .replacingTop {
                let placeholder = try TarEntry.regularFile(path: topBytes, size: 0, permissions: 0o600)
                try writer.writeHeader(placeholder, shown: top)
                try writer.finishEntry(shown: top)
            }
            var linkTarget: [UInt8]?
            if let hardlink = entry.hardlink {
                guard ArchivePath.problem(hardlink) == nil,
                    let target = ArchivePath.relative(ArchivePath.components(hardlink), below: root)
                else {
                    throw StackVaultError(.archive, "the hard link '\(shown)' points outside '\(archivePath)'")
                }
                linkTarget = target.isEmpty ? topBytes : topBytes + [ArchivePath.slash] + target
            }
            let isFile = linkTarget == nil && TreeEntryType(fileType: entry.fileType) == .file
            do {
                _ = try writer.copy(
                    entry, from: tar, as: relative.isEmpty ? topBytes : topBytes + [ArchivePath.slash] + relative,
                    hardlink: linkTarget, isFile: isFile, keepingHoles: layout == .wholeKeepingHoles, shown: shown
                ) { chunk, _ in progress?.add(Int64(chunk.count)) }
            } catch let broken as TarReader.BrokenData {
                throw StackVaultError(.archive, "the data of '\(shown)' is unreadable: \(broken.message)")
            }
            if relative.isEmpty { wroteTop = true }
            return layout == .topOnly && wroteTop ? .stop : .next
        }
        guard wroteTop else {
            throw StackVaultError(.archive, "\(origin) holds no directory '\(archivePath)'")
        }
        try writer.finish()
    }

    private func reader() throws -> ArchiveEntryReader {
        if isEncrypted && decryption == nil {
            throw StackVaultError(
                .invalidConfiguration,
                "the archive \(name) is encrypted (age): set AGE_IDENTITY_FILE (or AGE_PASSPHRASE) to read it")
        }
        return ArchiveEntryReader(fileDescriptor: fileDescriptor, compressor: compressor, what: "the archive \(name)",
                                  decryption: decryption)
    }
}

/// A ``LocalArchive`` read for one restore step: tells `progress` the content bytes read.
private struct ReportingArchive: RestoreSource {
    let archive: LocalArchive
    let progress: ProgressReporter

    func readFile(_ archivePath: String, into sink: any ByteSink) throws {
        try archive.readFile(archivePath, into: sink, progress: progress)
    }

    func writeTree(_ archivePath: String, as top: String, layout: TreeTarLayout, into sink: any ByteSink) throws {
        try archive.writeTree(archivePath, as: top, layout: layout, into: sink, progress: progress)
    }

    func reporting(to progress: ProgressReporter) -> any RestoreSource {
        archive.reporting(to: progress)
    }
}

/// Buffers writes into a file descriptor it does not own, telling `progress` each write's size.
private final class DescriptorSink: ByteSink {
    private let file: ArchiveFileSink
    private let progress: ProgressReporter

    init(fd: Int32, what: String, progress: ProgressReporter) {
        file = ArchiveFileSink(fd: fd, what: what)
        self.progress = progress
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try file.write(bytes)
        progress.add(Int64(bytes.count))
    }

    /// Flushes and drops the copy from the page cache as it goes (the first pass over it reads it from disk).
    func flush() throws {
        try file.flushAndDropCache()
    }
}
