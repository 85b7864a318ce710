import Foundation
import Synchronization

/// The side channel a helper container writes its tar stream to instead of its stdout (issue #13): an abstract
/// Unix socket (Linux, `unix(7)`: `sun_path[0] == 0`, no file anywhere, scoped to the network namespace) that
/// StackVault listens on and the helper, started in StackVault's network namespace, connects to. The bytes go from
/// one process to the other through the kernel; Docker's attach stream, which carries stdout through dockerd and
/// containerd-shim, is 5-10x slower for a tar of a large volume.
///
/// The name is `stackvault-helper-<32 hex digits>` (128 random bits), shown as `@stackvault-helper-...`. Names of
/// abstract sockets are listed in `/proc/net/unix`, so the name is no secret: the helper first sends the token (32
/// hex digits and a newline, from `STACKVAULT_HELPER_TOKEN` in its environment, which only Docker and root see);
/// a connection with any other first line is closed and the listener waits on.
///
/// Blocking: `accept` and `receive` run off the cooperative pool (`runBlocking`); `abort()` may be called from any
/// thread and ends both.
package final class HelperSideChannel: @unchecked Sendable {
    /// The helper's environment variable that carries the token.
    package static let tokenVariable = "STACKVAULT_HELPER_TOKEN"
    /// The exit code of `stackvault helper tar-create --connect` when it cannot connect: StackVault then copies
    /// through the attach stream instead (for example when the helper does not share its network namespace).
    package static let unreachableExitCode: Int32 = 3

    /// `@stackvault-helper-<hex>`, for `--connect`.
    let name: String
    /// 32 hex digits, for `STACKVAULT_HELPER_TOKEN`.
    let token: String
    private let listener: Int32
    private let connection = Mutex<Int32>(-1)
    private let state = Mutex(State())

    private struct State {
        var aborted = false
        var helperEnded = false
    }

    /// Listens on a new abstract socket with a random name. Throws when the socket cannot be made.
    init() throws {
        var generator = SystemRandomNumberGenerator()
        let hex = { (count: Int) in
            (0..<count).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
        }
        name = "@stackvault-helper-" + hex(2)
        token = hex(2)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw Self.systemError("create a Unix socket for the helper's side channel") }
        do {
            try Self.withAddress(name) { address, length in
                guard bind(listener, address, length) == 0 else {
                    throw Self.systemError("bind the helper's side channel \(name)")
                }
            }
            guard listen(listener, 4) == 0 else { throw Self.systemError("listen on the helper's side channel") }
        } catch {
            Foundation.close(listener)
            throw error
        }
    }

    deinit {
        Foundation.close(listener)
        let fd = connection.withLock { $0 }
        if fd >= 0 { Foundation.close(fd) }
    }

    /// Tells `accept` that the helper has exited: no connection can come any more.
    func helperEnded() {
        state.withLock { $0.helperEnded = true }
    }

    /// Ends a blocked `accept` or `receive` (cancellation, a failed helper).
    func abort() {
        state.withLock { $0.aborted = true }
        let fd = connection.withLock { $0 }
        if fd >= 0 { _ = shutdown(fd, Int32(SHUT_RDWR)) }
    }

    var isAborted: Bool { state.withLock { $0.aborted } }

    /// Waits for the helper's connection (one with the right token) up to `timeout` seconds; false when the helper
    /// ended (`helperEnded()`) without connecting, or on `abort()` / `flag`. Throws ``SideChannelTimeout`` when
    /// nothing with the token connected in time.
    func accept(timeout: Double, flag: CancellationFlag) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if flag.isCancelled || isAborted { return false }
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready < 0 && errno != EINTR { throw Self.systemError("wait for the helper's connection") }
            if ready > 0 {
                let fd = Glibc.accept(listener, nil, nil)
                if fd < 0 {
                    if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { continue }
                    throw Self.systemError("accept the helper's connection")
                }
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                if Self.readToken(fd) == token {
                    connection.withLock { $0 = fd }
                    if isAborted { _ = shutdown(fd, Int32(SHUT_RDWR)) }
                    return true
                }
                Foundation.close(fd)  // not the helper: wait on
                continue
            }
            if state.withLock({ $0.helperEnded }) { return false }
            if Date() >= deadline {
                throw SideChannelTimeout(seconds: timeout)
            }
        }
    }

    /// Reads the accepted connection to its end into `sink`; returns the bytes read.
    func receive(into sink: any ByteSink) throws -> Int64 {
        let fd = connection.withLock { $0 }
        precondition(fd >= 0, "receive before accept")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.systemError("read the helper's side channel")
            }
            if count == 0 { return total }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            total += Int64(count)
        }
    }

    /// The first line of a new connection (the token), read within 10 s; nil when it is not one.
    private static func readToken(_ fd: Int32) -> String? {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count <= 64 {
            let count = recv(fd, &byte, 1, 0)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { return nil }
            if byte == 10 { break }
            line.append(byte)
        }
        var none = timeval(tv_sec: 0, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        return String(decoding: line, as: UTF8.self)
    }

    // MARK: - The helper's end

    /// Connects to the side channel `name` (`@...`) and sends `token`; returns the socket, which the caller closes.
    /// Throws (naming the channel) when nothing listens there, for example from another network namespace.
    package static func connect(to name: String, token: String) throws -> Int32 {
        guard name.hasPrefix("@"), name.utf8.count > 1 else {
            throw StackVaultError(.invalidConfiguration, "the side channel '\(name)' is not an abstract socket name "
                + "(it starts with @)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw systemError("create a Unix socket") }
        do {
            try withAddress(name) { address, length in
                guard Glibc.connect(fd, address, length) == 0 else {
                    throw systemError("connect to StackVault's side channel \(name)")
                }
            }
            try Array((token + "\n").utf8).withUnsafeBytes { bytes in
                guard send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
                    throw systemError("send the token on StackVault's side channel \(name)")
                }
            }
            return fd
        } catch {
            Foundation.close(fd)
            throw error
        }
    }

    /// Calls `body` with the `sockaddr_un` of the abstract name `name` (`@x` is `"\0x"`, no terminating zero: the
    /// length given says where it ends).
    private static func withAddress(
        _ name: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Void
    ) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [0] + Array(name.utf8.dropFirst())
        guard bytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            throw StackVaultError(.invalidConfiguration, "the side channel name '\(name)' is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        try withUnsafePointer(to: &address) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    private static func systemError(_ doing: String) -> StackVaultError {
        StackVaultError(.io, "cannot \(doing): \(String(cString: strerror(errno)))")
    }
}

/// No helper connected to a ``HelperSideChannel`` in time.
struct SideChannelTimeout: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "no helper connected to the side channel within \(Int(seconds)) s" }
}
