import Foundation

/// Tar streams for uploads into containers.
public enum TarStream {
    /// Writes into `sink` a tar stream holding one regular file `name` of exactly `size` bytes, which `content`
    /// writes into the sink it is given (permissions `mode`, owner `uid`:`gid`, modified now).
    ///
    /// Throws if `content` writes more or fewer than `size` bytes: the stream must never describe other data.
    public static func writeSingleFile(
        named name: String,
        size: Int64,
        mode: UInt32,
        uid: Int64,
        gid: Int64,
        into sink: any ByteSink,
        content: (any ByteSink) throws -> Void
    ) throws {
        let writer = try TarStreamWriter(sink: sink, what: "the tar stream of '\(name)'")
        let entry = try TarEntry.regularFile(path: Array(name.utf8), size: size, permissions: mode)
        entry.setOwner(uid: uid, gid: gid)
        try writer.writeHeader(entry, shown: name)
        let counting = SizeCheckingSink(writer: writer, name: name, size: size)
        try content(counting)
        guard counting.written == size else {
            throw StackVaultError(.archive, "'\(name)' got \(counting.written) bytes, \(size) were announced")
        }
        try writer.finishEntry(shown: name)
        try writer.finish()
    }
}

/// Passes content to a tar entry and refuses more than its header announced.
private final class SizeCheckingSink: ByteSink {
    let writer: TarStreamWriter
    let name: String
    let size: Int64
    private(set) var written: Int64 = 0

    init(writer: TarStreamWriter, name: String, size: Int64) {
        self.writer = writer
        self.name = name
        self.size = size
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard written + Int64(bytes.count) <= size else {
            throw StackVaultError(.archive, "'\(name)' got more than the \(size) bytes announced")
        }
        try writer.writeData(bytes, shown: name)
        written += Int64(bytes.count)
    }
}

extension TarStream {
    /// Writes into `sink` a tar stream of host files: each `(name, source)` becomes a regular file `name` (a
    /// relative path, e.g. `lib/x86_64-linux-gnu/libc.so.6`) holding the content of `source` (symlinks followed),
    /// owned by root with `source`'s permissions; every parent directory gets an entry (0755) before its first file.
    /// This is the file system of an image for `docker import`.
    public static func writeHostFiles(_ files: [(name: String, source: String)], into sink: any ByteSink) throws {
        let writer = try TarStreamWriter(sink: sink, what: "the image file system")
        var directories: Set<String> = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for file in files {
            let parts = file.name.split(separator: "/")
            for depth in stride(from: 1, to: parts.count, by: 1) {
                let directory = parts.prefix(depth).joined(separator: "/")
                if directories.insert(directory).inserted {
                    try writer.writeHeader(try TarEntry.directory(path: Array((directory + "/").utf8), permissions: 0o755),
                                           shown: directory)
                    try writer.finishEntry(shown: directory)
                }
            }
            let fd = open(file.source, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw StackVaultError(.io, "cannot read \(file.source): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                throw StackVaultError(.io, "cannot stat \(file.source): \(String(cString: strerror(errno)))")
            }
            let entry = try TarEntry.regularFile(path: Array(file.name.utf8), size: Int64(info.st_size),
                                                 permissions: UInt32(info.st_mode) & 0o755)
            try writer.writeHeader(entry, shown: file.name)
            var left = Int64(info.st_size)
            while left > 0 {
                let count = try FileDescriptorIO.read(fd, into: buffer, what: file.source)
                guard count > 0 else {
                    throw StackVaultError(.io, "\(file.source) shrank while it was read")
                }
                let take = Int(min(Int64(count), left))
                try writer.writeData(UnsafeRawBufferPointer(rebasing: buffer[0..<take]), shown: file.name)
                left -= Int64(take)
            }
            try writer.finishEntry(shown: file.name)
        }
        try writer.finish()
    }
}
