import Foundation

/// A compressed archive file read as a tar stream: decompressed on a helper thread, handed over in memory
/// (``ByteChunkQueue``) to a ``TarReader`` (``tar``) that the caller drives.
///
/// With an ``ArchiveGrowth`` it reads a file that is still being written, following the writer: this is how
/// ``ArchiveWriter`` reads its archive back while it writes it. Blocking: drive it from a thread of your own.
final class DecompressedTarReader {
    private let queue: ByteChunkQueue
    private let completion = ArchiveThreadCompletion<Int64>()
    private var closed: Result<Int64, any Error>?
    private let what: String

    /// The tar reader of the decompressed stream, once ``open()`` succeeded.
    let tar: TarReader
    /// What stopped the stream early (decompression or reading failed, or it was cancelled), if anything.
    var streamError: (any Error)? { tar.sourceError }

    /// Starts decompressing `fileDescriptor` (from `offset`, positionally, or from its current offset when nil;
    /// the descriptor is not closed); ``open()`` then opens libarchive on it. With `lowPriority`, the decompressing thread
    /// runs at the lowest CPU priority (``lowerThreadPriority()``). With `dropsPageCache` (and no `growth`), what was
    /// read is dropped from the page cache behind the reader (``PageCacheDropper``); without, the caller drops it.
    init(
        fileDescriptor: Int32,
        from offset: off_t?,
        growth: ArchiveGrowth? = nil,
        compressor: any Compressor,
        what: String,
        threadName: String,
        lowPriority: Bool = false,
        decryption: ArchiveDecryption? = nil,
        dropsPageCache: Bool = true,
        progress: ProgressReporter? = nil
    ) throws {
        let queue = ByteChunkQueue(what: "the decompressed \(what)")
        self.queue = queue
        self.tar = try TarReader(next: queue.next)
        let completion = self.completion
        let thread = Thread {
            if lowPriority { lowerThreadPriority() }
            completion.complete(Result {
                try decompressArchive(fileDescriptor, from: offset, growth: growth, compressor, into: queue, what: what,
                                      decryption: decryption, dropsPageCache: dropsPageCache, progress: progress)
            })
        }
        thread.name = threadName
        thread.start()
        self.what = what
    }

    /// Opens libarchive on the stream (it reads the first header to recognise the format). Call once, first.
    func open() throws {
        try tar.open("reading \(what)")
    }

    deinit {
        _ = close(drain: false)
    }

    /// Ends reading and waits for the decompressing thread. With `drain`, first reads what libarchive left
    /// (end-of-archive padding) so that the decompressor reaches the end and checks the whole stream; without,
    /// tells it to stop. Returns the compressed bytes read, or the decompressor's error. Idempotent.
    func close(drain: Bool) -> Result<Int64, any Error> {
        if let closed { return closed }
        if drain {
            while (try? queue.next()) != nil {}
        } else {
            queue.cancel()
        }
        queue.closeReading()
        let result = completion.wait()
        closed = result
        return result
    }
}

/// Runs on a helper thread: compressed archive file -> decompressor -> queue; returns the compressed bytes read.
///
/// With `offset`, reads positionally from there (the descriptor can be read again later); without, from the
/// descriptor's current offset. With `growth`, reads only what the writer has published and waits for more until
/// the writer sets the end. Stops when the queue is cancelled or its reader goes; ends the queue on every path.
/// With `dropsPageCache` and no `growth`, drops what it read from the page cache behind it and at the end.
/// `progress` is told the compressed bytes of each read.
func decompressArchive(
    _ fd: Int32,
    from offset: off_t?,
    growth: ArchiveGrowth? = nil,
    _ compressor: any Compressor,
    into queue: ByteChunkQueue,
    what: String,
    decryption: ArchiveDecryption? = nil,
    dropsPageCache: Bool = true,
    progress: ProgressReporter? = nil
) throws -> Int64 {
    defer { queue.closeWriting() }
    let decompressor = try compressor.makeDecompressor(writingTo: queue)
    // An age-encrypted archive: file -> decryptor -> decompressor.
    let decryptor = try decryption?.makeDecryptor(writingTo: decompressor)
    let input: any ByteSink = decryptor ?? decompressor
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    defer { buffer.deallocate() }
    var total: Int64 = 0
    // The file is read once: keep it out of the page cache behind the reader. A file still being written is left
    // to its writer, which drops what this reader has read once it is written back (``ArchiveFileSink``).
    let start = Int64(offset ?? lseek(fd, 0, SEEK_CUR))
    let pageCache = growth == nil && dropsPageCache ? PageCacheDropper(reading: fd, from: max(start, 0)) : nil
    defer { pageCache?.dropAll() }
    while true {
        try queue.checkCancellation("reading \(what)")
        var want = buffer.count
        if let growth {
            let position = Int64(offset ?? 0) + total
            let end = try growth.waitForBytes(after: position)
            want = Int(min(Int64(want), end - position))
            if want <= 0 { break }
        }
        let count = try FileDescriptorIO.read(
            fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]),
            at: offset.map { Int64($0) + total }, what: what)
        if count == 0 { break }
        total += Int64(count)
        progress?.add(Int64(count))
        try input.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        growth?.noteRead(upTo: Int64(offset ?? 0) + total)
        pageCache?.consumed(upTo: max(start, 0) + total)
    }
    // Reading a file still being written stops at a chunk boundary the writer set; only the whole file ends with
    // the final chunk.
    if growth == nil { try decryptor?.finish() }
    try decompressor.finish()
    return total
}

/// Gives the calling thread the lowest CPU priority, nice 19 (on Linux, nice values belong to threads).
///
/// The writer's read-back runs so. Measured on 2 cores, 1.5 GiB volume (`bash bench/backup.sh`): at normal
/// priority, reading back during the copy lengthened the downtime by ~1 s; held back until the containers ran
/// again, it added ~1 s to the wall time; at nice 19 it costs neither (SCHED_IDLE measured the same, but starves
/// completely under sustained load, where nice 19 still gets a small share). An unprivileged thread cannot raise
/// its priority again, so only threads that do nothing else are lowered.
func lowerThreadPriority() {
    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
}
