import Foundation

/// Directory operations relative to an open directory descriptor (`openat`, `renameat`, `unlinkat`): no path is
/// ever built, so depth and path length are no limit, and symbolic links are never followed.
///
/// Names are raw bytes (Linux file names need not be UTF-8). Every failure is a ``StackVaultError`` made by
/// ``syscall(_:path:_:failing:hint:_:)``, naming the call, the path (as `shown`) and errno.
package enum DirectoryTree {
    /// One entry of a directory: its name and whether it is a directory (not following a symlink).
    package struct Entry {
        package var name: [UInt8]
        package var isDirectory: Bool
    }

    /// The entries of the directory `fd` (`.` and `..` left out), in directory order. `shown` names it for messages.
    package static func entries(of fd: Int32, shown: String) throws -> [Entry] {
        let copy = try syscall("dup", path: shown, failing: "cannot read the directory \(shown)") { dup(fd) }
        guard let stream = fdopendir(copy) else {
            let code = errno
            close(copy)
            throw StackVaultError(SystemCallError(call: "fdopendir", path: shown, errno: code),
                                  failing: "cannot read the directory \(shown)")
        }
        defer { closedir(stream) }
        rewinddir(stream)  // the duplicate shares the offset of `fd`, which an earlier listing may have moved
        var result: [Entry] = []
        while true {
            errno = 0
            guard let record = readdir(stream) else {
                if errno != 0 {
                    throw StackVaultError(SystemCallError(call: "readdir", path: shown, errno: errno),
                                          failing: "cannot read the directory \(shown)")
                }
                return result
            }
            let name = withUnsafeBytes(of: record.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            var isDirectory = record.pointee.d_type == UInt8(DT_DIR)
            if record.pointee.d_type == UInt8(DT_UNKNOWN) {
                var info = stat()
                try withCName(name) { cName in
                    _ = try syscall("fstatat", path: "\(shown)/\(ArchivePath.display(name))",
                                    failing: "cannot read the directory \(shown)") {
                        fstatat(fd, cName, &info, AT_SYMLINK_NOFOLLOW)
                    }
                }
                isDirectory = info.st_mode & S_IFMT == S_IFDIR
            }
            result.append(Entry(name: name, isDirectory: isDirectory))
        }
    }

    /// Opens the directory `name` in `parent` without following a symlink (`O_DIRECTORY | O_NOFOLLOW`).
    package static func openDirectory(_ name: [UInt8], in parent: Int32, shown: String) throws -> Int32 {
        try withCName(name) { cName in
            try syscall("openat", path: shown, failing: "cannot open the directory \(shown)") {
                openat(parent, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
        }
    }

    /// Renames `name` in the directory `from` to the same name in the directory `to` (same file system).
    package static func move(_ name: [UInt8], from: Int32, to: Int32, shown: String) throws {
        try withCName(name) { cName in
            _ = try syscall("renameat", path: shown, failing: "cannot move \(shown)") {
                renameat(from, cName, to, cName)
            }
        }
    }

    /// Removes `name` in the directory `parent` and, for a directory, everything below it, depth first, without
    /// following symlinks and holding at most two descriptors open however deep the tree is (each level is read
    /// once; its subdirectories are kept by name). `shown` is the tree's path for messages.
    package static func remove(_ name: [UInt8], in parent: Int32, shown: String) throws {
        var info = stat()
        try withCName(name) { cName in
            _ = try syscall("fstatat", path: shown, failing: "cannot remove \(shown)") {
                fstatat(parent, cName, &info, AT_SYMLINK_NOFOLLOW)
            }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            try unlink(name, in: parent, directory: false, shown: shown)
            return
        }
        // One level per open directory: its name, and the subdirectories still to remove.
        var levels: [(name: [UInt8], pending: [[UInt8]])] = []
        var fd = try openDirectory(name, in: parent, shown: shown)
        defer { if fd >= 0 { close(fd) } }
        levels.append((name, try clearFiles(in: fd, shown: shown)))
        while !levels.isEmpty {
            if let child = levels[levels.count - 1].pending.popLast() {
                let childFD = try openDirectory(child, in: fd, shown: shown)
                close(fd)
                fd = childFD
                levels.append((child, try clearFiles(in: fd, shown: shown)))
                continue
            }
            let level = levels.removeLast()
            if levels.isEmpty {
                close(fd)
                fd = -1
                try unlink(level.name, in: parent, directory: true, shown: shown)
            } else {
                let up = try syscall("openat", path: shown, failing: "cannot remove \(shown)") {
                    openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                }
                close(fd)
                fd = up
                try unlink(level.name, in: fd, directory: true, shown: shown)
            }
        }
    }

    /// Unlinks every non-directory in `fd`; returns the names of its subdirectories.
    private static func clearFiles(in fd: Int32, shown: String) throws -> [[UInt8]] {
        var directories: [[UInt8]] = []
        for entry in try entries(of: fd, shown: shown) {
            if entry.isDirectory {
                directories.append(entry.name)
            } else {
                try unlink(entry.name, in: fd, directory: false, shown: shown)
            }
        }
        return directories
    }

    private static func unlink(_ name: [UInt8], in parent: Int32, directory: Bool, shown: String) throws {
        try withCName(name) { cName in
            _ = try syscall(directory ? "unlinkat(AT_REMOVEDIR)" : "unlinkat", path: shown,
                            failing: "cannot remove \(shown)") {
                unlinkat(parent, cName, directory ? AT_REMOVEDIR : 0)
            }
        }
    }

    /// Calls `body` with `name` as a NUL-terminated C string.
    package static func withCName<Result>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws -> Result) rethrows
        -> Result
    {
        try (name + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
