internal import CArchive
import Foundation

/// Replaces the content of a directory on disk with a tar stream, with libarchive's disk writer
/// (`archive_write_disk`): what the helper container runs for a restore (`stackvault helper tar-extract <dir>`).
///
/// The stream is one tree as ``DiskTarReader`` (or Docker's archive API) names it: a top directory entry `b/` and
/// the rest `b/...`; the first component is dropped, whatever its name. Restored exactly: content, modes, numeric
/// owners, modification and access times, extended attributes, POSIX access and default ACLs (the ACL mask
/// stays the mask, the owning group keeps its own bits), holes of sparse entries (seeks, not zeros), hard links,
/// symlinks, devices, FIFOs. Entries with an absolute path, a `..` component, or a path through a symlink are
/// refused (`ARCHIVE_EXTRACT_SECURE_*`).
///
/// Steps, the old content intact until the swap:
/// 1. **Stage**: a fresh hidden directory `.stackvault-stage-<random>` *inside* the target (same file system even
///    when the target is itself a mount point, where a sibling would not be) with its default ACL removed so that
///    nothing inherits the old one. The process's working directory is the stage while libarchive extracts, so
///    entry names are relative and never longer than the backed-up paths were (`/a/b/x` is extracted as `x`):
///    every path that fit in the source fits again.
/// 2. **Check**: the stream must end with tar's end-of-archive blocks; a stream cut short (a helper or sender
///    that died) fails here and the stage is removed.
/// 3. **Swap** with `renameat` in the target: the old entries move into a second hidden directory
///    `.stackvault-old-<random>`, then the staged ones move up; a failure moves everything back.
/// 4. **Remove** the old content with `unlinkat` (``DirectoryTree/remove(_:in:shown:)``); if that fails the
///    restore still stands and the summary names the leftover directory.
/// 5. **Top**: the target directory's own mode, owner, times, xattrs and ACLs are set from the top entry (see
///    `applyTopEntry`: through a scratch directory, as libarchive does not set a default ACL on an existing
///    directory); xattrs and ACLs it had and the entry lacks are removed.
///
/// Sets the process's working directory while it runs (restored at the end): run it in a process of its own.
/// Needs room for both copies for a moment, and root (owners, devices, `trusted.*` xattrs).
public enum DiskTarExtractor {
    /// libarchive's extraction flags: everything restored, nothing outside the stage written.
    // No ARCHIVE_EXTRACT_SPARSE: sparse files arrive as sparse entries and their holes are recreated from the map
    // (seeks); a file that was stored whole is written whole, zero blocks included (a preallocated file stays
    // allocated, and reads back as the same dense entry: its tree digest does not change in a drill).
    static let flags: Int32 = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME
        | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS

    /// Replaces the content of the directory `path` (symlinks in `path` resolved) with the tar stream read from
    /// the file descriptor `input` (read to its end, not closed). Throws ``StackVaultError`` naming the path, the
    /// entry and what to do; unless the error says otherwise, the old content is then unchanged.
    public static func replaceContents(of path: String, from input: Int32, what: String) throws -> DiskTarSummary {
        let resolved = try DiskTar.resolveDirectory(path, doing: "restoring into")
        var summary = DiskTarSummary(operation: "tar-extract", path: path, resolvedPath: resolved)
        let target = try syscall("open", path: resolved, failing: "cannot open the directory '\(resolved)'") {
            open(resolved, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        defer { close(target) }
        var targetInfo = stat()
        try syscall("fstat", path: resolved, failing: "cannot examine '\(resolved)'") { fstat(target, &targetInfo) }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let stageName = Array((DiskTar.ScratchPrefix.stage + suffix).utf8)
        let oldName = Array((DiskTar.ScratchPrefix.old + suffix).utf8)
        let stageShown = "\(resolved)/\(String(decoding: stageName, as: UTF8.self))"
        let oldShown = "\(resolved)/\(String(decoding: oldName, as: UTF8.self))"

        let workingDirectory = WorkingDirectory()
        defer { workingDirectory.restore() }

        // 1 + 2: extract into the stage.
        try DirectoryTree.withCName(stageName) { cName in
            _ = try syscall("mkdirat", path: stageShown, failing: "cannot create the staging directory \(stageShown)",
                            hint: stagingHint) { mkdirat(target, cName, 0o700) }
        }
        let top: TarEntry
        do {
            let stage = try DirectoryTree.openDirectory(stageName, in: target, shown: stageShown)
            defer { close(stage) }
            if fremovexattr(stage, "system.posix_acl_default") != 0 && ![ENODATA, EOPNOTSUPP].contains(errno) {
                throw StackVaultError(
                    SystemCallError(call: "fremovexattr", path: stageShown, errno: errno),
                    failing: "cannot clear the default ACL of the staging directory \(stageShown)")
            }
            try syscall("fchdir", path: stageShown, failing: "cannot enter the staging directory \(stageShown)") {
                fchdir(stage)
            }
            let check: StagedTreeCheck
            (top, check) = try extract(from: input, what: what, into: &summary, stageShown: stageShown)
            let differences = try check.differences(in: stage, shown: stageShown)
            if differences.count > 0 {
                throw StackVaultError(
                    .restoreFailed,
                    "\(differences.count) entr\(differences.count == 1 ? "y" : "ies") of \(what) did not come out as "
                        + "the archive has them, so nothing was changed: "
                        + differences.first.joined(separator: "; ") + (differences.count > 3 ? "; ..." : ""))
            }
            // An entry libarchive could not restore exactly (an owner, a time, an xattr it could not set: e.g. below
            // a path longer than PATH_MAX) would make the swap put back less than the archive holds: refused here,
            // while nothing has changed.
            if !summary.warnings.isEmpty {
                throw StackVaultError(
                    .restoreFailed,
                    "not everything in \(what) could be restored exactly, so nothing was changed: "
                        + summary.warnings.prefix(3).joined(separator: "; ")
                        + (summary.warnings.count > 3 ? "; and more" : ""))
            }
            workingDirectory.restore()
        } catch {
            workingDirectory.restore()
            try? DirectoryTree.remove(stageName, in: target, shown: stageShown)
            restoreTimes(of: target, from: targetInfo)
            throw error
        }

        // 3: swap.
        do {
            try swap(in: target, shown: resolved, stage: (stageName, stageShown), old: (oldName, oldShown))
        } catch {
            restoreTimes(of: target, from: targetInfo)
            throw error
        }

        // 4: the old content (before the top entry: removing it changes the directory's times).
        do {
            try DirectoryTree.remove(oldName, in: target, shown: oldShown)
            summary.oldContentRemoved = true
        } catch {
            summary.oldContentRemoved = false
            summary.leftover = oldShown
            summary.warn("the old content could not be removed from \(oldShown): \(error); remove it by hand")
        }
        // 5: the directory's own metadata.
        do {
            let scratch = Array((DiskTar.ScratchPrefix.top + suffix).utf8)
            try applyTopEntry(top, to: target, shown: resolved, scratch: scratch, into: &summary)
        } catch {
            workingDirectory.restore()
            throw StackVaultError(
                .restoreFailed,
                "the content of \(resolved) was restored, but not the directory's own mode, owner, times or ACLs: "
                    + "\(error); run the restore again")
        }
        return summary
    }

    /// Puts back the times `info` had (creating and removing the stage changed the directory's mtime).
    private static func restoreTimes(of fd: Int32, from info: stat) {
        let times = [info.st_atim, info.st_mtim]
        _ = futimens(fd, times)
    }

    private static func stagingHint(_ code: Int32) -> String {
        switch code {
        case EROFS: return "; the directory is mounted read-only: mount it read-write for the restore"
        case ENOSPC, EDQUOT: return "; free some space on its file system"
        default: return ""
        }
    }

    /// Extracts every entry below the top one into the working directory; returns the top entry (a copy).
    private static func extract(
        from input: Int32, what: String, into summary: inout DiskTarSummary, stageShown: String
    ) throws -> (TarEntry, StagedTreeCheck) {
        let source = InputChunks(fd: input, what: what)
        let reader = try TarReader(next: source.next)
        try reader.open("reading \(what)")
        let disk = try DiskWriter(what: "the staging directory \(stageShown)", consequence: "; nothing was changed")
        var top: (name: [UInt8], entry: TarEntry)?
        var check = StagedTreeCheck()
        try reader.forEachEntry(unreadable: {
            StackVaultError(.archive, "\(what) is unreadable: \($0); nothing was changed")
        }) { entry in
            try withLibArchiveUTF8Locale {
                top = try extractEntry(entry, top: top, reader: reader, disk: disk, into: &summary, check: &check,
                                       what: what)
            }
            return true
        }
        if let error = reader.sourceError { throw error }
        try source.drain()
        guard let top else {
            throw StackVaultError(.archive, "\(what) holds no entries; nothing was changed")
        }
        guard source.endsWithEndOfArchive else {
            throw StackVaultError(
                .archive,
                "\(what) ended without tar's end-of-archive blocks after \(summary.entries) entries: the stream was "
                    + "cut short (did the sender stop?); nothing was changed, run the restore again")
        }
        if let warning = try disk.close() { summary.warn(warning) }
        summary.tarBytes = source.total
        return (top.entry, check)
    }

    /// Extracts one entry (or keeps the top one); returns the top entry's name and copy.
    private static func extractEntry(
        _ entry: TarEntry, top: (name: [UInt8], entry: TarEntry)?, reader: TarReader, disk: DiskWriter,
        into summary: inout DiskTarSummary, check: inout StagedTreeCheck, what: String
    ) throws -> (name: [UInt8], entry: TarEntry) {
        guard let path = entry.path else {
            throw StackVaultError(.archive, "\(what) has an entry without a name; nothing was changed")
        }
        let shown = ArchivePath.display(path)
        if let problem = ArchivePath.problem(path) {
            throw StackVaultError(.archive, "refusing \(what): its entry '\(shown)' \(problem); nothing was changed")
        }
        let parts = ArchivePath.components(path)
        summary.entries += 1
        summary.count(entry)
        guard let top else {
            guard parts.count == 1, entry.fileType & TarFileType.mask == TarFileType.directory else {
                throw StackVaultError(
                    .archive,
                    "refusing \(what): its first entry '\(shown)' is not the top directory of a tree; nothing was "
                        + "changed")
            }
            return (parts[0], try TarEntry(cloning: entry))
        }
        guard parts[0] == top.name, parts.count > 1 else {
            throw StackVaultError(
                .archive,
                "refusing \(what): its entry '\(shown)' is outside its top directory "
                    + "'\(ArchivePath.display(top.name))'; nothing was changed")
        }
        let relative = ArchivePath.join(parts.dropFirst())
        entry.setPath(relative)
        check.record(entry, at: relative)
        if let hardlink = entry.hardlink {
            let targetParts = ArchivePath.components(hardlink)
            guard ArchivePath.problem(hardlink) == nil, targetParts.count > 1, targetParts[0] == top.name else {
                throw StackVaultError(
                    .archive,
                    "refusing \(what): the hard link '\(shown)' points outside the tree to "
                        + "'\(ArchivePath.display(hardlink))'; nothing was changed")
            }
            entry.setHardlink(ArchivePath.join(targetParts.dropFirst()))
            summary.hardlinks += 1
        }
        if archive_entry_sparse_count(entry.pointer) > 0 { summary.sparseFiles += 1 }
        if let warning = try disk.writeHeader(entry, shown: shown) { summary.warn("\(shown): \(warning)") }
        if entry.size > 0 {
            summary.dataBytes += try disk.copyData(from: reader, shown: shown, what: what)
        }
        if let warning = try disk.finishEntry(shown: shown) { summary.warn("\(shown): \(warning)") }
        return top
    }

    /// Gives the target directory the top entry's mode, owner, times, xattrs and ACLs.
    ///
    /// libarchive (3.6) does not set a default ACL on a directory that already exists, and the target must stay
    /// (it may be a mount point). So the top entry is extracted as a new, empty scratch directory inside the target
    /// (after the target's own xattrs and ACLs are removed, so that it inherits nothing), and the kernel's result
    /// is copied over: its extended attributes as they are (`system.posix_acl_*` included), owner, mode (after the
    /// ACLs, so the ACL mask stays what it was), then, once the scratch directory is gone, its times.
    private static func applyTopEntry(
        _ top: TarEntry, to target: Int32, shown: String, scratch: [UInt8], into summary: inout DiskTarSummary
    ) throws {
        let scratchShown = "\(shown)/\(String(decoding: scratch, as: UTF8.self))"
        try clearExtendedAttributes(of: target, shown: shown)
        let workingDirectory = WorkingDirectory()
        defer { workingDirectory.restore() }
        try syscall("fchdir", path: shown, failing: "cannot enter \(shown)") { fchdir(target) }
        top.setPath(scratch)
        let disk = try DiskWriter(what: shown, consequence: "")
        var created = false
        defer { if created { try? DirectoryTree.remove(scratch, in: target, shown: scratchShown) } }
        try withLibArchiveUTF8Locale {
            let warning = try disk.writeHeader(top, shown: shown)
            created = true
            if let warning { summary.warn("\(shown): \(warning)") }
            if let warning = try disk.finishEntry(shown: shown) { summary.warn("\(shown): \(warning)") }
        }
        try disk.close()
        workingDirectory.restore()

        let scratchFD = try DirectoryTree.openDirectory(scratch, in: target, shown: scratchShown)
        defer { close(scratchFD) }
        var info = stat()
        try syscall("fstat", path: scratchShown, failing: "cannot examine \(scratchShown)") { fstat(scratchFD, &info) }
        try syscall("fchown", path: shown, failing: "cannot set the owner of \(shown)") {
            fchown(target, info.st_uid, info.st_gid)
        }
        for name in try extendedAttributeNames(of: scratchFD, shown: scratchShown) where name != "security.selinux" {
            let value = try extendedAttribute(name, of: scratchFD, shown: scratchShown)
            try syscall("fsetxattr", path: shown, failing: "cannot set the extended attribute \(name) of \(shown)") {
                value.withUnsafeBytes { fsetxattr(target, name, $0.baseAddress, $0.count, 0) }
            }
        }
        try syscall("fchmod", path: shown, failing: "cannot set the mode of \(shown)") {
            fchmod(target, info.st_mode & 0o7777)
        }
        created = false
        try DirectoryTree.remove(scratch, in: target, shown: scratchShown)
        let times = [info.st_atim, info.st_mtim]
        try syscall("futimens", path: shown, failing: "cannot set the times of \(shown)") {
            futimens(target, times)
        }
    }

    /// The names of the extended attributes of `fd`.
    private static func extendedAttributeNames(of fd: Int32, shown: String) throws -> [String] {
        let failing = "cannot list the extended attributes of \(shown)"
        let size = try syscall("flistxattr", path: shown, failing: failing) {
            flistxattr(fd, UnsafeMutablePointer<CChar>?.none, 0)
        }
        guard size > 0 else { return [] }
        var names = [CChar](repeating: 0, count: size)
        let count = try syscall("flistxattr", path: shown, failing: failing) { flistxattr(fd, &names, names.count) }
        return names[0..<count].split(separator: 0).map {
            String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The value of the extended attribute `name` of `fd`.
    private static func extendedAttribute(_ name: String, of fd: Int32, shown: String) throws -> [UInt8] {
        let failing = "cannot read the extended attribute \(name) of \(shown)"
        let size = try syscall("fgetxattr", path: shown, failing: failing) {
            fgetxattr(fd, name, UnsafeMutableRawPointer?.none, 0)
        }
        var value = [UInt8](repeating: 0, count: size)
        let count = try syscall("fgetxattr", path: shown, failing: failing) {
            value.withUnsafeMutableBytes { fgetxattr(fd, name, $0.baseAddress, $0.count) }
        }
        return Array(value[0..<count])
    }

    /// Removes the target's extended attributes and ACLs (not other `system.*` attributes), so that the top
    /// entry's are all it has afterwards.
    private static func clearExtendedAttributes(of fd: Int32, shown: String) throws {
        for name in try extendedAttributeNames(of: fd, shown: shown) {
            if name == "security.selinux" { continue }
            if name.hasPrefix("system.") && name != "system.posix_acl_access" && name != "system.posix_acl_default" {
                continue
            }
            if fremovexattr(fd, name) != 0 && errno != ENODATA {
                throw StackVaultError(SystemCallError(call: "fremovexattr", path: shown, errno: errno),
                                      failing: "cannot remove the extended attribute \(name) of \(shown)")
            }
        }
    }

    /// Moves the old entries of `target` into `old` and the staged ones up; moves everything back on failure.
    private static func swap(
        in target: Int32, shown: String, stage: (name: [UInt8], shown: String), old: (name: [UInt8], shown: String)
    ) throws {
        try DirectoryTree.withCName(old.name) { cName in
            _ = try syscall("mkdirat", path: old.shown, failing: "cannot create \(old.shown)") {
                mkdirat(target, cName, 0o700)
            }
        }
        let oldFD = try DirectoryTree.openDirectory(old.name, in: target, shown: old.shown)
        defer { close(oldFD) }
        let stageFD = try DirectoryTree.openDirectory(stage.name, in: target, shown: stage.shown)
        defer { close(stageFD) }
        var movedOut: [[UInt8]] = []
        var movedIn: [[UInt8]] = []
        do {
            for entry in try DirectoryTree.entries(of: target, shown: shown)
            where entry.name != stage.name && entry.name != old.name {
                try DirectoryTree.move(entry.name, from: target, to: oldFD,
                                       shown: "\(shown)/\(ArchivePath.display(entry.name))")
                movedOut.append(entry.name)
            }
            for entry in try DirectoryTree.entries(of: stageFD, shown: stage.shown) {
                try DirectoryTree.move(entry.name, from: stageFD, to: target,
                                       shown: "\(stage.shown)/\(ArchivePath.display(entry.name))")
                movedIn.append(entry.name)
            }
            try DirectoryTree.withCName(stage.name) { cName in
                _ = try syscall("unlinkat", path: stage.shown, failing: "cannot remove \(stage.shown)") {
                    unlinkat(target, cName, AT_REMOVEDIR)
                }
            }
        } catch {
            var stuck: [String] = []
            for name in movedIn.reversed() {
                do {
                    try DirectoryTree.move(name, from: target, to: stageFD, shown: ArchivePath.display(name))
                } catch {
                    stuck.append(ArchivePath.display(name))
                }
            }
            for name in movedOut.reversed() {
                do {
                    try DirectoryTree.move(name, from: oldFD, to: target, shown: ArchivePath.display(name))
                } catch {
                    stuck.append(ArchivePath.display(name))
                }
            }
            if stuck.isEmpty {
                try? DirectoryTree.remove(stage.name, in: target, shown: stage.shown)
                try? DirectoryTree.remove(old.name, in: target, shown: old.shown)
                throw StackVaultError(
                    .restoreFailed,
                    "swapping the restored content into \(shown) failed: \(error); the old content was put back "
                        + "(a mount point inside the directory cannot be moved: label it as a path of its own)")
            }
            throw StackVaultError(
                .restoreFailed,
                "swapping the restored content into \(shown) failed: \(error), and putting the old content back "
                    + "failed for \(stuck.prefix(5).joined(separator: ", ")): the old content is in \(old.shown), "
                    + "the restored one in \(stage.shown); move them by hand")
        }
    }
}

/// Saves the process's working directory and goes back to it.
private final class WorkingDirectory {
    private let fd: Int32

    init() {
        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    func restore() {
        if fd < 0 || fchdir(fd) != 0 { _ = chdir("/") }
    }
}

/// Reads the input descriptor in 1 MiB chunks for ``TarReader``; keeps the stream's last 1,024 bytes.
private final class InputChunks {
    let fd: Int32
    let what: String
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    private var tail: [UInt8] = []
    private(set) var total: Int64 = 0

    init(fd: Int32, what: String) {
        self.fd = fd
        self.what = what
    }

    deinit {
        buffer.deallocate()
    }

    func next() throws -> UnsafeRawBufferPointer? {
        let count = try FileDescriptorIO.read(fd, into: buffer, what: what)
        if count == 0 { return nil }
        total += Int64(count)
        let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
        tail = count >= 1024 ? Array(chunk.suffix(1024)) : Array((tail + chunk).suffix(1024))
        return chunk
    }

    /// Reads what libarchive left after the end-of-archive blocks (record padding).
    func drain() throws {
        while try next() != nil {}
    }

    /// True when the stream ended with two zero blocks (tar's end-of-archive marker; GNU tar's record padding
    /// is zeros too). libarchive alone cannot tell a stream cut at an entry boundary from a complete one.
    var endsWithEndOfArchive: Bool {
        tail.count == 1024 && tail.allSatisfy { $0 == 0 }
    }
}

/// One `archive_write_disk` handle with the extractor's flags, relative to the working directory.
private final class DiskWriter {
    private let disk: OpaquePointer
    private let what: String
    /// Appended to error messages: what the failure leaves behind ("; nothing was changed").
    private let consequence: String

    init(what: String, consequence: String) throws {
        guard let disk = archive_write_disk_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a disk writer (out of memory?)")
        }
        self.disk = disk
        self.what = what
        self.consequence = consequence
        // No user/group name lookup: owners are numeric, as in the source container.
        try archiveCheck(archive_write_disk_set_options(disk, DiskTarExtractor.flags), disk, "extracting into \(what)")
    }

    deinit {
        archive_write_free(disk)
    }

    func writeHeader(_ entry: TarEntry, shown: String) throws -> String? {
        try check(archive_write_header(disk, entry.pointer), "extracting '\(shown)'")
    }

    /// Writes the current entry's data, sparse holes as seeks; returns the data bytes.
    func copyData(from reader: TarReader, shown: String, what source: String) throws -> Int64 {
        var written: Int64 = 0
        while true {
            switch reader.nextDataBlock() {
            case .end:
                return written
            case .failed:
                throw StackVaultError(
                    .archive,
                    "\(source) broke off in the entry '\(shown)': \(reader.errorMessage); nothing was changed, "
                        + "run the restore again")
            case .data(let block, let offset):
                let status = archive_write_data_block(disk, block.baseAddress, block.count, offset)
                if status < Int(ARCHIVE_WARN) {
                    throw StackVaultError(.io, "writing the content of '\(shown)' into \(what) failed: "
                                          + "\(archiveErrorString(disk))\(consequence)")
                }
                written += Int64(block.count)
            }
        }
    }

    func finishEntry(shown: String) throws -> String? {
        try check(archive_write_finish_entry(disk), "finishing '\(shown)'")
    }

    /// Applies the deferred directory modes, times and ACLs.
    /// Applies the directories' deferred modes, times and ACLs; returns libarchive's warning, if any.
    func close() throws -> String? {
        try check(archive_write_close(disk), "setting the directories' modes, times and ACLs in \(what)")
    }

    private func check(_ status: Int32, _ doing: String) throws -> String? {
        if status == ARCHIVE_OK { return nil }
        if status == ARCHIVE_WARN { return archiveErrorString(disk) }
        throw StackVaultError(.io, "\(doing) failed: \(archiveErrorString(disk))\(consequence)")
    }
}
