internal import CArchive
import Foundation

/// What ``DiskTarReader`` stored or ``DiskTarExtractor`` restored: the one-line JSON summary the helper
/// subcommands (`stackvault helper tar-create|tar-extract`) print on stderr when they succeed.
///
/// JSON keys are the property names; absent optionals are left out.
public struct DiskTarSummary: Codable, Sendable, Equatable {
    /// `tar-create` or `tar-extract`.
    public var operation: String
    /// The directory as given on the command line.
    public var path: String
    /// The directory after resolving symbolic links (`realpath`): what was read or replaced.
    public var resolvedPath: String
    /// Tar entries written or extracted, the top directory included (skipped sockets not).
    public var entries: Int = 0
    /// Bytes of file content (the data regions of sparse files only, holes excluded).
    public var dataBytes: Int64 = 0
    /// Bytes of the tar stream written (create) or read (extract).
    public var tarBytes: Int64 = 0
    /// Sockets found and left out (tar cannot hold them).
    public var skippedSockets: Int = 0
    /// The first few skipped sockets (paths relative to the directory).
    public var skippedSocketPaths: [String] = []
    /// Directories below the path on another file system (mount points): stored as empty directories, their
    /// content not read (label them as paths of their own).
    public var skippedMountPoints: [String] = []
    /// Extended attributes stored or restored, over all entries.
    public var xattrs: Int = 0
    /// Entries that carry a POSIX ACL (access or default).
    public var aclEntries: Int = 0
    /// Regular files stored as sparse entries (GNU.sparse 1.0).
    public var sparseFiles: Int = 0
    /// Entries stored as hard links to an earlier entry.
    public var hardlinks: Int = 0
    /// libarchive's warnings (the first few), each naming its entry.
    public var warnings: [String] = []
    /// Extract only: true when the old content was removed after the swap (false: it is left in `leftover`).
    public var oldContentRemoved: Bool?
    /// Extract only: a directory left behind with the old content when removing it failed.
    public var leftover: String?

    public init(operation: String, path: String, resolvedPath: String) {
        self.operation = operation
        self.path = path
        self.resolvedPath = resolvedPath
    }

    /// The summary as one line of JSON (sorted keys, no newline).
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// At most this many paths and warnings are listed.
    static let listLimit = 20

    /// Adds `entry`'s extended attributes (distinct names: libarchive's PAX reader lists each one twice, from its
    /// `LIBARCHIVE.xattr` and `SCHILY.xattr` records) and whether it carries an ACL.
    mutating func count(_ entry: TarEntry) {
        if archive_entry_xattr_count(entry.pointer) > 0 { xattrs += entry.extendedAttributeNames.count }
        if entry.hasACL { aclEntries += 1 }
    }

    mutating func warn(_ message: String) {
        if warnings.count < Self.listLimit { warnings.append(message) }
    }
}

extension DiskTar {
    /// Resolves `path` with `realpath` and checks that it is a directory other than `/`.
    ///
    /// - Parameter doing: what the path is for, for messages ("reading", "restoring into").
    static func resolveDirectory(_ path: String, doing: String) throws -> String {
        guard !path.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "\(doing) a directory needs its path; none was given")
        }
        guard let resolvedPointer = realpath(path, nil) else {
            let failure = SystemCallError(call: "realpath", path: path, errno: errno)
            throw StackVaultError(
                failure, .invalidConfiguration,
                failing: "cannot resolve the directory '\(path)' for \(doing)",
                hint: failure.errno == ENOENT ? "; check that the path exists in this container" : "")
        }
        defer { free(resolvedPointer) }
        let resolved = String(cString: resolvedPointer)
        var info = stat()
        try syscall("stat", path: resolved, .invalidConfiguration, failing: "cannot examine '\(resolved)'") {
            stat(resolved, &info)
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw StackVaultError(
                .invalidConfiguration,
                "'\(path)'\(resolved == path ? "" : " (resolved to '\(resolved)')") is not a directory; "
                    + "\(doing) works on directories only")
        }
        guard resolved != "/" else {
            throw StackVaultError(.invalidConfiguration,
                                  "'\(path)' is the root directory; \(doing) works on a directory below /")
        }
        return resolved
    }

    /// The top entry's name in the tar: the last component of `path` as given ("cur" for "/data/cur/" even when
    /// it is a symlink to "v1", as Docker's archive API names it), or of `resolved` when `path` ends in "." or "..".
    static func topName(_ path: String, resolved: String) -> String {
        let name = (path as NSString).lastPathComponent
        if name.isEmpty || name == "/" || name == "." || name == ".." {
            return (resolved as NSString).lastPathComponent
        }
        return name
    }
}

/// Reading and writing directories on disk as PAX tar streams with full fidelity (libarchive): the code the
/// helper container runs (`stackvault helper tar-create|tar-extract`). See ``DiskTarReader`` and
/// ``DiskTarExtractor``.
public enum DiskTar {
    /// Name prefixes of the scratch entries a restore makes directly inside the directory it replaces: the one
    /// place they are spelled, so that a backup's ``isRestoreScratch`` knows every one.
    enum ScratchPrefix {
        /// ``DiskTarExtractor``'s staging directory.
        static let stage = ".stackvault-stage-"
        /// ``DiskTarExtractor``'s directory for the old content during the swap.
        static let old = ".stackvault-old-"
        /// ``DiskTarExtractor``'s scratch entry for the top entry's metadata.
        static let top = ".stackvault-top-"
        /// `DirectoryReplacement`'s staging directory on the archive-API fallback.
        static let archiveAPIStage = ".stackvault-restore-"
    }

    static let restoreScratchPrefixes = [ScratchPrefix.stage, ScratchPrefix.old, ScratchPrefix.top,
                                         ScratchPrefix.archiveAPIStage].map { Array($0.utf8) }

    /// True when `relative` (a path below the copied directory) is a restore's scratch entry at its top level:
    /// one left there means that restore was interrupted where it could not clean up (dockerd or the host went
    /// down), and a backup leaves it out.
    static func isRestoreScratch(_ relative: [UInt8]) -> Bool {
        !relative.contains(ArchivePath.slash)
            && restoreScratchPrefixes.contains { relative.starts(with: $0) && relative.count > $0.count }
    }
}
