import Foundation

/// The check a restore makes of its staging directory before the swap (``DiskTarExtractor``): every entry it
/// extracted is there, with the archive's type, owner and permission bits. libarchive does not always say when it
/// could not apply them (below a path longer than `PATH_MAX`, owners and the deferred directory times are dropped
/// without a warning), and a swap would then put back less than the archive holds.
///
/// Permission bits are not compared for symbolic links (Linux has none) nor for entries with a POSIX ACL (`stat`
/// shows the ACL mask as the group bits, the archive the owning group's). Hard links are checked through the file
/// they name. The walk holds at most two directory descriptors open, however deep the tree.
struct StagedTreeCheck {
    /// What an extracted entry must look like on disk.
    struct Expected {
        /// The `S_IFMT` bits.
        var type: UInt32
        /// `mode & 0o7777`, nil when not compared.
        var permissions: UInt32?
        var uid: Int64
        var gid: Int64
    }

    private(set) var expected: [[UInt8]: Expected] = [:]

    /// Records `entry`, to be found at `path` (relative to the stage) after the extraction.
    mutating func record(_ entry: TarEntry, at path: [UInt8]) {
        guard entry.hardlink == nil else { return }
        let type = entry.fileType & TarFileType.mask
        let skipPermissions = type == TarFileType.symlink || entry.hasACL
        expected[path] = Expected(type: type, permissions: skipPermissions ? nil : entry.permissions & 0o7777,
                                  uid: entry.uid, gid: entry.gid)
    }

    /// The differences between the tree in `stage` and what was recorded: one line each (`a/b: owner 0:0, the
    /// archive has 4321:8765`), and their count. Entries on disk that were not recorded are not differences.
    func differences(in stage: Int32, shown: String, limit: Int = 3) throws -> (count: Int, first: [String]) {
        var count = 0
        var first: [String] = []
        var seen = 0
        func report(_ path: [UInt8], _ what: String) {
            count += 1
            // A path can be longer than 4,096 bytes (that is how libarchive comes to drop things): its end says enough.
            let shown = ArchivePath.display(path)
            let short = shown.count > 240 ? "..." + shown.suffix(240) : shown
            if first.count < limit { first.append("\(short): \(what)") }
        }
        // One level per open directory: its path and the subdirectories still to visit.
        var fd = try syscall("dup", path: shown, failing: "cannot check the staging directory \(shown)") { dup(stage) }
        defer { close(fd) }
        var levels: [(path: [UInt8], pending: [[UInt8]])] = []
        func visit(_ directory: Int32, path: [UInt8]) throws -> [[UInt8]] {
            var subdirectories: [[UInt8]] = []
            for entry in try DirectoryTree.entries(of: directory, shown: shown) {
                let entryPath = path.isEmpty ? entry.name : path + [ArchivePath.slash] + entry.name
                var info = stat()
                let found = DirectoryTree.withCName(entry.name) {
                    fstatat(directory, $0, &info, AT_SYMLINK_NOFOLLOW)
                } == 0
                guard found, let wanted = expected[entryPath] else { continue }
                seen += 1
                let type = UInt32(info.st_mode & S_IFMT)
                if type != wanted.type {
                    report(entryPath, "type \(String(type, radix: 8)), the archive has \(String(wanted.type, radix: 8))")
                } else if Int64(info.st_uid) != wanted.uid || Int64(info.st_gid) != wanted.gid {
                    report(entryPath, "owner \(info.st_uid):\(info.st_gid), the archive has \(wanted.uid):\(wanted.gid)")
                } else if let permissions = wanted.permissions, UInt32(info.st_mode) & 0o7777 != permissions {
                    report(entryPath, "mode \(String(UInt32(info.st_mode) & 0o7777, radix: 8)), the archive has "
                        + String(permissions, radix: 8))
                }
                if type == UInt32(S_IFDIR) { subdirectories.append(entry.name) }
            }
            return subdirectories
        }
        levels.append(([], try visit(fd, path: [])))
        while !levels.isEmpty {
            if let child = levels[levels.count - 1].pending.popLast() {
                let parentPath = levels[levels.count - 1].path
                let childPath = parentPath.isEmpty ? child : parentPath + [ArchivePath.slash] + child
                let childFD = try DirectoryTree.openDirectory(child, in: fd, shown: shown)
                close(fd)
                fd = childFD
                levels.append((childPath, try visit(fd, path: childPath)))
                continue
            }
            levels.removeLast()
            guard !levels.isEmpty else { break }
            let up = try syscall("openat", path: shown, failing: "cannot check the staging directory \(shown)") {
                openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
            close(fd)
            fd = up
        }
        let missing = expected.count - seen
        if missing > 0 {
            count += missing
            if first.count < limit { first.append("\(missing) entr\(missing == 1 ? "y is" : "ies are") missing") }
        }
        return (count, first)
    }
}
