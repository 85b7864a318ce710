public import StackVaultCore
import Foundation

/// `file:///path` (or a plain path): archives in a local directory.
///
/// Archives are written into the directory under a hidden temporary name by the engine and renamed into place,
/// so a partial archive never appears under its final name and no second copy is made.
public struct LocalDirectoryBackend: StorageBackend {
    public let directory: String

    public static let factory = StorageBackendFactory(scheme: "file") { url, _ in
        try LocalDirectoryBackend(url: url)
    }

    public init(directory: String) {
        self.directory = directory
    }

    /// `file:///abs/path`, `file://relative/path` (relative to the working directory) or a plain path.
    public init(url: String) throws {
        var path = url
        if url.lowercased().hasPrefix("file://") { path = String(url.dropFirst("file://".count)) }
        guard !path.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "backup target '\(url)' names no directory")
        }
        if !path.hasPrefix("/") {
            path = FileManager.default.currentDirectoryPath + "/" + path
        }
        self.directory = (path as NSString).standardizingPath
    }

    public var description: String { "file://\(directory)" }
    public var capabilities: StorageCapabilities { StorageCapabilities(isLocalDirectory: true) }
    public var localDirectory: String? { directory }

    /// Creates the directory (mode 0700: archives hold database dumps) if needed.
    public func prepare() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw StackVaultError(.storage, "backup target \(directory) exists but is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw StackVaultError(.storage, "could not create the backup directory \(directory): \(error)")
        }
    }

    public func store(localPath: String, as name: String) async throws -> StoredObject {
        try Self.validate(name)
        try prepare()
        let final = path(of: name)
        if case .failure(let failure) = retryingEINTR("rename", path: final, { rename(localPath, final) }) {
            guard failure.errno == EXDEV else {
                throw StackVaultError(failure, .storage, failing: "could not move the archive into \(final)")
            }
            // Another file system: copy under a temporary name, flush, then rename.
            let temporary = path(of: ".\(name).partial")
            do {
                _ = try? FileManager.default.removeItem(atPath: temporary)
                try Self.copy(localPath, to: temporary)
            } catch {
                _ = try? FileManager.default.removeItem(atPath: temporary)
                throw StackVaultError(.storage, "could not copy the archive into \(directory): \(error)")
            }
            do {
                try syscall("rename", path: final, .storage, failing: "could not move the archive into \(final)") {
                    rename(temporary, final)
                }
            } catch {
                _ = try? FileManager.default.removeItem(atPath: temporary)
                throw error
            }
        }
        try? Self.fsync(path: directory)
        let size = try Self.size(of: final)
        return StoredObject(name: name, sizeBytes: size, lastModified: Date())
    }

    public func list(prefix: String) async throws -> [StoredObject] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        return names.filter { $0.hasPrefix(prefix) && !$0.hasPrefix(".") }.compactMap { name in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path(of: name))
            guard (attributes?[.type] as? FileAttributeType) == .typeRegular else { return nil }
            return StoredObject(name: name, sizeBytes: (attributes?[.size] as? NSNumber)?.int64Value ?? 0,
                                lastModified: attributes?[.modificationDate] as? Date)
        }
    }

    public func read(_ name: String, into sink: any ByteSink) async throws {
        try Self.validate(name)
        try Self.stream(path(of: name), into: sink)
    }

    /// Streams the file at `path` into `sink`, keeping it out of the page cache behind the reader.
    static func stream(_ path: String, into sink: any ByteSink) throws {
        let fd = try syscall("open", path: path, .storage, failing: "cannot read \(path)") {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(fd) }
        let pageCache = PageCacheDropper(reading: fd)
        defer { pageCache.dropAll() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = try FileDescriptorIO.read(fd, into: buffer, what: path)
            if count == 0 { return }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            total += Int64(count)
            pageCache.consumed(upTo: total)
        }
    }

    /// Copies the archive `source` to the new file `destination` (mode 0600) and syncs it; neither stays in the page
    /// cache.
    static func copy(_ source: String, to destination: String) throws {
        let fd = try syscall("open", path: destination, .storage, failing: "cannot create \(destination)") {
            open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        }
        defer { close(fd) }
        let sink = ArchiveFileSink(fd: fd, what: destination)
        try stream(source, into: sink)
        try sink.flush()
        try syscall("fsync", path: destination, .storage, failing: "cannot sync \(destination) to disk") {
            Foundation.fsync(fd)
        }
        try sink.flushAndDropCache()
    }

    public func delete(_ name: String) async throws {
        try Self.validate(name)
        if case .failure(let failure) = retryingEINTR("unlink", path: path(of: name), { unlink(path(of: name)) }),
            failure.errno != ENOENT
        {
            throw StackVaultError(failure, .storage, failing: "could not delete \(path(of: name))")
        }
    }

    func path(of name: String) -> String { directory + "/" + name }

    static func validate(_ name: String) throws {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw StackVaultError(.storage, "'\(name)' is not a valid archive name")
        }
    }

    static func size(of path: String) throws -> Int64 {
        var info = stat()
        try syscall("stat", path: path, .storage, failing: "cannot stat \(path)") { stat(path, &info) }
        return Int64(info.st_size)
    }

    static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = Foundation.fsync(fd)
    }
}
