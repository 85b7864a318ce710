import Foundation
import Logging
import StackVaultCore

/// Builds, signs and sends single S3 requests over `HTTPClient` (libcurl); turns error answers and transport
/// failures into `StackVaultError`s that say what to fix and whether a retry may help. Retries are not made here
/// (`RetryingBackend` wraps the whole backend); the one exception is a request refused for its credentials, which
/// is signed again once with freshly resolved ones (a rotated key, renewed session credentials).
struct S3Client: Sendable {
    let configuration: S3Configuration
    let http: HTTPClient
    let logger: Logger
    let credentials: S3CredentialProvider

    /// Small answers (XML documents) are kept up to this size.
    static let maximumDocumentSize = 32 << 20
    /// Time limit for requests without a large body.
    static let shortTimeoutSeconds = 120

    init(configuration: S3Configuration, logger: Logger) {
        self.configuration = configuration
        self.http = HTTPClient()
        self.logger = logger
        self.credentials = S3CredentialProvider(chain: configuration.credentialChain, logger: logger)
    }

    /// One request before signing: signed anew (with current credentials and date) each time it is sent, with a
    /// body made anew each time (a streamed body starts over).
    struct Unsigned: Sendable {
        var method: String
        var key: String?
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body: @Sendable () -> HTTPRequest.Body = { .none }
        var payloadHash: String = SigV4Signer.emptyPayloadHash
        var timeoutSeconds: Int? = S3Client.shortTimeoutSeconds
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
        date: Date = Date(),
        credentials: S3Credentials? = nil
    ) -> HTTPRequest {
        let location = location(key: key, query: query)
        let signer = SigV4Signer(
            credentials: credentials ?? configuration.credentials ?? S3Credentials(accessKeyID: "", secretAccessKey: ""),
            region: configuration.region)
        let signed = signer.sign(method: method, path: location.path, query: query,
                                 headers: [("host", location.host)] + headers, payloadHash: payloadHash, date: date)
        return HTTPRequest(method: method, url: location.url, headers: signed, body: body,
                           timeoutSeconds: timeoutSeconds, connectTimeoutSeconds: 10,
                           caBundlePath: configuration.caBundlePath)
    }

    /// Sends one request and keeps the answer's body (an XML document, or nothing). Statuses outside 2xx and
    /// `accepting` become errors naming `operation`.
    func send(_ request: Unsigned, operation: String, accepting: Set<Int> = []) async throws -> S3Response {
        let body = CollectingSink(limit: Self.maximumDocumentSize)
        let (head, _) = try await exchange(request, into: body, operation: operation, accepting: accepting)
        return S3Response(head: head, body: body.bytes)
    }

    /// Sends `request`, streaming a 2xx answer's body into `sink`; signs it with the current credentials, and once
    /// more with re-resolved ones when the server refuses them. Returns the head and the error document of an
    /// answer in `accepting`; other non-2xx answers throw, with advice.
    @discardableResult
    func exchange(
        _ request: Unsigned,
        into sink: any ByteSink,
        operation: String,
        accepting: Set<Int> = [],
        failure: (S3ErrorResponse) -> (any Error)? = { _ in nil }
    ) async throws -> (HTTPResponseHead, S3ErrorResponse?) {
        var used = try await credentials.current()
        var refreshed = false
        while true {
            let errorBody = CollectingSink(limit: 64 << 10)
            let head: HTTPResponseHead
            do {
                head = try await http.stream(
                    self.request(request.method, key: request.key, query: request.query, headers: request.headers,
                                 body: request.body(), payloadHash: request.payloadHash,
                                 timeoutSeconds: request.timeoutSeconds, credentials: used),
                    into: sink, errorBody: errorBody)
            } catch {
                throw transportError(error, operation: operation)
            }
            if (200..<300).contains(head.status) { return (head, nil) }
            let response = S3ErrorResponse(status: head.status, headers: head.headers, body: errorBody.bytes)
            if accepting.contains(head.status) { return (head, response) }
            if response.refusedCredentials, !refreshed, let fresh = try await credentials.refresh(after: used) {
                used = fresh
                refreshed = true
                continue
            }
            if let custom = failure(response) { throw custom }
            throw response.error(operation: operation, configuration: configuration, credentials: used)
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
