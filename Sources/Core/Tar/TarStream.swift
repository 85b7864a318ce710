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
