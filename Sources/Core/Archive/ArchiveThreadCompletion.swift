import Foundation

/// The result of work on a helper thread, awaited without blocking the cooperative pool (or waited for
/// synchronously).
final class ArchiveThreadCompletion<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<Value, any Error>?
    private var continuation: CheckedContinuation<Result<Value, any Error>, Never>?

    func complete(_ result: Result<Value, any Error>) {
        condition.lock()
        if let continuation {
            self.continuation = nil
            condition.unlock()
            continuation.resume(returning: result)
            return
        }
        self.result = result
        condition.broadcast()
        condition.unlock()
    }

    func value() async -> Result<Value, any Error> {
        await withCheckedContinuation { continuation in
            condition.lock()
            if let result {
                condition.unlock()
                continuation.resume(returning: result)
            } else {
                self.continuation = continuation
                condition.unlock()
            }
        }
    }

    func wait() -> Result<Value, any Error> {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}
