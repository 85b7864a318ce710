internal import CArchive
import Foundation

/// What ``ArchiveVerifier`` found in an archive.
public struct VerificationReport: Sendable {
    /// One component of the manifest, checked against what the archive really holds.
    public struct ComponentResult: Sendable, Hashable {
        public var archivePath: String
        public var kind: ComponentRecord.Kind
        public var expectedSHA256: String
        /// nil when the archive holds no entry of the component.
        public var actualSHA256: String?
        public var expectedSizeBytes: Int64
        public var actualSizeBytes: Int64
        public var expectedEntries: Int
        public var actualEntries: Int

        public var ok: Bool {
            actualSHA256 == expectedSHA256 && actualSizeBytes == expectedSizeBytes && actualEntries == expectedEntries
        }
    }

    /// The index (first entry), if it could be read.
    public var index: ArchiveIndex?
    /// The manifest (last entry), if it could be read.
    public var manifest: Manifest?
    /// One result per manifest component, in manifest order.
    public var components: [ComponentResult] = []
    /// Everything that makes the archive untrustworthy, each naming its culprit. Empty for a good archive.
    public var problems: [String] = []
    /// Remarks that do not fail verification (e.g. a planned component that never completed).
    public var notes: [String] = []
    /// Tar entries read, index and manifest included.
    public var entries = 0
    /// Bytes of the compressed file read.
    public var compressedBytes: Int64 = 0
    /// The last bytes of each `.file` component, when asked for (`keepingFileTails`).
    var fileTails: [String: [UInt8]] = [:]

    /// True when the archive is complete and every component matches its manifest record.
    public var ok: Bool {
        problems.isEmpty && index != nil && manifest != nil && components.allSatisfy(\.ok)
    }
}

/// Checks a finished archive end to end: decompresses it, reads every tar entry to the end, recomputes each
/// component's digest, size and entry count, and compares them with the manifest.
///
/// Memory is bounded: the file is decompressed on a helper thread into a few 1 MiB buffers that libarchive reads
/// (``DecompressedTarReader``), and entry data is hashed in place. Damage of any kind (corrupt or truncated compression,
/// bad tar, missing index or manifest, unknown format version, unsafe entry names) is reported in
/// ``VerificationReport/problems``; only failing to open the file or to start is thrown.
///
/// Synchronous and blocking for as long as reading the whole file takes: call it from a thread of your own
/// (or a detached task you accept to block), not from a latency-sensitive task.
public enum ArchiveVerifier {
    /// Verifies the archive at `path` (age-encrypted: with `decryption`).
    public static func verify(path: String, compressor: any Compressor, decryption: ArchiveDecryption? = nil) throws
        -> VerificationReport
    {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw StackVaultError(
                .io,
                "cannot open the archive '\(path)' to verify it: \(String(cString: strerror(errno)))"
            )
        }
        defer { close(fd) }
        return try verify(fileDescriptor: fd, compressor: compressor, decryption: decryption)
    }

    /// Verifies the archive read from `fileDescriptor` (from its current offset to its end; not closed).
    public static func verify(fileDescriptor: Int32, compressor: any Compressor, decryption: ArchiveDecryption? = nil)
        throws -> VerificationReport
    {
        try verify(fileDescriptor: fileDescriptor, compressor: compressor, keepingFileTails: 0, decryption: decryption)
    }

    /// Verifies, and keeps the last `tailBytes` bytes of each `.file` component in ``VerificationReport/fileTails``
    /// (for the strategies' completeness checks, in the same pass).
    static func verify(
        fileDescriptor: Int32, compressor: any Compressor, keepingFileTails tailBytes: Int,
        decryption: ArchiveDecryption? = nil
    ) throws -> VerificationReport {
        let reader = try DecompressedTarReader(
            fileDescriptor: fileDescriptor, from: nil, compressor: compressor, what: "archive",
            threadName: "stackvault-verify-decompress", decryption: decryption)
        var verification = Verification(tailBytes: tailBytes)
        verification.read(reader)
        // Drain whatever libarchive left, so the decompressor reaches the end and checks the whole file.
        let decompressed = reader.close(drain: true)
        return verification.report(decompressed: decompressed)
    }
}

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
        readArchive(reader.archive)
    }

    /// Reads every entry of the opened `archive` to its end.
    mutating func readArchive(_ archive: OpaquePointer) {
        while true {
            var entryPointer: OpaquePointer?
            let status = withLibArchiveUTF8Locale { archive_read_next_header(archive, &entryPointer) }
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry = entryPointer else {
                problems.append(
                    "the tar stream is damaged after \(entries) entries: \(archiveErrorString(archive))"
                )
                if status == ARCHIVE_FAILED || status == ARCHIVE_RETRY { continue }
                return
            }
            entries += 1
            if !readEntry(entry, archive) { return }
        }
    }

    /// Handles one entry; false when the stream cannot be read further.
    mutating func readEntry(_ entry: OpaquePointer, _ archive: OpaquePointer) -> Bool {
        guard
            let path = ArchivePath.bytes(archive_entry_pathname(entry))
                ?? ArchivePath.bytes(archive_entry_pathname_utf8(entry))
        else {
            problems.append("entry \(entries) has no name")
            return true
        }
        let shown = ArchivePath.display(path)
        if let problem = ArchivePath.problem(path) {
            problems.append("the entry '\(shown)' \(problem): unsafe to extract")
            return true
        }
        let parts = ArchivePath.components(path)
        let isRegular =
            archive_entry_hardlink(entry) == nil
            && TreeDigest.EntryType(fileType: archive_entry_filetype(entry)) == .file

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
        _ entry: OpaquePointer,
        _ archive: OpaquePointer,
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
        if let hardlink = ArchivePath.bytes(archive_entry_hardlink(entry)) {
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
        } else if let mapped = TreeDigest.EntryType(fileType: archive_entry_filetype(entry)) {
            type = mapped
            if type == .symlink { linkTarget = ArchivePath.bytes(archive_entry_symlink(entry)) ?? [] }
        } else {
            problems.append("the entry '\(shown)' has an unsupported type")
            return skipData(archive, shown: shown)
        }
        let size: Int64 = type == .file ? archive_entry_size(entry) : 0

        switch actual.kind {
        case .file:
            if !relative.isEmpty || type != .file {
                problems.append("the entry '\(shown)' does not fit the file component '\(root.path)'")
            }
            if actual.entries > 0 {
                problems.append("the file component '\(root.path)' appears more than once")
            }
        case .tree:
            let mode = UInt32(archive_entry_perm(entry))
            let (uid, gid) = (archive_entry_uid(entry), archive_entry_gid(entry))
            actual.tree.addEntry(relativePath: relative, type: type, mode: mode, uid: uid, gid: gid, size: size,
                                 linkTarget: linkTarget)
            actual.treeChecksum?.addEntry(relativePath: relative, type: type, mode: mode, uid: uid, gid: gid,
                                          size: size, linkTarget: linkTarget)
        }
        actual.entries += 1

        // Data is hashed in place in libarchive's buffers (the decompressor's chunks): no copy.
        var read: Int64 = 0
        var intact = true
        reading: while true {
            switch nextDataBlock(archive) {
            case .end:
                break reading
            case .failed:
                problems.append("the data of '\(shown)' is unreadable: \(archiveErrorString(archive))")
                intact = false
                break reading
            case .data(let chunk, let offset):
                guard offset == read else {
                    problems.append("'\(shown)' is stored sparse, which stackvault never writes")
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
                        actual.tree.addContent(chunk)
                        actual.treeChecksum?.addContent(chunk)
                    }
                    actual.sizeBytes += Int64(chunk.count)
                }
                read += Int64(chunk.count)
            }
        }
        if intact && type == .file && read != size {
            problems.append("'\(shown)' holds \(read) bytes, its header says \(size)")
        }
        actuals[root.path] = actual
        return intact
    }

    mutating func skipData(_ archive: OpaquePointer, shown: String) -> Bool {
        if archive_read_data_skip(archive) != ARCHIVE_OK {
            problems.append("the data of '\(shown)' is unreadable: \(archiveErrorString(archive))")
            return false
        }
        return true
    }

    /// The whole content of a small JSON entry, or nil (with a problem) when it cannot be read.
    mutating func readSmallFile(_ archive: OpaquePointer, _ entry: OpaquePointer, name: String) -> Data? {
        let size = archive_entry_size(entry)
        guard size >= 0, size <= Self.maxJSONSize else {
            problems.append("\(name) is implausibly large (\(size) bytes)")
            _ = skipData(archive, shown: name)
            return nil
        }
        var data = Data(count: Int(size))
        var filled = 0
        let ok = data.withUnsafeMutableBytes { bytes -> Bool in
            while filled < bytes.count {
                let count = archive_read_data(archive, bytes.baseAddress! + filled, bytes.count - filled)
                if count <= 0 { return false }
                filled += count
            }
            return true
        }
        guard ok else {
            problems.append("\(name) is unreadable: \(archiveErrorString(archive))")
            return nil
        }
        return data
    }

    mutating func readIndex(_ data: Data) {
        guard let version = formatVersion(of: data, name: ArchiveIndex.entryName) else { return }
        guard version == ArchiveIndex.currentFormatVersion else {
            problems.append(
                "the index has format version \(version); this stackvault reads version "
                    + "\(ArchiveIndex.currentFormatVersion) (use a newer stackvault)"
            )
            return
        }
        do {
            let index = try ArchiveIndex(jsonData: data)
            self.index = index
            for component in index.components {
                let parts = ArchivePath.components(Array(component.archivePath.utf8))
                if let problem = ArchivePath.problem(Array(component.archivePath.utf8)) {
                    problems.append("the index lists the component path '\(component.archivePath)', which \(problem)")
                    continue
                }
                if actuals[component.archivePath] != nil {
                    problems.append("the index lists '\(component.archivePath)' twice")
                    continue
                }
                var actual = Actual(kind: component.kind, parts: parts)
                if checksums {
                    switch component.kind {
                    case .tree: actual.treeChecksum = TreeChecksum()
                    case .file: actual.fileChecksum = XXH3()
                    }
                }
                actuals[component.archivePath] = actual
                roots.append((component.archivePath, parts))
            }
            roots.sort { $0.parts.count > $1.parts.count }
        } catch {
            problems.append("\(ArchiveIndex.entryName) is unreadable: \(error)")
        }
    }

    mutating func readManifest(_ data: Data) {
        guard let version = formatVersion(of: data, name: Manifest.entryName) else { return }
        guard version == Manifest.currentFormatVersion else {
            problems.append(
                "the manifest has format version \(version); this stackvault reads version "
                    + "\(Manifest.currentFormatVersion) (use a newer stackvault)"
            )
            return
        }
        do {
            manifest = try Manifest(jsonData: data)
        } catch {
            problems.append("\(Manifest.entryName) is unreadable: \(error)")
        }
    }

    mutating func formatVersion(of data: Data, name: String) -> Int? {
        struct Probe: Decodable { var formatVersion: Int }
        do {
            return try JSONDecoder().decode(Probe.self, from: data).formatVersion
        } catch {
            problems.append("\(name) is not valid JSON with a formatVersion: \(error)")
            return nil
        }
    }

    /// What the component at `archivePath` read back to so far; nil when the index does not list it.
    func readBack(_ archivePath: String) -> ReadBack? {
        guard let actual = actuals[archivePath] else { return nil }
        return ReadBack(
            sha256: actual.kind == .file ? actual.file.finalize().hex : actual.tree.finalize().hex,
            checksum: actual.kind == .file ? actual.fileChecksum?.finalize() : actual.treeChecksum?.finalize(),
            sizeBytes: actual.sizeBytes,
            entries: actual.entries
        )
    }

    /// The report, with the outcome of decompressing the whole file.
    func report(decompressed: Result<Int64, any Error>) -> VerificationReport {
        var report = report()
        switch decompressed {
        case .success(let bytes):
            report.compressedBytes = bytes
        case .failure(let error):
            report.problems.insert("the compressed data is damaged or incomplete: \(error)", at: 0)
        }
        return report
    }

    func report() -> VerificationReport {
        var report = VerificationReport()
        report.index = index
        report.manifest = manifest
        report.problems = problems
        report.notes = notes
        report.entries = entries
        if tailBytes > 0 {
            for (path, actual) in actuals where actual.kind == .file && actual.entries > 0 {
                report.fileTails[path] = actual.tail
            }
        }
        if !manifestSeen {
            report.problems.append("the archive has no manifest (\(Manifest.entryName)): it is incomplete")
        }
        guard let manifest else { return report }

        if let index, index.stack != manifest.stack {
            report.problems.append(
                "the index is for the stack '\(index.stack)' but the manifest for '\(manifest.stack)'"
            )
        }
        var listed = Set<String>()
        for component in manifest.components {
            listed.insert(component.archivePath)
            let actual = actuals[component.archivePath]
            if actual == nil && index != nil {
                report.problems.append("the manifest lists '\(component.archivePath)', which the index does not")
            }
            let actualSHA: String?
            switch actual {
            case .none: actualSHA = nil
            case .some(let actual) where actual.entries == 0: actualSHA = nil
            case .some(let actual):
                actualSHA = actual.kind == .file ? actual.file.finalize().hex : actual.tree.finalize().hex
            }
            let result = VerificationReport.ComponentResult(
                archivePath: component.archivePath,
                kind: component.kind,
                expectedSHA256: component.sha256,
                actualSHA256: actualSHA,
                expectedSizeBytes: component.sizeBytes,
                actualSizeBytes: actual?.sizeBytes ?? 0,
                expectedEntries: component.entries,
                actualEntries: actual?.entries ?? 0
            )
            if actual?.kind != nil && actual?.kind != component.kind {
                report.problems.append(
                    "'\(component.archivePath)' is a \(component.kind.rawValue) in the manifest but not in the index"
                )
            }
            if actualSHA == nil {
                report.problems.append("the component '\(component.archivePath)' is missing from the archive")
            } else if !result.ok {
                report.problems.append(
                    "the component '\(component.archivePath)' does not match the manifest: sha256 "
                        + "\(actualSHA ?? "-") (expected \(component.sha256)), \(result.actualSizeBytes) bytes "
                        + "(expected \(component.sizeBytes)), \(result.actualEntries) entries "
                        + "(expected \(component.entries))"
                )
            }
            report.components.append(result)
        }
        for component in index?.components ?? [] where !listed.contains(component.archivePath) {
            let partial = actuals[component.archivePath]?.entries ?? 0
            report.notes.append(
                "the component '\(component.archivePath)' of service '\(component.service)' is in the index but not "
                    + "in the manifest: its backup did not complete"
                    + (partial > 0 ? " (\(partial) partial entries are in the archive)" : "")
            )
        }
        return report
    }
}
