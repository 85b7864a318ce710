import Foundation
import Synchronization
import Testing

@testable import StackVaultCore
@testable import StackVaultStorage

/// The page-cache dropper behind every streamed archive file (issue #20): which ranges it advises away, and that
/// bytes streamed through it are unchanged.
@Suite("Page cache dropper")
struct PageCacheDropperTests {
    /// One recorded call.
    enum Call: Equatable, CustomStringConvertible {
        case advise(offset: Int64, length: Int64, PageCacheDropper.Advice)
        case writeBack(offset: Int64, length: Int64, wait: Bool)

        var description: String {
            switch self {
            case .advise(let offset, let length, let advice): "advise(\(offset), \(length), \(advice))"
            case .writeBack(let offset, let length, let wait): "writeBack(\(offset), \(length), wait: \(wait))"
            }
        }
    }

    /// A `System` that records its calls (and makes none).
    final class Recorder: Sendable {
        let calls = Mutex<[Call]>([])
        var system: PageCacheDropper.System {
            PageCacheDropper.System(
                advise: { _, offset, length, advice in
                    self.calls.withLock { $0.append(.advise(offset: offset, length: length, advice)) }
                },
                writeBack: { _, offset, length, wait in
                    self.calls.withLock { $0.append(.writeBack(offset: offset, length: length, wait: wait)) }
                })
        }
        var recorded: [Call] { calls.withLock { $0 } }
        /// The `dontNeed` ranges before the final one (length 0), as (offset, end).
        var dropped: [(Int64, Int64)] {
            recorded.compactMap {
                if case .advise(let offset, let length, .dontNeed) = $0, length > 0 { return (offset, offset + length) }
                return nil
            }
        }
    }

    static let chunk: Int64 = 1 << 20
    static let page = PageCacheDropper.pageSize

    @Test("a reader advises sequential reading, then drops each consumed chunk, page-aligned, and the rest at the end")
    func readerDropsConsumedRanges() {
        let recorder = Recorder()
        let dropper = PageCacheDropper(reading: 7, chunk: Self.chunk, system: recorder.system)
        var position: Int64 = 0
        while position < 5 * Self.chunk + 12345 {
            position += 300_001
            dropper.consumed(upTo: position)
        }
        dropper.dropAll()
        let calls = recorder.recorded
        #expect(calls.first == .advise(offset: 0, length: 0, .sequential))
        #expect(calls.last == .advise(offset: 0, length: 0, .dontNeed))
        let ranges = recorder.dropped
        #expect(ranges.count == 4)  // at 1.2, 2.4, 3.6 and 4.8 MB: 1 MiB or more each
        var expectedStart: Int64 = 0
        for (start, end) in ranges {
            #expect(start == expectedStart)  // contiguous from the start
            #expect(end % Self.page == 0)
            #expect(end - start >= Self.chunk)
            expectedStart = end
        }
        // Never past what was consumed, and at most a chunk behind it.
        #expect(expectedStart <= position && position - expectedStart < Self.chunk + Self.page)
        #expect(!calls.contains { if case .writeBack = $0 { return true } else { return false } })
    }

    @Test("a reader that starts at an offset drops from that offset's page onwards")
    func readerFromOffset() {
        let recorder = Recorder()
        let dropper = PageCacheDropper(reading: 7, from: 3 * Self.page + 100, chunk: Self.chunk, system: recorder.system)
        dropper.consumed(upTo: 3 * Self.page + 100 + 2 * Self.chunk)
        dropper.dropAll()
        #expect(recorder.recorded == [
            .advise(offset: 3 * Self.page, length: 0, .sequential),
            .advise(offset: 3 * Self.page, length: 2 * Self.chunk, .dontNeed),
            .advise(offset: 3 * Self.page, length: 0, .dontNeed),
        ])
    }

    @Test("a writer starts write-back of each chunk and drops it a chunk later, without waiting; at the end after waiting")
    func writerDropsWrittenBackChunks() {
        let recorder = Recorder()
        let dropper = PageCacheDropper(writing: 7, chunk: Self.chunk, system: recorder.system)
        var position: Int64 = 0
        while position < 4 * Self.chunk {
            position += 1 << 18
            dropper.written(upTo: position)
        }
        dropper.dropAll()
        let calls = recorder.recorded
        #expect(calls == [
            .writeBack(offset: 0, length: Self.chunk, wait: false),
            .writeBack(offset: Self.chunk, length: Self.chunk, wait: false),
            .advise(offset: 0, length: Self.chunk, .dontNeed),
            .writeBack(offset: 2 * Self.chunk, length: Self.chunk, wait: false),
            .advise(offset: Self.chunk, length: Self.chunk, .dontNeed),
            .writeBack(offset: 3 * Self.chunk, length: Self.chunk, wait: false),
            .advise(offset: 2 * Self.chunk, length: Self.chunk, .dontNeed),
            .writeBack(offset: 0, length: 0, wait: true),
            .advise(offset: 0, length: 0, .dontNeed),
        ], "\(calls)")
    }

    @Test("a writer whose file is read as it grows never drops past what the reader has read")
    func writerWaitsForItsReader() {
        let recorder = Recorder()
        let readPosition = Mutex<Int64>(0)
        let dropper = PageCacheDropper(writing: 7, chunk: Self.chunk, system: recorder.system,
                                       readLimit: { readPosition.withLock { $0 } })
        var position: Int64 = 0
        var maximumDrop: Int64 = 0
        while position < 8 * Self.chunk {
            position += 1 << 18
            dropper.written(upTo: position)
            readPosition.withLock { $0 = position / 3 + 5 }  // the reader lags
            maximumDrop = max(maximumDrop, recorder.dropped.map(\.1).max() ?? 0)
            #expect(maximumDrop <= position / 3 + 5)
        }
        #expect(maximumDrop > 0)
        #expect(dropper.dropped % Self.page == 0)
    }

    @Test("bytes written through the archive file sink and read back through the local backend are unchanged")
    func bytesSurviveDropping() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("svcache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SystemRandomNumberGenerator()
        var data = [UInt8](repeating: 0, count: (5 << 20) + 777)
        data.withUnsafeMutableBytes { bytes in
            for offset in stride(from: 0, to: bytes.count - 8, by: 8) {
                bytes.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
            }
        }

        // Written in uneven pieces with 1 MiB chunks: the real calls, recorded too.
        let path = directory.appendingPathComponent("a.tar.zst").path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        let recorder = Recorder()
        let linux = PageCacheDropper.System.linux
        let both = PageCacheDropper.System(
            advise: { recorder.system.advise($0, $1, $2, $3); linux.advise($0, $1, $2, $3) },
            writeBack: { recorder.system.writeBack($0, $1, $2, $3); linux.writeBack($0, $1, $2, $3) })
        let sink = ArchiveFileSink(fd: fd, what: path, growth: nil, bufferSize: 100_000, pageCache: both,
                                   pageCacheChunk: Self.chunk)
        var offset = 0
        var piece = 1
        try data.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let count = min(piece, bytes.count - offset)
                try sink.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]))
                offset += count
                piece = piece * 7 % 400_009 + 1
            }
        }
        try sink.flushAndDropCache()
        close(fd)
        #expect(recorder.dropped.count >= 3)
        #expect(recorder.recorded.last == .advise(offset: 0, length: 0, .dontNeed))

        // Read back through the backend's reader, copied across "file systems" (the EXDEV path), read again.
        let backend = LocalDirectoryBackend(directory: directory.path)
        let collected = CollectingSink()
        try await backend.read("a.tar.zst", into: collected)
        #expect(collected.bytes == data)
        try LocalDirectoryBackend.copy(path, to: directory.appendingPathComponent("b.tar.zst").path)
        let copied = CollectingSink()
        try await backend.read("b.tar.zst", into: copied)
        #expect(copied.bytes == data)
    }
}

