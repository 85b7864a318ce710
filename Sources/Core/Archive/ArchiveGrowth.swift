import Foundation

/// How far a file being written may be read: the writer publishes what it has written, may hold readers before
/// bytes it will still overwrite, and finally sets where reading ends (or fails, which stops every reader).
final class ArchiveGrowth: @unchecked Sendable {
    private let condition = NSCondition()
    private var published: Int64 = 0
    private var end: Int64?
    private var barrier: Int64?
    private var failure: String?
    private var read: Int64 = 0

    /// How far the reader has read (what the writer may drop from the page cache, ``PageCacheDropper``).
    var readPosition: Int64 {
        condition.lock()
        defer { condition.unlock() }
        return read
    }

    /// The reader read the file up to `offset`.
    func noteRead(upTo offset: Int64) {
        condition.lock()
        defer { condition.unlock() }
        read = max(read, offset)
    }

    /// The writer wrote the file up to `size` bytes.
    func publish(_ size: Int64) {
        condition.lock()
        defer { condition.unlock() }
        guard size > published else { return }
        published = size
        condition.broadcast()
    }

    /// Readers stop at `size`.
    func setEnd(_ size: Int64) {
        condition.lock()
        defer { condition.unlock() }
        end = size
        condition.broadcast()
    }

    /// The writer cut the file back to `size` (never below a barrier a reader waits at).
    func retract(to size: Int64) {
        condition.lock()
        defer { condition.unlock() }
        published = min(published, size)
    }

    /// Readers stop at `offset` (bytes there are not final yet) until ``removeBarrier()``.
    func setBarrier(_ offset: Int64) {
        condition.lock()
        defer { condition.unlock() }
        barrier = offset
    }

    func removeBarrier() {
        condition.lock()
        defer { condition.unlock() }
        barrier = nil
        condition.broadcast()
    }

    /// The writer gave up: readers throw.
    func fail(_ reason: String) {
        condition.lock()
        defer { condition.unlock() }
        if failure == nil { failure = reason }
        condition.broadcast()
    }

    /// Waits until there is something to read after `position` or reading has ended there; returns the offset
    /// up to which reading may go (equal to `position` at the end).
    func waitForBytes(after position: Int64) throws -> Int64 {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let failure { throw StackVaultError(.cancelled, "reading the archive back stopped: \(failure)") }
            let limit = min(published, barrier ?? .max)
            if let end, barrier == nil { return max(position, end) }
            if limit > position { return limit }
            condition.wait()
        }
    }
}
