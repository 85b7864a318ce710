internal import CArchive
import Foundation

/// Reads a directory from disk into a PAX tar stream with libarchive's disk reader (`archive_read_disk`): what the
/// helper container runs for a backup (`stackvault helper tar-create <dir>`).
///
/// The stream holds what the Docker Engine's archive API (`GET /containers/{id}/archive?path=/a/b`) would, named
/// the same way (the top entry `b/`, the rest `b/...`, `b` being the last component of the path *as given*), so
/// `ArchiveWriter.addTar` re-roots it unchanged, plus what that API loses:
/// - symbolic links stored as links, never followed (physical walk), even when they point outside the tree;
/// - hard links as hard-link entries (`archive_entry_linkresolver`, tar strategy: data with the first name);
/// - extended attributes of every namespace the process can read (`user.*`, `security.*`, `trusted.*`) as
///   `LIBARCHIVE.xattr.*`, POSIX access and default ACLs as `SCHILY.acl.access` / `SCHILY.acl.default`;
/// - sparse files as sparse entries (PAX `GNU.sparse` 1.0: only the data regions are stored; holes found with
///   `SEEK_HOLE` / `SEEK_DATA`); files under 64 KiB are stored whole without a search for holes;
/// - character and block devices and FIFOs, with numeric owners only (no user or group names: those of the
///   helper's image would be wrong for the target's files).
///
/// Left out: sockets (tar cannot hold them; counted in ``DiskTarSummary/skippedSockets``), the content of other
/// file systems mounted below the path (the mount point is stored as an empty directory and listed in
/// ``DiskTarSummary/skippedMountPoints``; such mounts are labelled as paths of their own, and a restore refuses
/// nested mounts anyway), and file flags (`chattr`: immutable files would block the next restore, and setting
/// them needs `CAP_LINUX_IMMUTABLE`).
///
/// libarchive's disk walk changes the process's working directory while it runs (`fchdir` into each directory,
/// so that no path length limit applies) and restores it at the end: run it in a process of its own (the helper),
/// not beside other threads that use relative paths.
public enum DiskTarReader {
    /// Regular files smaller than this are stored whole, without looking for holes: a hole in them saves at most
    /// this much, and the search costs six `lseek` calls per file.
    static let denseBelow: Int64 = 64 << 10

    /// Writes the PAX tar of the directory `path` (symlinks in `path` itself resolved) into `sink`; returns what
    /// was stored. Throws ``StackVaultError`` naming the path and the entry when anything cannot be read.
    public static func write(directory path: String, into sink: any ByteSink) throws -> DiskTarSummary {
        let resolved = try DiskTar.resolveDirectory(path, doing: "reading")
        let top = Array(DiskTar.topName(path, resolved: resolved).utf8)
        var summary = DiskTarSummary(operation: "tar-create", path: path, resolvedPath: resolved)
        let counting = CountingSink(sink)
        let writer = try TarStreamWriter(sink: counting, what: "the tar stream of '\(resolved)'")
        let walk = try DiskWalk(resolved)
        let entry = try TarEntry()
        let prefix = Array(resolved.utf8)
        var rootDevice: dev_t?

        var tooDeep = 0
        var firstTooDeep: String?
        while let status = try walk.next(into: entry) {
            let diskPath = entry.path ?? []
            let relative = diskPath.count > prefix.count ? Array(diskPath[(prefix.count + 1)...]) : []
            // A restore extracts relative to its staging directory: beyond PATH_MAX libarchive drops owners and times.
            if relative.count >= Int(PATH_MAX) {
                tooDeep += 1
                if firstTooDeep == nil { firstTooDeep = ArchivePath.display(relative) }
            }
            // Names for messages are built only when one is needed (100,000 small files make it count).
            let shownRelative = { relative.isEmpty ? "." : ArchivePath.display(relative) }
            let shown = { "\(resolved)/\(shownRelative())" }
            if let warning = status.warning { summary.warn("\(shownRelative()): \(warning)") }
            if DiskTar.isRestoreScratch(relative) {
                // Not descended into: none of it is the application's data.
                summary.warn("\(shownRelative()): left out: the scratch directory of a restore of this path that was "
                    + "interrupted (dockerd or the host went down mid-restore); the next restore removes it, or remove "
                    + "it by hand")
                continue
            }
            let type = entry.fileType & TarFileType.mask
            if type == TarFileType.socket {
                summary.skippedSockets += 1
                if summary.skippedSocketPaths.count < DiskTarSummary.listLimit {
                    summary.skippedSocketPaths.append(shownRelative())
                }
                continue
            }
            if type == TarFileType.directory {
                let device = archive_entry_dev(entry.pointer)
                if rootDevice == nil { rootDevice = device }
                if device != rootDevice {
                    if summary.skippedMountPoints.count < DiskTarSummary.listLimit {
                        summary.skippedMountPoints.append(shownRelative())
                    }
                } else {
                    walk.descend()
                }
            }
            entry.setPath(relative.isEmpty ? top : top + [ArchivePath.slash] + relative)
            walk.linkify(entry)
            let isHardlink = entry.hardlink != nil
            if isHardlink { summary.hardlinks += 1 }
            if archive_entry_sparse_count(entry.pointer) > 0 && !isHardlink { summary.sparseFiles += 1 }
            summary.count(entry)
            if let warning = try writer.writeHeader(entry, shown: shown()), !warning.contains("to UTF-8") {
                summary.warn("\(shownRelative()): \(warning)")
            }
            if type == TarFileType.regular && !isHardlink && entry.size > 0 {
                if archive_entry_sparse_count(entry.pointer) > 0 { try writer.writeSparseMap(shown: shown()) }
                summary.dataBytes += try walk.copyData(into: writer, shown: shown)
            }
            try writer.finishEntry(shown: shown())
            summary.entries += 1
        }
        if let firstTooDeep {
            summary.warn("\(tooDeep) entr\(tooDeep == 1 ? "y lies" : "ies lie") at paths of 4,096 bytes or more "
                + "below the directory (such as ...\(firstTooDeep.suffix(200))): they are archived, but a restore "
                + "cannot set their owners and times there and refuses the whole directory; move them up")
        }
        try writer.finish()
        summary.tarBytes = counting.count
        return summary
    }

    /// Writes the PAX tar of `path` to the file descriptor `fd` (not closed), buffered in 1 MiB writes.
    public static func write(directory path: String, toFileDescriptor fd: Int32, what: String) throws
        -> DiskTarSummary
    {
        let file = ArchiveFileSink(fd: fd, what: what)
        let summary = try write(directory: path, into: file)
        try file.flush()
        return summary
    }
}

extension TarFileType {
    static let socket: UInt32 = 0o140000
}

/// libarchive's tar format code for restricted PAX (`ARCHIVE_FORMAT_TAR_PAX_RESTRICTED`), the link resolver's
/// strategy.
private let paxRestrictedFormat: Int32 = 0x30003

/// The disk walk's behaviour: other file systems not entered, file flags not read.
private let walkBehavior = ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS | ARCHIVE_READDISK_NO_FFLAGS


/// One `archive_read_disk` walk over a directory, with the hard-link resolver for its entries.
private final class DiskWalk {
    struct Status {
        var warning: String?
    }

    private let disk: OpaquePointer
    private let resolver: OpaquePointer
    private let root: String

    init(_ root: String) throws {
        guard let disk = archive_read_disk_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate a disk reader (out of memory?)")
        }
        self.disk = disk
        self.root = root
        guard let resolver = archive_entry_linkresolver_new() else {
            archive_read_free(disk)
            throw StackVaultError(.archive, "libarchive: cannot allocate a link resolver (out of memory?)")
        }
        self.resolver = resolver
        archive_entry_linkresolver_set_strategy(resolver, paxRestrictedFormat)
        // Physical walk: symlinks are stored as links. No user/group name lookup: numeric owners only.
        try archiveCheck(archive_read_disk_set_symlink_physical(disk), disk, "reading '\(root)' (symlink mode)")
        try archiveCheck(archive_read_disk_set_behavior(disk, walkBehavior), disk, "reading '\(root)' (behaviour)")
        // Called with each entry's stat before libarchive reads its xattrs, ACLs and sparse map: files too small to
        // gain from holes skip the hole search (six lseek calls per file).
        archive_read_disk_set_metadata_filter_callback(disk, { archive, _, entry in
            guard let archive, let entry else { return 1 }
            let dense = UInt32(archive_entry_filetype(entry)) == TarFileType.regular
                && archive_entry_size(entry) < DiskTarReader.denseBelow
            archive_read_disk_set_behavior(archive, walkBehavior | (dense ? ARCHIVE_READDISK_NO_SPARSE : 0))
            return 1
        }, nil)
        let opened = withLibArchiveUTF8Locale { archive_read_disk_open(disk, root) }
        if opened != ARCHIVE_OK {
            throw StackVaultError(.io, "cannot read the directory '\(root)': \(archiveErrorString(disk))")
        }
    }

    deinit {
        archive_read_close(disk)
        archive_read_free(disk)
        archive_entry_linkresolver_free(resolver)
    }

    /// Reads the next entry's metadata into `entry`; nil at the end. A file that cannot be read is an error.
    func next(into entry: TarEntry) throws -> Status? {
        let status = withLibArchiveUTF8Locale { archive_read_next_header2(disk, entry.pointer) }
        switch status {
        case ARCHIVE_EOF:
            return nil
        case ARCHIVE_OK:
            return Status()
        case ARCHIVE_WARN:
            return Status(warning: archiveErrorString(disk))
        default:
            let name = entry.path.map(ArchivePath.display) ?? root
            throw StackVaultError(
                .io,
                "cannot read '\(name)' while reading the directory '\(root)': \(archiveErrorString(disk)); "
                    + "check that the helper runs as root and that nothing changes the directory during the backup")
        }
    }

    /// Walks into the directory just read.
    func descend() {
        archive_read_disk_descend(disk)
    }

    /// Marks `entry` as a hard link to an earlier entry with the same inode (size 0), or remembers it.
    func linkify(_ entry: TarEntry) {
        var current: OpaquePointer? = entry.pointer
        var spare: OpaquePointer?
        archive_entry_linkify(resolver, &current, &spare)
        // The tar strategy changes the entry in place and never returns a spare entry.
        if let spare { archive_entry_free(spare) }
    }

    /// Copies the current file's data regions into `writer`; returns the bytes read. Holes of a sparse entry are
    /// passed as zeros, which libarchive's PAX writer drops (it stores only the map's data regions).
    func copyData(into writer: TarStreamWriter, shown: () -> String) throws -> Int64 {
        var progress: Int64 = 0
        var read: Int64 = 0
        while true {
            var block: UnsafeRawPointer?
            var count = 0
            var offset: Int64 = 0
            let status = archive_read_data_block(disk, &block, &count, &offset)
            if status == ARCHIVE_EOF { return read }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw StackVaultError(.io, "cannot read the content of '\(shown())': \(archiveErrorString(disk))")
            }
            while progress < offset {
                let hole = Int(min(Int64(zeroBytes.count), offset - progress))
                try writer.writeData(UnsafeRawBufferPointer(rebasing: zeroBytes[0..<hole]), shown: shown())
                progress += Int64(hole)
            }
            if count > 0, let block {
                try writer.writeData(UnsafeRawBufferPointer(start: block, count: count), shown: shown())
                progress += Int64(count)
                read += Int64(count)
            }
        }
    }
}

/// Counts the bytes passed on to another sink.
private final class CountingSink: ByteSink {
    let next: any ByteSink
    private(set) var count: Int64 = 0

    init(_ next: any ByteSink) {
        self.next = next
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try next.write(bytes)
        count += Int64(bytes.count)
    }
}
