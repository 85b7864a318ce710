internal import CCurl
internal import CStackVaultShims
import Foundation

/// A small HTTP client over libcurl: one transfer per call, bodies streamed through callbacks.
///
/// Transfers run on a Dispatch thread (libcurl's easy interface blocks); cancelling the calling task aborts the
/// transfer at the next progress tick.
public struct HTTPClient: Sendable {
    /// Responses kept in memory by `send` are capped at this size.
    public static let maximumBufferedBody = 64 << 20
    /// libcurl's receive buffer per transfer.
    static let receiveBufferSize = 512 << 10

    public init() {}

    /// Sends `request` and keeps the (small) response body.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        // Keep the body whatever the status: error bodies carry the server's explanation.
        let collector = CollectingSink(limit: Self.maximumBufferedBody)
        let head = try await stream(request, into: collector, errorBody: collector)
        return HTTPResponse(head: head, body: collector.bytes)
    }

    /// Sends `request`; a 2xx body streams into `sink`, any other status's body (capped) comes back in the
    /// error callback's place: the returned head tells the status, and `errorBody` holds up to 64 KiB of it.
    @discardableResult
    public func stream(
        _ request: HTTPRequest,
        into sink: any ByteSink,
        errorBody: CollectingSink? = nil
    ) async throws -> HTTPResponseHead {
        let transfer = UnsafeTransfer((sink, errorBody))
        return try await runBlocking { flag in
            try Self.performBlocking(request, sink: transfer.value.0, errorBody: transfer.value.1, cancellation: flag)
        }
    }

    /// Runs one transfer on the calling thread.
    static func performBlocking(
        _ request: HTTPRequest,
        sink: any ByteSink,
        errorBody: CollectingSink?,
        cancellation: CancellationFlag
    ) throws -> HTTPResponseHead {
        let easy = try CurlEasy()
        let context = TransferContext(sink: sink, errorBody: errorBody ?? CollectingSink(limit: 64 << 10),
                                      body: request.body, cancellation: cancellation)
        let userData = Unmanaged.passUnretained(context).toOpaque()

        try easy.set(CURLOPT_URL, request.url)
        try easy.set(CURLOPT_NOSIGNAL, 1)
        try easy.set(CURLOPT_CONNECTTIMEOUT, request.connectTimeoutSeconds)
        if let timeout = request.timeoutSeconds { try easy.set(CURLOPT_TIMEOUT, timeout) }
        if let socket = request.unixSocketPath { try easy.set(CURLOPT_UNIX_SOCKET_PATH, socket) }
        if let ca = request.caBundlePath { try easy.set(CURLOPT_CAINFO, ca) }
        // Detect dead peers on long streams: fail when less than 1 byte/s flows for 5 minutes.
        try easy.set(CURLOPT_LOW_SPEED_LIMIT, 1)
        try easy.set(CURLOPT_LOW_SPEED_TIME, 300)
        try easy.set(CURLOPT_TCP_KEEPALIVE, 1)
        // Bigger receive reads than curl's 16 KiB: a directory stream from Docker then takes a few thousand
        // reads and callbacks per GiB instead of ~65,000.
        try easy.set(CURLOPT_BUFFERSIZE, HTTPClient.receiveBufferSize)

        try easy.set(CURLOPT_WRITEFUNCTION, callback: curlWriteCallback)
        try easy.set(CURLOPT_WRITEDATA, pointer: userData)
        try easy.set(CURLOPT_HEADERFUNCTION, callback: curlHeaderCallback)
        try easy.set(CURLOPT_HEADERDATA, pointer: userData)
        try easy.set(CURLOPT_NOPROGRESS, 0)
        try easy.setProgress(curlProgressCallback)
        try easy.set(CURLOPT_XFERINFODATA, pointer: userData)

        var headers = request.headers.map { "\($0.name): \($0.value)" }
        headers.append("Expect:")  // no 100-continue round trip
        switch request.body {
        case .none:
            if request.method == "HEAD" {
                try easy.set(CURLOPT_NOBODY, 1)
            } else if request.method != "GET" && request.method != "DELETE" {
                try easy.set(CURLOPT_POST, 1)
                try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: 0)
                try easy.set(CURLOPT_COPYPOSTFIELDS, "")
            }
        case .bytes(let bytes):
            try easy.set(CURLOPT_POST, 1)
            try easy.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(bytes.count))
            try bytes.withUnsafeBytes { raw in
                // COPYPOSTFIELDS copies POSTFIELDSIZE bytes, binary-safe.
                try easy.set(CURLOPT_COPYPOSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: raw.baseAddress
                    ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        case .stream(let length, _):
            try easy.set(CURLOPT_UPLOAD, 1)
            try easy.set(CURLOPT_READFUNCTION, callback: curlReadCallback)
            try easy.set(CURLOPT_READDATA, pointer: userData)
            if let length { try easy.set(CURLOPT_INFILESIZE_LARGE, offset: length) }
        }
        try easy.set(CURLOPT_CUSTOMREQUEST, request.method)
        try easy.setHeaders(headers)

        do {
            try easy.perform()
        } catch let error as HTTPTransportError {
            // A failure inside our own callbacks is the real cause; report it rather than curl's "write error".
            if let callbackError = context.callbackError { throw callbackError }
            if error.kind == .cancelled || cancellation.isCancelled {
                throw StackVaultError(.cancelled, "the transfer to \(request.url) was cancelled")
            }
            throw error
        }
        if let callbackError = context.callbackError { throw callbackError }
        return HTTPResponseHead(status: easy.responseCode(), headers: context.headers)
    }
}

/// Collects bytes in memory up to a limit (further bytes are dropped and `truncated` is set).
public final class CollectingSink: ByteSink, @unchecked Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var truncated = false
    let limit: Int

    public init(limit: Int = .max) { self.limit = limit }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        let room = limit - bytes.count
        if buffer.count > room { truncated = true }
        bytes.append(contentsOf: buffer.prefix(max(0, room)))
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// State shared with libcurl's callbacks through the user-data pointer.
private final class TransferContext {
    let sink: any ByteSink
    let errorBody: CollectingSink
    let body: HTTPRequest.Body
    let cancellation: CancellationFlag
    var headers: [String: String] = [:]
    var status = 0
    var callbackError: (any Error)?

    init(sink: any ByteSink, errorBody: CollectingSink, body: HTTPRequest.Body, cancellation: CancellationFlag) {
        self.sink = sink
        self.errorBody = errorBody
        self.body = body
        self.cancellation = cancellation
    }
}

private func curlWriteCallback(_ data: UnsafeMutablePointer<CChar>, _ size: Int, _ count: Int,
                               _ userData: UnsafeMutableRawPointer?) -> Int {
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    let buffer = UnsafeRawBufferPointer(start: data, count: length)
    do {
        if (200..<300).contains(context.status) {
            try context.sink.write(buffer)
        } else {
            try context.errorBody.write(buffer)
        }
        return length
    } catch {
        context.callbackError = error
        return 0  // a short count makes libcurl stop with CURLE_WRITE_ERROR
    }
}

private func curlHeaderCallback(_ data: UnsafeMutablePointer<CChar>, _ size: Int, _ count: Int,
                                _ userData: UnsafeMutableRawPointer?) -> Int {
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        // A new status line (after a 100 Continue, for instance) starts a new header block.
        let parts = line.split(separator: " ", maxSplits: 2)
        context.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        context.headers = [:]
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        context.headers[name] = value
    }
    return length
}

private func curlReadCallback(_ data: UnsafeMutablePointer<CChar>, _ size: Int, _ count: Int,
                              _ userData: UnsafeMutableRawPointer?) -> Int {
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    guard case .stream(_, let read) = context.body else { return 0 }
    do {
        return try read(UnsafeMutableRawBufferPointer(start: data, count: size * count))
    } catch {
        context.callbackError = error
        return CCurl_readfunc_abort()
    }
}

private func curlProgressCallback(_ userData: UnsafeMutableRawPointer?, _: curl_off_t, _: curl_off_t,
                                  _: curl_off_t, _: curl_off_t) -> Int32 {
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    return context.cancellation.isCancelled ? 1 : 0
}
