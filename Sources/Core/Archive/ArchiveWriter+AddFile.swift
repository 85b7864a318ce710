import Foundation

extension ArchiveWriter {
    /// Adds one regular file whose content `produce` writes; see ``ArchiveSink/addFile(at:mode:produce:)``.
    ///
    /// The tar entry (mtime now, owner 0:0, permissions `mode & 0o7777`) is written without a temporary copy: the
    /// running compressed segment ends, room for the entry's header is reserved in the file, the content streams
    /// behind it compressed as a segment of its own (XXH3 on the way), and once its size is known the header fills
    /// the room (``ZstdPadding``). The read-back waits before the room until then. If
    /// `produce` throws, the file is cut back to before the room: nothing was added.
    ///
    /// Encrypted, the room is one whole age chunk after a chunk boundary, sealed once the header is known
    /// (``AgeArchiveOutput/reserveChunk()``). Cutting back would seal chunk counters a second time with other data,
    /// so if `produce` throws, the reserved chunk gets a zstd skippable frame that covers what the content wrote
    /// (up to 4 GiB; beyond, the archive is given up).
    public func addFile(
        at path: String,
        mode: UInt32,
        produce: (any ByteSink) async throws -> Void
    ) async throws -> ComponentRecord {
        try requireAddable(path, kind: .file)
        let name = Array(path.utf8)
        let largest = try Self.tarHeader(path: name, size: Self.largestHeaderSize, mode: mode)
        guard ZstdPadding.supports(compressor) else {
            throw StackVaultError(
                .archive,
                "the archive writer pads file headers with zstd skippable frames; the compressor "
                    + "'\(type(of: compressor).name)' has none"
            )
        }
        let room = ZstdPadding.bound(largest.count)
        guard room <= zeros.count else {
            throw StackVaultError(.archive, "the name '\(path)' is too long for a tar header (\(largest.count) bytes)")
        }
        let roomStart: Int64
        var reserved: AgeEncryptor.ReservedChunk?
        do {
            try output.stream.finishSegment()
            try alignForReadBack()
            roomStart = fileSink.totalBytes
            growth.setBarrier(roomStart)
            if let encryption {
                reserved = try encryption.reserveChunk()
            } else {
                try fileSink.write(UnsafeRawBufferPointer(rebasing: zeros[0..<room]))
                try fileSink.flush()
            }
        } catch {
            if case .open = state { state = .failed("reserving room for '\(path)': \(error)") }
            throw error
        }

        let content: ChecksummingSink
        do {
            let stream = try compressor.makeCompressor(writingTo: payload)
            content = ChecksummingSink(downstream: stream, progress: progress)
            try await produce(content)
            try stream.finish()
            try fileSink.flush()
        } catch {
            if let encryption, let reserved {
                // Nothing was added: the content cannot be cut back out of an age file, so a skippable frame in
                // the reserved chunk hides it (the rest of the chunk and every byte the content wrote).
                let start = Int64(reserved.index + 1) * Int64(AgePayload.chunkSize)
                let hidden = AgePayload.chunkSize - ZstdPadding.skippableHeaderSize
                    + Int(encryption.encryptor.plaintextOffset - start)
                do {
                    guard let skip = ZstdPadding.skippableFrameHeader(skipping: hidden) else {
                        throw StackVaultError(.archive, "more than 4 GiB of it were written, too many to skip")
                    }
                    try encryption.fill(reserved, plaintext: skip + [UInt8](repeating: 0, count: AgePayload.chunkSize - skip.count))
                    growth.removeBarrier()
                } catch let hiding {
                    if case .open = state { state = .failed("hiding the partial '\(path)': \(hiding)") }
                    growth.fail("'\(path)' failed")
                }
                throw error
            }
            // Nothing was added: cut the file back to before the room (the read-back never went past it).
            do {
                try fileSink.truncate(to: roomStart)
                growth.removeBarrier()
            } catch let truncation {
                if case .open = state { state = .failed("removing the partial '\(path)': \(truncation)") }
            }
            throw error
        }

        do {
            let header = try Self.tarHeader(path: name, size: content.count, mode: mode)
            if let encryption, let reserved {
                let segment = try ZstdPadding.segment(of: header, length: AgePayload.chunkSize, compressor: compressor)
                try encryption.fill(reserved, plaintext: segment)
            } else {
                try fileSink.write(try ZstdPadding.segment(of: header, length: room, compressor: compressor), at: roomStart)
            }
            growth.removeBarrier()
            // The tar padding after the content starts the next segment of the main stream.
            let padding = Int((512 - content.count % 512) % 512)
            try output.stream.write(UnsafeRawBufferPointer(rebasing: zeros[0..<padding]))
            output.count(Int64(header.count) + content.count + Int64(padding))
        } catch {
            if case .open = state { state = .failed("writing the header of '\(path)': \(error)") }
            throw error
        }
        let record = ComponentRecord(archivePath: path, kind: .file, sizeBytes: content.count, entries: 1, sha256: "")
        records[path] = record
        addedOrder.append(path)
        checksums[path] = content.checksum.finalize()
        return record
    }

    public func recordContents(_ contents: DumpContents, of path: String) throws {
        guard records[path]?.kind == .file else {
            throw StackVaultError(.archive, "cannot record the contents of '\(path)': no dump was added there")
        }
        self.contents[path] = contents
    }

    /// A size that makes libarchive write the largest header for a path (a PAX size record: over 8 GiB).
    static let largestHeaderSize: Int64 = 1 << 40

    /// The tar header bytes the archive's tar writer writes for a regular file (PAX restricted).
    static func tarHeader(path: [UInt8], size: Int64, mode: UInt32) throws -> [UInt8] {
        try TarWriter.regularFileHeader(path: path, size: size, mode: mode)
    }
}

/// Checksums (XXH3) and counts what passes through on its way downstream; tells `progress` too.
private final class ChecksummingSink: ByteSink {
    private let downstream: any ByteSink
    private let progress: ProgressReporter?
    private(set) var checksum = XXH3()
    private(set) var count: Int64 = 0

    init(downstream: any ByteSink, progress: ProgressReporter?) {
        self.downstream = downstream
        self.progress = progress
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        checksum.update(bytes)
        count += Int64(bytes.count)
        progress?.add(Int64(bytes.count))
    }
}
