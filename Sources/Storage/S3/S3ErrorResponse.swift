public import StackVaultCore
import Foundation

/// An S3 error answer: the HTTP status and, when the server sent one, the `<Error>` document's fields.
public struct S3ErrorResponse: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: String?
    public var message: String?
    /// The bucket's real region, when the server says (`<Region>` or `x-amz-bucket-region`).
    public var region: String?
    public var requestID: String?

    public init(status: Int, code: String? = nil, message: String? = nil, region: String? = nil,
                requestID: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.region = region
        self.requestID = requestID
    }

    /// Reads the `<Error>` body (if any) and the headers of a non-2xx answer.
    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.init(status: status)
        if let root = S3XML.parse(body), root.name == "Error" {
            code = root.value("Code").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            message = root.value("Message").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            region = root.value("Region")
            requestID = root.value("RequestId")
        }
        region = region ?? headers["x-amz-bucket-region"]
        requestID = requestID ?? headers["x-amz-request-id"]
        if code == nil, let headerCode = headers["x-amz-error-code"] { code = headerCode }
        // HEAD answers have no body; a 301 is S3's "wrong region" answer.
        if code == nil, status == 301 { code = "PermanentRedirect" }
    }

    /// S3 error codes worth another try: throttling, server trouble, and corruption in flight (the body is re-read
    /// from the file and sent again).
    public static let transientCodes: Set<String> = [
        "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "ThrottlingException",
        "RequestThrottled", "TooManyRequests", "OperationAborted", "BadDigest", "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    ]

    /// Codes that never get better by waiting: credentials, permissions, a missing bucket, a wrong region.
    public static let permanentCodes: Set<String> = [
        "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket", "NoSuchKey", "NoSuchUpload",
        "InvalidBucketName", "AuthorizationHeaderMalformed", "PermanentRedirect", "ExpiredToken", "InvalidToken",
        "RequestTimeTooSkewed", "EntityTooLarge", "EntityTooSmall", "InvalidPart", "InvalidPartOrder",
        "AccountProblem", "AllAccessDisabled", "InvalidArgument", "InvalidRequest", "MethodNotAllowed",
        "NotImplemented", "MissingContentMD5", "InvalidDigest",
    ]

    /// Codes that mean the credentials were refused: after one of these, the credentials are resolved again once
    /// (a rotated key file, expired session credentials).
    public static let credentialCodes: Set<String> = [
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
        "InvalidClientTokenId",
    ]

    /// Whether an S3 error answer may succeed when sent again: by code first, else by status.
    public static func isTransient(status: Int, code: String?) -> Bool {
        if let code {
            if transientCodes.contains(code) { return true }
            if permanentCodes.contains(code) { return false }
        }
        return [408, 429, 500, 502, 503, 504].contains(status)
    }

    /// True when sending the same request again may succeed.
    public var isTransient: Bool { Self.isTransient(status: status, code: code) }

    /// True when the server refused the credentials (a HEAD's bare 403 counts: it has no body to tell).
    var refusedCredentials: Bool {
        if let code { return Self.credentialCodes.contains(code) }
        return status == 403
    }

    /// True for a 400 that is about the checksum headers: a missing `Content-MD5`/`x-amz-checksum-*` (Object Lock
    /// buckets require one) or a checksum header the server does not accept.
    var concernsChecksum: Bool {
        guard status == 400 || status == 501 || code == "MissingContentMD5" || code == "InvalidDigest" else {
            return false
        }
        if code == "MissingContentMD5" || code == "MissingUploadObjectWithObjectLockHeaders" { return true }
        let text = (message ?? "").lowercased()
        return text.contains("content-md5") || text.contains("checksum")
    }

    /// A checksum answer that asks for a header (Object Lock buckets), rather than refusing the one sent.
    var requiresChecksum: Bool {
        guard concernsChecksum else { return false }
        let text = (message ?? "").lowercased()
        return code == "MissingContentMD5" || code == "MissingUploadObjectWithObjectLockHeaders"
            || text.contains("required") || text.contains("missing")
    }

    /// A checksum answer that refuses the `x-amz-checksum-*` header sent (Backblaze B2: 400 InvalidArgument
    /// "Unsupported header 'x-amz-checksum-sha256' received for this API call").
    var rejectsChecksumHeader: Bool { concernsChecksum && !requiresChecksum }

    /// A `StackVaultError` that says what went wrong while doing `operation` and what to fix. `credentials` are
    /// the ones the request was signed with (for the access key named in advice; never the secret).
    public func error(operation: String, configuration: S3Configuration,
                      credentials: S3Credentials? = nil) -> StackVaultError {
        let bucket = configuration.bucket
        let accessKey = (credentials ?? configuration.credentials)?.accessKeyID ?? "(none)"
        let advice: String
        if concernsChecksum {
            if requiresChecksum {
                advice = "the bucket requires a checksum header on uploads (Object Lock buckets do): leave "
                    + "S3_CHECKSUM at sha256 (the default; now '\(configuration.checksum.rawValue)') or set "
                    + "S3_CHECKSUM=md5 / S3_CONTENT_MD5=true for servers that check only MD5"
            } else {
                advice = "the server does not accept the checksum header sent (S3_CHECKSUM="
                    + "\(configuration.checksum.rawValue)): set S3_CHECKSUM=md5, or S3_CHECKSUM=none for servers "
                    + "that reject checksum headers"
            }
            return StackVaultError(.storage, "\(operation) failed: \(advice)", isTransient: false,
                                   cause: self)
        }
        switch code {
        case "SignatureDoesNotMatch":
            advice = "the server rejected the request signature: AWS_SECRET_ACCESS_KEY does not match the access key "
                + "'\(accessKey)' (check the secret, and AWS_DEFAULT_REGION '\(configuration.region)' if the server "
                + "expects another region)"
        case "InvalidAccessKeyId":
            advice = "the server does not know the access key '\(accessKey)': check AWS_ACCESS_KEY_ID"
        case "AccessDenied", "AllAccessDisabled", "AccountProblem":
            advice = "access denied: the access key '\(accessKey)' may not do this in bucket '\(bucket)'; "
                + "grant it s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject and "
                + "s3:AbortMultipartUpload on the bucket and prefix"
        case "NoSuchBucket":
            advice = "the bucket '\(bucket)' does not exist at \(configuration.endpoint): create it, or fix the "
                + "bucket name in S3_BUCKET_URL"
                + (configuration.isCustomEndpoint ? "" : " (or set S3_ENDPOINT_URL for a non-AWS service)")
        case "NoSuchKey":
            advice = "the object does not exist"
        case "NoSuchUpload":
            advice = "the multipart upload no longer exists on the server (aborted by another client or a "
                + "lifecycle rule); run the backup again"
        case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
            if let region, region != configuration.region {
                advice = "the bucket '\(bucket)' is in region '\(region)', not '\(configuration.region)': "
                    + "set AWS_DEFAULT_REGION=\(region)"
            } else {
                advice = "the server refused the region '\(configuration.region)' for bucket '\(bucket)': set "
                    + "AWS_DEFAULT_REGION to the bucket's region"
                    + (configuration.isCustomEndpoint ? "" : " or S3_ENDPOINT_URL to its endpoint")
            }
        case "RequestTimeTooSkewed":
            advice = "this host's clock is too far from the server's: synchronise it (NTP)"
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            advice = "the session token is expired or invalid: renew AWS_SESSION_TOKEN with the other credentials "
                + "(credentials from a container or instance role are refreshed by themselves)"
        case "InvalidBucketName":
            advice = "the server does not accept '\(bucket)' as a bucket name: fix S3_BUCKET_URL"
        case "EntityTooLarge":
            advice = "the server refuses an object or part this large: lower S3_PART_SIZE or "
                + "S3_MULTIPART_THRESHOLD"
        case "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests":
            advice = "the server asks to slow down: lower S3_UPLOAD_CONCURRENCY if this persists"
        case "BadDigest", "XAmzContentSHA256Mismatch":
            advice = "the data arrived corrupted (the checksum did not match): check the network path or any proxy"
        default:
            switch status {
            case 403:
                advice = "access denied (HTTP 403): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the key's "
                    + "permissions on bucket '\(bucket)'"
            case 404:
                advice = "not found (HTTP 404): check that the bucket '\(bucket)' exists at \(configuration.endpoint)"
            case 500...599:
                advice = "the S3 server failed (HTTP \(status))"
            default:
                advice = "the S3 server answered HTTP \(status)"
            }
        }
        return StackVaultError(.storage, "\(operation) failed: \(advice)", isTransient: isTransient, cause: self)
    }

    /// `SignatureDoesNotMatch, HTTP 403, "The request signature ...", request id X`.
    public var description: String {
        var details: [String] = []
        if let code { details.append(code) }
        details.append("HTTP \(status)")
        if let message, !message.isEmpty, message != code { details.append("\"\(message)\"") }
        if let requestID, !requestID.isEmpty { details.append("request id \(requestID)") }
        return details.joined(separator: ", ")
    }
}
