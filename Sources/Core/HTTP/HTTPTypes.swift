/// An HTTP request as StackVault sends it, over TCP or a unix socket.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case none
        case bytes([UInt8])
        /// Pulled as the transfer goes: the closure fills the buffer and returns the count, 0 at the end.
        case stream(length: Int64?, read: @Sendable (UnsafeMutableRawBufferPointer) throws -> Int)
    }

    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: Body
    /// When set, the connection goes to this unix socket; the URL's host is then only a name.
    public var unixSocketPath: String?
    /// Whole-transfer limit; nil = none (long streams). The connection itself always has a limit.
    public var timeoutSeconds: Int?
    public var connectTimeoutSeconds: Int
    /// A CA bundle for self-signed TLS endpoints.
    public var caBundlePath: String?

    public init(
        method: String,
        url: String,
        headers: [(name: String, value: String)] = [],
        body: Body = .none,
        unixSocketPath: String? = nil,
        timeoutSeconds: Int? = nil,
        connectTimeoutSeconds: Int = 15,
        caBundlePath: String? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.unixSocketPath = unixSocketPath
        self.timeoutSeconds = timeoutSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.caBundlePath = caBundlePath
    }
}

/// Status and headers of a response. Header names are lower-cased; the last occurrence wins.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [String: String]

    public init(status: Int, headers: [String: String]) {
        self.status = status
        self.headers = headers
    }
}

/// A response whose body was small enough to keep.
public struct HTTPResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: [UInt8]
    public var status: Int { head.status }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Why a transfer failed before a response arrived (or while it streamed).
public struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case couldNotConnect
        case timedOut
        case cancelled
        case aborted
        case other
    }

    public var kind: Kind
    /// libcurl's own words, with its error buffer.
    public var message: String
    public var curlCode: Int

    public var description: String { message }
    /// Connection failures, resets and timeouts may pass; everything else is treated as permanent.
    public var isTransient: Bool {
        switch kind {
        case .couldNotConnect, .timedOut: true
        case .cancelled, .aborted: false
        case .other: [52, 55, 56, 18, 16, 92].contains(curlCode)  // empty reply, send/recv errors, partial file, HTTP/2
        }
    }
}
