import Foundation

/// The size of a directory tree without reading any file: what `stackvault helper size <dir>` reports, the total of
/// a copy's progress lines (an estimate: the tree may change before the copy reads it).
///
/// The walk is the copy's (``DiskTarReader``): physical (symbolic links not followed), other file systems mounted
/// below not entered, a hard-linked file counted once. One `fstatat` per entry, no data read.
public enum DirectorySize {
    /// Walks `path` (a symlink to a directory is resolved, as the copy does). The summary's `entries` counts every
    /// entry, the top directory included; `dataBytes` the sizes of regular files as the manifest's `sizeBytes`
    /// counts them (a file that the copy stores sparse, at least ``DiskTarReader/denseBelow`` bytes, by its allocated
    /// blocks: about its data regions, not its holes); `tarBytes` is left 0.
    ///
    /// - Throws: `StackVaultError` naming the call and path when the directory cannot be opened or read.
    public static func measure(directory path: String) throws -> DiskTarSummary {
        guard let resolvedC = realpath(path, nil) else {
            throw StackVaultError(SystemCallError(call: "realpath", path: path, errno: errno),
                                  failing: "cannot measure \(path)")
        }
        let resolved = String(cString: resolvedC)
        free(resolvedC)
        var summary = DiskTarSummary(operation: "size", path: path, resolvedPath: resolved)
        let top = try syscall("open", path: resolved, failing: "cannot measure \(resolved)") {
            open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { close(top) }
        var info = stat()
        _ = try syscall("fstat", path: resolved, failing: "cannot measure \(resolved)") { fstat(top, &info) }
        var walk = Walk(device: info.st_dev)
        try walk.measure(top, shown: resolved)
        summary.entries = walk.entries + 1
        summary.dataBytes = walk.bytes
        return summary
    }

    private struct Walk {
        let device: dev_t
        var entries = 0
        var bytes: Int64 = 0
        var seen = Set<[UInt64]>()

        mutating func measure(_ directory: Int32, shown: String) throws {
            for entry in try DirectoryTree.entries(of: directory, shown: shown) {
                let name = "\(shown)/\(ArchivePath.display(entry.name))"
                var info = stat()
                let found = DirectoryTree.withCName(entry.name) { fstatat(directory, $0, &info, AT_SYMLINK_NOFOLLOW) } == 0
                guard found else { continue }  // removed since it was listed
                entries += 1
                switch info.st_mode & S_IFMT {
                case S_IFREG:
                    if info.st_nlink > 1, !seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted {
                        continue
                    }
                    let size = Int64(info.st_size)
                    bytes += size < DiskTarReader.denseBelow ? size : min(size, Int64(info.st_blocks) * 512)
                case S_IFDIR where info.st_dev == device:
                    let child = try DirectoryTree.openDirectory(entry.name, in: directory, shown: name)
                    defer { close(child) }
                    try measure(child, shown: name)
                default:
                    continue
                }
            }
        }
    }
}
