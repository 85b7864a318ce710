internal import CArchive
import Foundation

/// Writes an uncompressed PAX tar stream into a `ByteSink`: what `DockerEngine.putArchive` uploads.
///
/// Used from one thread (the upload's producer thread). Every write error, from libarchive or from the sink,
/// is thrown with what was being written.
final class TarStreamWriter {
    /// The write-callback context: forwards libarchive's output into the sink and keeps its error.
    private final class Output: TarWriteClient {
        let sink: any ByteSink
        var error: (any Error)?

        init(sink: any ByteSink) {
            self.sink = sink
        }

        func write(_ buffer: UnsafeRawBufferPointer) -> Int {
            if error != nil { return -1 }
            do {
                try sink.write(buffer)
                return buffer.count
            } catch {
                self.error = error
                return -1
            }
        }
    }

    private let output: Output
    private let handle: ArchiveWriteHandle
    private let what: String

    /// - Parameter what: the stream's purpose, for messages ("the upload of /data into container app_files_1").
    init(sink: any ByteSink, what: String) throws {
        let output = Output(sink: sink)
        self.handle = try ArchiveWriteHandle.openPAX(client: output, what: what)
        self.output = output
        self.what = what
    }

    func writeHeader(_ entry: OpaquePointer, shown: String) throws {
        let status = withLibArchiveUTF8Locale { archive_write_header(handle.pointer, entry) }
        if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw failure("writing the header of '\(shown)'") }
    }

    func writeData(_ bytes: UnsafeRawBufferPointer, shown: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = archive_write_data(handle.pointer, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { throw failure("writing the data of '\(shown)'") }
            offset += written
        }
    }

    func finishEntry(shown: String) throws {
        let status = archive_write_finish_entry(handle.pointer)
        if status != ARCHIVE_OK && status != ARCHIVE_WARN { throw failure("finishing '\(shown)'") }
    }

    /// Stops without finishing the entry or the stream: nothing more reaches the sink, not even when the writer is
    /// freed (libarchive would otherwise pad the open entry to the size its header announced).
    func abandon() {
        archive_write_fail(handle.pointer)
    }

    /// Writes the end-of-archive blocks.
    func finish() throws {
        if archive_write_close(handle.pointer) != ARCHIVE_OK { throw failure("ending the tar stream") }
    }

    private func failure(_ doing: String) -> StackVaultError {
        if let cause = output.error {
            return StackVaultError(.io, "\(doing) in \(what) failed", cause: cause)
        }
        return StackVaultError(.archive, "\(doing) in \(what) failed: \(archiveErrorString(handle.pointer))")
    }
}

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
        let entry = try ArchiveEntryHandle()
        entry.setRegularFile(path: Array(name.utf8), size: size, permissions: mode)
        archive_entry_set_uid(entry.pointer, uid)
        archive_entry_set_gid(entry.pointer, gid)
        archive_entry_copy_uname(entry.pointer, nil)
        archive_entry_copy_gname(entry.pointer, nil)
        try writer.writeHeader(entry.pointer, shown: name)
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
