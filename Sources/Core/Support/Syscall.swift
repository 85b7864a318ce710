import Foundation

/// A failed system call: which call, on what (a path or a description of the descriptor), and `errno`.
///
/// Modelled on swift-nio's `_NIOFileSystem` (`FileSystemError` with its `SystemCallError` cause, built by the
/// `Syscall` helpers): the call's name and errno stay available to code, the message stays one sentence.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The C function's name (`open`, `pwrite`, `fsync`).
    public var call: String
    /// The path or object the call was about.
    public var path: String
    public var errno: Int32

    /// `strerror(errno)`.
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String { "\(call) on \(path): \(reason) (errno \(errno))" }
}

/// Runs the system call `body` (which returns -1 and sets `errno` on failure), again as long as it fails with
/// `EINTR`. Returns its result, or the failure as a ``SystemCallError``.
@inline(__always)
package func retryingEINTR<Value: BinaryInteger>(
    _ call: String,
    path: @autoclosure () -> String,
    _ body: () -> Value
) -> Result<Value, SystemCallError> {
    while true {
        let value = body()
        if value >= 0 { return .success(value) }
        let code = errno
        if code == EINTR { continue }
        return .failure(SystemCallError(call: call, path: path(), errno: code))
    }
}

/// Runs the system call `body`, retrying `EINTR`; on failure throws a ``StackVaultError`` (`code`, `.io` by default)
/// whose message is `"<failing>: <strerror> (<call>)"` plus `hint`, and whose ``StackVaultError/systemCall`` is the
/// ``SystemCallError``. Never use it for `close`: on Linux a close that failed with `EINTR` must not be repeated.
///
/// - Parameters:
///   - call: the C function's name, for the message and ``SystemCallError/call``.
///   - path: what the call is about (a path, or "the archive file '/x'").
///   - failing: what failed, as the user should read it ("cannot create the archive file '/x'").
///   - hint: appended to the message, chosen from the errno (e.g. what to do about `EEXIST`); empty for none.
@discardableResult
@inline(__always)
package func syscall<Value: BinaryInteger>(
    _ call: String,
    path: @autoclosure () -> String,
    _ code: StackVaultError.Code = .io,
    failing: @autoclosure () -> String,
    hint: (Int32) -> String = { _ in "" },
    _ body: () -> Value
) throws -> Value {
    switch retryingEINTR(call, path: path(), body) {
    case .success(let value):
        return value
    case .failure(let failure):
        throw StackVaultError(failure, code, failing: failing(), hint: hint(failure.errno))
    }
}

extension StackVaultError {
    /// The error for a failed system call: `"<failing>: <strerror> (<call>)<hint>"`.
    package init(_ failure: SystemCallError, _ code: Code = .io, failing: String, hint: String = "") {
        self.init(code, "\(failing): \(failure.reason) (\(failure.call))\(hint)")
        systemCall = failure
    }
}
