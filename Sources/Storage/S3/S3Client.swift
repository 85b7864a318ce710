import Foundation
import Logging
import StackVaultCore

/// Builds, signs and sends single S3 requests over `HTTPClient` (libcurl); turns error answers and transport
/// failures into `StackVaultError`s that say what to fix and whether a retry may help.
struct S3Client: Sendable {
    let configuration: S3Configuration
    let signer: SigV4Signer
    let http: HTTPClient
    let logger: Logger

    /// Small answers (XML documents) are kept up to this size.
    static let maximumDocumentSize = 32 << 20
    /// Time limit for requests without a large body.
    static let shortTimeoutSeconds = 120

    init(configuration: S3Configuration, logger: Logger) {
        self.configuration = configuration
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        self.http = HTTPClient()
        self.logger = logger
    }

    /// Where a request goes: the URL to send, the `Host` header and the encoded path (both signed).
    struct Location: Equatable {
        var url: String
        var host: String
        var path: String
    }

    /// The location of the object `key`, or of the bucket when `key` is nil.
    func location(key: String?, query: [(name: String, value: String)] = []) -> Location {
        let endpoint = configuration.endpoint
        var path = endpoint.basePath
        let host: String
        if configuration.usesPathStyle {
            host = endpoint.authority()
            path += "/" + SigV4Signer.uriEncode(configuration.bucket, encodeSlash: true)
            if let key { path += SigV4Signer.canonicalPath(key) }
        } else {
            host = endpoint.authority(hostPrefix: configuration.bucket + ".")
            path += key.map { SigV4Signer.canonicalPath($0) } ?? "/"
        }
        let queryString = SigV4Signer.canonicalQueryString(query)
        let url = "\(endpoint.scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?\(queryString)")
        return Location(url: url, host: host, path: path)
    }

    /// A signed request, dated now.
    func request(
        _ method: String,
        key: String?,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [],
        body: HTTPRequest.Body = .none,
        payloadHash: String = SigV4Signer.emptyPayloadHash,
        timeoutSeconds: Int? = S3Client.shortTimeoutSeconds,
        date: Date = Date()
    ) -> HTTPRequest {
        let location = location(key: key, query: query)
        let signed = signer.sign(method: method, path: location.path, query: query,
                                 headers: [("host", location.host)] + headers, payloadHash: payloadHash, date: date)
        return HTTPRequest(method: method, url: location.url, headers: signed, body: body,
                           timeoutSeconds: timeoutSeconds, connectTimeoutSeconds: 10,
                           caBundlePath: configuration.caBundlePath)
    }

    /// Sends one request and keeps the answer's body (an XML document, or nothing). Statuses outside 2xx and
    /// `accepting` become errors naming `operation`.
    func send(_ request: HTTPRequest, operation: String, accepting: Set<Int> = []) async throws -> S3Response {
        let body = CollectingSink(limit: Self.maximumDocumentSize)
        let errorBody = CollectingSink(limit: 64 << 10)
        let head: HTTPResponseHead
        do {
            head = try await http.stream(request, into: body, errorBody: errorBody)
        } catch {
            throw transportError(error, operation: operation)
        }
        guard (200..<300).contains(head.status) || accepting.contains(head.status) else {
            throw S3ErrorResponse(status: head.status, headers: head.headers, body: errorBody.bytes)
                .error(operation: operation, configuration: configuration)
        }
        return S3Response(head: head, body: body.bytes)
    }

    /// `send` with retries; `makeRequest` is called for every attempt, so each is freshly dated and signed and
    /// streams its body from the start.
    func sendWithRetries(
        _ operation: String,
        accepting: Set<Int> = [],
        makeRequest: () -> HTTPRequest
    ) async throws -> S3Response {
        try await withS3Retries(operation, policy: configuration.retry, logger: logger) { _ in
            try await send(makeRequest(), operation: operation, accepting: accepting)
        }
    }

    /// A transport failure (or anything thrown while sending) as a `StackVaultError` that names the endpoint.
    func transportError(_ error: any Error, operation: String) -> any Error {
        guard let transport = error as? HTTPTransportError else { return error }
        var hint = ""
        switch transport.curlCode {
        case 6, 7, 28:
            hint = " (is the S3 server up, and is "
                + (configuration.isCustomEndpoint ? "S3_ENDPOINT_URL" : "the region") + " right?)"
        case 35, 51, 53, 54, 58, 59, 60, 66, 77, 80, 82, 83, 90, 91:
            hint = " (a TLS problem: for a self-signed or private certificate set S3_CA_BUNDLE to its CA bundle)"
        default:
            break
        }
        return StackVaultError(.storage,
            "\(operation) failed: could not talk to the S3 endpoint \(configuration.endpoint): \(transport.message)"
                + hint,
            isTransient: transport.isTransient)
    }
}

/// An S3 answer whose (small) body was kept.
struct S3Response: Sendable {
    var head: HTTPResponseHead
    var body: [UInt8]
    var status: Int { head.status }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}
