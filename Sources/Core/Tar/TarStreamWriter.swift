import Foundation

/// Writes an uncompressed PAX tar stream into a `ByteSink`: what `DockerEngine.putArchive` uploads, and what
/// restores and header building use. A ``TarWriter`` whose client is the sink.
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

    private let writer: TarWriter
    private let output: Output
    private let what: String

    /// - Parameter what: the stream's purpose, for messages ("the upload of /data into container app_files_1").
    init(sink: any ByteSink, what: String) throws {
        let output = Output(sink: sink)
        self.writer = try TarWriter(client: output, what: what)
        self.output = output
        self.what = what
    }

    /// Runs `body`, wording a ``TarWriter/Failure`` for this stream.
    @discardableResult
    private func wording<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let failure as TarWriter.Failure {
            if let cause = output.error {
                throw StackVaultError(.io, "\(failure.doing) in \(what) failed", cause: cause)
            }
            throw StackVaultError(.archive, "\(failure.doing) in \(what) failed: \(failure.libarchiveMessage)")
        }
    }

    /// Writes `entry`'s header; returns libarchive's warning, if it gave one (e.g. a name stored as raw bytes).
    @discardableResult
    func writeHeader(_ entry: TarEntry, shown: @autoclosure () -> String) throws -> String? {
        try wording { try writer.writeHeader(entry, shown: shown()) }
    }

    func writeData(_ bytes: UnsafeRawBufferPointer, shown: @autoclosure () -> String) throws {
        try wording { try writer.writeData(bytes, shown: shown()) }
    }

    func finishEntry(shown: @autoclosure () -> String) throws {
        try wording { try writer.finishEntry(shown: shown()) }
    }

    /// See ``TarWriter/writeSparseMap(shown:)``.
    func writeSparseMap(shown: @autoclosure () -> String) throws {
        try wording { try writer.writeSparseMap(shown: shown()) }
    }

    /// Stops without finishing the entry or the stream (see ``TarWriter/abandon()``).
    func abandon() {
        writer.abandon()
    }

    /// Writes the end-of-archive blocks.
    func finish() throws {
        try wording { try writer.finish() }
    }
}

extension TarStreamWriter {
    /// Copies `entry` from `reader` renamed; see
    /// ``TarWriter/copy(_:from:as:hardlink:isFile:keepingHoles:shown:content:)``.
    func copy(_ entry: TarEntry, from reader: TarReader, as path: [UInt8], hardlink: [UInt8]?, isFile: Bool,
              keepingHoles: Bool, shown: String,
              content: (UnsafeRawBufferPointer, Int64) throws -> Void = { _, _ in }) throws -> TarWriter.Copied
    {
        try wording {
            try writer.copy(entry, from: reader, as: path, hardlink: hardlink, isFile: isFile,
                            keepingHoles: keepingHoles, shown: shown, content: content)
        }
    }
}
