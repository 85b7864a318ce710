import Foundation
import Synchronization

/// One hijacked connection to the Docker daemon (`POST /containers/{id}/attach` with `Upgrade: tcp`): after the
/// response head the socket carries the container's multiplexed stdout/stderr one way and its stdin the other.
///
/// A plain socket rather than libcurl: once the daemon answers `101 UPGRADED` the connection is no longer HTTP,
/// and closing stdin needs a half-close (`shutdown(SHUT_WR)`), which libcurl's `CONNECT_ONLY` mode does not offer.
/// The daemon is reached as `DockerEndpoint` says (unix socket or plain TCP; StackVault speaks no TLS to it).
/// Reads and writes block: run them off the cooperative pool (`runBlocking`). `abort()` may be called from any
/// thread and wakes a blocked read or write.
final class DockerAttachConnection: @unchecked Sendable {
    private let fd: Int32
    private let closed = Mutex(false)
    /// Bytes that arrived with the response head and belong to the stream.
    private var pending: [UInt8]
    let what: String

    /// Connects, sends the attach request for `path` (`/v1.41/containers/<id>/attach?...`) and reads the
    /// response head; throws unless the daemon switched protocols (101) or answered 200.
    init(endpoint: DockerEndpoint, path: String, what: String) throws {
        self.what = what
        fd = try Self.connect(endpoint)
        pending = []
        do {
            let request = "POST \(path) HTTP/1.1\r\nHost: docker\r\nContent-Type: text/plain\r\n"
                + "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
            try Array(request.utf8).withUnsafeBytes { try write($0) }
            var head: [UInt8] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buffer.deallocate() }
            let separator: [UInt8] = [13, 10, 13, 10]
            while true {
                let count = try read(into: buffer)
                guard count > 0 else {
                    throw StackVaultError(.dockerAPI, "the Docker daemon closed the connection before it answered "
                        + "the attach to \(what)")
                }
                head.append(contentsOf: buffer[0..<count])
                if let end = head.firstRange(of: separator) {
                    pending = Array(head[end.upperBound...])
                    head.removeSubrange(end.lowerBound...)
                    break
                }
                guard head.count < 64 << 10 else {
                    throw StackVaultError(.dockerAPI, "the Docker daemon's answer to the attach to \(what) has no end")
                }
            }
            let text = String(decoding: head, as: UTF8.self)
            let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            guard status == 101 || status == 200 else {
                let body = pending.isEmpty ? "" : ": " + String(decoding: pending.prefix(500), as: UTF8.self)
                throw StackVaultError(.dockerAPI, "Docker could not attach to \(what): "
                    + "\(text.split(separator: "\r\n").first ?? "")\(body)")
            }
        } catch {
            abort()
            Foundation.close(fd)
            throw error
        }
    }

    deinit {
        Foundation.close(fd)
    }

    /// Reads the stream to its end into `sink` (the bytes that came with the head first).
    func readAll(into sink: any ByteSink) throws {
        if !pending.isEmpty {
            try pending.withUnsafeBytes { try sink.write($0) }
            pending = []
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try read(into: buffer)
            if count == 0 { return }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Writes all of `bytes` (the container's stdin).
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                if errno == EINTR { continue }
                throw StackVaultError(.io, "writing to \(what) failed: \(String(cString: strerror(errno)))")
            }
            offset += sent
        }
    }

    /// Ends the container's stdin (half-close); the stream from it goes on.
    func closeWriting() {
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Stops both directions at once: a blocked read returns end of stream, a blocked write fails.
    func abort() {
        closed.withLock { $0 = true }
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    var isAborted: Bool { closed.withLock { $0 } }

    private func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            throw StackVaultError(.io, "reading from \(what) failed: \(String(cString: strerror(errno)))")
        }
    }

    private static func connect(_ endpoint: DockerEndpoint) throws -> Int32 {
        if let socketPath = endpoint.socketPath {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw connectError(endpoint) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(socketPath.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                Foundation.close(fd)
                throw StackVaultError(.invalidConfiguration, "the Docker socket path \(socketPath) is too long")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else {
                let error = connectError(endpoint)
                Foundation.close(fd)
                throw error
            }
            return fd
        }
        // http://host:port
        let hostPort = endpoint.baseURL.replacingOccurrences(of: "http://", with: "")
        guard let colon = hostPort.lastIndex(of: ":") else { throw connectError(endpoint) }
        let host = String(hostPort[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let port = String(hostPort[hostPort.index(after: colon)...])
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &list) == 0, let first = list else { throw connectError(endpoint) }
        defer { freeaddrinfo(list) }
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue),
                            info.pointee.ai_protocol)
            if fd >= 0 {
                if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
                Foundation.close(fd)
            }
            candidate = info.pointee.ai_next
        }
        throw connectError(endpoint)
    }

    private static func connectError(_ endpoint: DockerEndpoint) -> StackVaultError {
        StackVaultError(.dockerUnreachable, "cannot connect to the Docker daemon at \(endpoint.description) to "
            + "attach to a helper container: \(String(cString: strerror(errno)))", isTransient: true)
    }
}
