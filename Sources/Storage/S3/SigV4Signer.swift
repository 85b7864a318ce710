public import Foundation
import StackVaultCore

/// AWS Signature Version 4 for S3 (header-based), with OpenSSL's SHA-256 and HMAC-SHA256.
///
/// Follows "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)" of the S3 API
/// reference: the canonical request (method, URI-encoded path, sorted query, lower-cased sorted headers, signed
/// header list, payload hash) is hashed into the string to sign, which the key derived from the secret, the date,
/// the region and the service signs.
public struct SigV4Signer: Sendable {
    /// SHA-256 of the empty string: the payload hash of requests without a body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let algorithm = "AWS4-HMAC-SHA256"

    public var credentials: S3Credentials
    public var region: String
    public var service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Signs a request and returns every header to send: the given ones (which must include `host`) plus
    /// `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a session token) and `authorization`.
    ///
    /// - Parameters:
    ///   - path: the request path exactly as sent, already URI-encoded (see `canonicalPath(_:)`).
    ///   - query: the query parameters, not encoded; they are sent as `canonicalQueryString(query)`.
    ///   - payloadHash: lower-case hex SHA-256 of the body (the server checks it against what it receives).
    public func sign(
        method: String,
        path: String,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)],
        payloadHash: String,
        date: Date
    ) -> [(name: String, value: String)] {
        let timestamp = Self.timestamp(date)
        var all = headers
        all.append(("x-amz-date", timestamp))
        all.append(("x-amz-content-sha256", payloadHash))
        if let token = credentials.sessionToken { all.append(("x-amz-security-token", token)) }
        let authorization = authorizationHeader(method: method, path: path, query: query, headers: all,
                                                payloadHash: payloadHash, timestamp: timestamp)
        all.append(("authorization", authorization))
        return all
    }

    /// The `Authorization` header value for a request whose headers (including `x-amz-date`) are all given.
    public func authorizationHeader(
        method: String,
        path: String,
        query: [(name: String, value: String)],
        headers: [(name: String, value: String)],
        payloadHash: String,
        timestamp: String
    ) -> String {
        let canonical = Self.canonicalRequest(method: method, path: path, query: query, headers: headers,
                                              payloadHash: payloadHash)
        let day = String(timestamp.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = Self.stringToSign(canonicalRequest: canonical.request, timestamp: timestamp, scope: scope)
        let key = Self.signingKey(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        let signature = SHA256.hex(HMACSHA256.authenticationCode(key: key, message: toSign))
        return "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope),"
            + "SignedHeaders=\(canonical.signedHeaders),Signature=\(signature)"
    }

    /// The canonical request and the `;`-joined list of signed header names.
    public static func canonicalRequest(
        method: String,
        path: String,
        query: [(name: String, value: String)],
        headers: [(name: String, value: String)],
        payloadHash: String
    ) -> (request: String, signedHeaders: String) {
        // Lower-case names; trim values and fold inner runs of spaces; join repeated headers with commas.
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            merged[name.lowercased(), default: []].append(normalizedHeaderValue(value))
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let request = [
            method.uppercased(),
            path.isEmpty ? "/" : path,
            canonicalQueryString(query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        return (request, signedHeaders)
    }

    public static func stringToSign(canonicalRequest: String, timestamp: String, scope: String) -> String {
        [algorithm, timestamp, scope, SHA256.hash(canonicalRequest).hex].joined(separator: "\n")
    }

    /// HMAC chain `AWS4<secret>` -> day -> region -> service -> `aws4_request`.
    public static func signingKey(secret: String, day: String, region: String, service: String) -> [UInt8] {
        var key = HMACSHA256.authenticationCode(key: Array("AWS4\(secret)".utf8), message: day)
        key = HMACSHA256.authenticationCode(key: key, message: region)
        key = HMACSHA256.authenticationCode(key: key, message: service)
        return HMACSHA256.authenticationCode(key: key, message: "aws4_request")
    }

    /// The query string, sorted by encoded name then value, each part URI-encoded (`a=1&b=&c=x%2Fy`).
    public static func canonicalQueryString(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { parameter in
            (uriEncode(parameter.name, encodeSlash: true), uriEncode(parameter.value, encodeSlash: true))
        }
        let sorted = encoded.sorted { left, right in
            left.name == right.name ? left.value < right.value : left.name < right.name
        }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// `/` + the key, each byte except the unreserved ones (`A-Z a-z 0-9 - . _ ~`) and `/` percent-encoded once.
    public static func canonicalPath(_ key: String) -> String {
        "/" + uriEncode(key, encodeSlash: false)
    }

    /// SigV4's URI encoding: UTF-8 bytes, unreserved characters kept, everything else `%XX` (upper-case hex).
    /// A space is `%20` (never `+`); `/` is kept only when `encodeSlash` is false (object key paths).
    public static func uriEncode(_ string: String, encodeSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            if unreserved[Int(byte)] || (byte == UInt8(ascii: "/") && !encodeSlash) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 3986 unreserved bytes: `A-Z a-z 0-9 - . _ ~`.
    private static let unreserved: [Bool] = (0..<256).map { value in
        let byte = UInt8(value)
        let digitOrLetter = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        return digitOrLetter || Array("-._~".utf8).contains(byte)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC (the `x-amz-date` format).
    public static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    static func normalizedHeaderValue(_ value: String) -> String {
        var out = ""
        var lastWasSpace = false
        for character in value.trimmingCharacters(in: .whitespaces) {
            if character == " " {
                if !lastWasSpace { out.append(character) }
                lastWasSpace = true
            } else {
                out.append(character)
                lastWasSpace = false
            }
        }
        return out
    }

}
