import Dispatch
import Synchronization

/// Set when the task that started a blocking operation is cancelled; the operation polls it.
public final class CancellationFlag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public var isCancelled: Bool { state.load(ordering: .relaxed) }
    public func cancel() { state.store(true, ordering: .relaxed) }
}

/// Carries a non-Sendable value to another thread whose use of it is known to be exclusive.
struct UnsafeTransfer<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs blocking work (a libcurl transfer, a pipe read) on a Dispatch thread, keeping the cooperative pool free.
/// Task cancellation sets the flag the work polls. Shared by the package's modules (the S3 backend hashes and
/// reads files with it).
package func runBlocking<T: Sendable>(_ work: @escaping @Sendable (CancellationFlag) throws -> T) async throws -> T {
    let flag = CancellationFlag()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try work(flag) })
            }
        }
    } onCancel: {
        flag.cancel()
    }
}
