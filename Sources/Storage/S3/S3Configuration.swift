import StackVaultCore
public import Foundation

/// Everything the S3 backend needs to reach one bucket: target, endpoint, credentials and upload tuning.
///
/// Built from the target URL (`s3://bucket/optional/prefix`) and the environment by `parse(url:environment:)`,
/// which names the variable to fix in every error. `description` never contains a secret.
public struct S3Configuration: Sendable, CustomStringConvertible {
    /// The bucket name, as in the URL.
    public var bucket: String
    /// The key prefix every object name is appended to: empty, or ending with `/`.
    public var prefix: String
    /// The signing region (`AWS_DEFAULT_REGION`, `AWS_REGION`, default `us-east-1`).
    public var region: String
    /// The service endpoint. For AWS this is `https://s3.<region>.amazonaws.com`.
    public var endpoint: S3Endpoint
    /// True when the endpoint came from the environment (not AWS): used for messages and defaults only.
    public var isCustomEndpoint: Bool
    /// Path-style (`https://host/bucket/key`) rather than virtual-hosted (`https://bucket.host/key`) addressing.
    public var usesPathStyle: Bool
    /// The keys given in the environment when the configuration was read; nil when the chain finds them at run time.
    /// Requests sign with what `credentialChain` resolves at each run (files are re-read).
    public var credentials: S3Credentials?
    /// Where credentials are looked up at every run (environment, shared file, container, instance role).
    public var credentialChain: S3CredentialChain
    /// A CA bundle (PEM) for endpoints with a self-signed or private certificate (`S3_CA_BUNDLE`).
    public var caBundlePath: String?
    /// Files up to this size go up in one PUT; larger ones as a multipart upload (`S3_MULTIPART_THRESHOLD`).
    public var multipartThreshold: Int64
    /// The preferred part size (`S3_PART_SIZE`); `S3PartPlan` raises it for very large files.
    public var partSize: Int64
    /// The most parts a multipart upload may have (`S3_MAX_PARTS`; 10,000, or 1,000 for Scaleway endpoints).
    public var maxParts: Int
    /// Parts uploaded at the same time (`S3_UPLOAD_CONCURRENCY`).
    public var concurrency: Int
    /// The checksum header sent with every upload (`S3_CHECKSUM`, default `sha256`: `x-amz-checksum-sha256`).
    public var checksum: S3ChecksumMode
    /// True when `S3_CHECKSUM` was set: then a server that rejects `x-amz-checksum-sha256` is not answered by
    /// falling back to `Content-MD5`.
    public var checksumIsExplicit: Bool = false
    /// Also send `Content-MD5` with every upload (`S3_CONTENT_MD5`, default false). The signed SHA-256 payload hash
    /// is always sent and AWS, MinIO, Ceph and Garage check it; servers that ignore it (rclone serve s3) still check
    /// `Content-MD5`. Costs one MD5 pass (about 1 s of CPU per GiB).
    public var sendsContentMD5: Bool
    /// `x-amz-storage-class` of new objects (`S3_STORAGE_CLASS`, e.g. `STANDARD_IA`); nil for the bucket's default.
    public var storageClass: String?
    /// Server-side encryption asked for on every upload (`S3_SSE`, `S3_SSE_KMS_KEY_ID`); nil for the bucket's default.
    public var encryption: S3ServerSideEncryption?
    public var retry: RetryPolicy

    public static let defaultRegion = "us-east-1"
    public static let defaultMultipartThreshold: Int64 = 64 << 20
    public static let defaultPartSize: Int64 = 8 << 20
    public static let defaultConcurrency = 4
    /// Endpoints whose service allows only 1,000 parts per upload (Scaleway Object Storage's documented limit).
    public static let thousandPartHostSuffixes = [".scw.cloud"]
    /// S3 refuses single PUTs above 5 GiB.
    public static let maximumSinglePutSize: Int64 = 5 << 30

    public init(
        bucket: String,
        prefix: String = "",
        region: String = S3Configuration.defaultRegion,
        endpoint: S3Endpoint? = nil,
        usesPathStyle: Bool? = nil,
        credentials: S3Credentials?,
        credentialChain: S3CredentialChain? = nil,
        caBundlePath: String? = nil,
        multipartThreshold: Int64 = S3Configuration.defaultMultipartThreshold,
        partSize: Int64 = S3Configuration.defaultPartSize,
        maxParts: Int? = nil,
        concurrency: Int = S3Configuration.defaultConcurrency,
        checksum: S3ChecksumMode = .sha256,
        sendsContentMD5: Bool = false,
        storageClass: String? = nil,
        encryption: S3ServerSideEncryption? = nil,
        retry: RetryPolicy = RetryPolicy()
    ) {
        self.bucket = bucket
        self.prefix = Self.normalizedPrefix(prefix)
        self.region = region
        self.endpoint = endpoint ?? S3Endpoint.aws(region: region)
        self.isCustomEndpoint = endpoint != nil
        // Custom endpoints (MinIO, Ceph, Garage, rclone) rarely have wildcard DNS for buckets: path-style there.
        // On AWS a bucket with dots breaks the TLS wildcard certificate of virtual-hosted names.
        self.usesPathStyle = usesPathStyle ?? (endpoint != nil || bucket.contains("."))
        self.credentials = credentials
        self.credentialChain = credentialChain ?? credentials.map { S3CredentialChain(fixed: $0) }
            ?? S3CredentialChain(environment: [:])
        self.caBundlePath = caBundlePath
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.maxParts = maxParts ?? Self.defaultMaxParts(endpoint: endpoint)
        self.concurrency = concurrency
        self.checksum = checksum
        self.sendsContentMD5 = sendsContentMD5
        self.storageClass = storageClass
        self.encryption = encryption
        self.retry = retry
    }

    /// `s3://bucket/prefix (endpoint http://127.0.0.1:9000)`: the target, never a secret.
    public var description: String {
        let target = prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix.dropLast())"
        return isCustomEndpoint ? "\(target) (endpoint \(endpoint))" : "\(target) (AWS region \(region))"
    }

    /// 1,000 for endpoints known to allow no more (`*.scw.cloud`), else S3's 10,000.
    public static func defaultMaxParts(endpoint: S3Endpoint?) -> Int {
        guard let host = endpoint?.host.lowercased() else { return S3PartPlan.maximumPartCount }
        return thousandPartHostSuffixes.contains { host.hasSuffix($0) } ? 1_000 : S3PartPlan.maximumPartCount
    }

    /// Whether uploads compute an MD5 (`S3_CHECKSUM=md5` or `S3_CONTENT_MD5=true`).
    var wantsMD5: Bool { wantsMD5(checksum) }

    /// Whether uploads with checksum `mode` compute an MD5.
    func wantsMD5(_ mode: S3ChecksumMode) -> Bool { sendsContentMD5 || mode == .md5 }

    /// Headers every new object gets: storage class and server-side encryption, when set.
    var objectHeaders: [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        switch encryption {
        case .aes256?:
            headers.append(("x-amz-server-side-encryption", "AES256"))
        case .kms(let keyID)?:
            headers.append(("x-amz-server-side-encryption", "aws:kms"))
            if let keyID { headers.append(("x-amz-server-side-encryption-aws-kms-key-id", keyID)) }
        case nil:
            break
        }
        return headers
    }

    /// The full key of the object `name`.
    public func key(for name: String) -> String { prefix + name }

    static func normalizedPrefix(_ prefix: String) -> String {
        let trimmed = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return trimmed.isEmpty ? "" : trimmed + "/"
    }
}

/// An S3 service endpoint: scheme, host, optional port and optional base path.
public struct S3Endpoint: Sendable, Equatable, CustomStringConvertible {
    /// `http` or `https`.
    public var scheme: String
    /// The host name or address (IPv6 without brackets).
    public var host: String
    /// An explicit port; nil for the scheme's default.
    public var port: Int?
    /// A path the service lives under (`/s3` behind some proxies): empty, or starting with `/` and not ending with one.
    public var basePath: String

    public init(scheme: String, host: String, port: Int? = nil, basePath: String = "") {
        self.scheme = scheme.lowercased()
        self.host = host
        let defaultPort = self.scheme == "https" ? 443 : 80
        self.port = port == defaultPort ? nil : port
        let trimmed = basePath.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.basePath = trimmed.isEmpty ? "" : "/" + trimmed
    }

    /// The AWS endpoint of `region`.
    public static func aws(region: String) -> S3Endpoint {
        S3Endpoint(scheme: "https", host: region.hasPrefix("cn-") ? "s3.\(region).amazonaws.com.cn"
                    : "s3.\(region).amazonaws.com")
    }

    /// `host[:port]`, as sent in the `Host` header, for a host name that may be prefixed with the bucket.
    func authority(hostPrefix: String = "") -> String {
        let name = host.contains(":") ? "[\(host)]" : host
        return hostPrefix + name + (port.map { ":\($0)" } ?? "")
    }

    public var description: String { "\(scheme)://\(authority())\(basePath)" }

    /// Parses `http(s)://host[:port][/base]`; `variable` is named in the error.
    public static func parse(_ text: String, variable: String) throws -> S3Endpoint {
        let value = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: value), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme)
        else {
            throw StackVaultError(.invalidConfiguration,
                "\(variable)='\(Redaction.redactURL(value))' is not an http:// or https:// URL "
                    + "(e.g. https://s3.example.com or http://minio:9000)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw StackVaultError(.invalidConfiguration,
                "\(variable)='\(Redaction.redactURL(value))' names no host (e.g. http://minio:9000)")
        }
        guard components.user == nil, components.password == nil, components.query == nil else {
            throw StackVaultError(.invalidConfiguration,
                "\(variable)='\(Redaction.redactURL(value))' must not contain credentials or a query: "
                    + "give the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return S3Endpoint(scheme: scheme, host: bare, port: components.port, basePath: components.path)
    }
}

/// Which checksum header uploads carry (`S3_CHECKSUM`).
public enum S3ChecksumMode: String, Sendable, Equatable {
    /// `x-amz-checksum-sha256` on every PUT and part (declared at CreateMultipartUpload, listed at completion):
    /// what Object Lock buckets and integrity-checking providers require.
    case sha256
    /// `Content-MD5` on every PUT and part, for servers that check only MD5.
    case md5
    /// No checksum header (the signed `x-amz-content-sha256` is still sent), for servers that reject them.
    case none
}

/// Server-side encryption asked for at upload (`S3_SSE`).
public enum S3ServerSideEncryption: Sendable, Equatable {
    /// `AES256`: keys managed by the service (SSE-S3).
    case aes256
    /// `aws:kms`, with the KMS key ID or ARN (`S3_SSE_KMS_KEY_ID`), or the account's default key.
    case kms(keyID: String?)
}

/// An access key pair, with an optional session token. Printing it never shows the secret or the token.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working (container and instance-role credentials); nil for long-lived keys.
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "access key \(accessKeyID), secret ***" + (sessionToken == nil ? "" : ", session token ***")
    }

    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": accessKeyID, "secretAccessKey": "***",
                                "sessionToken": sessionToken == nil ? "nil" : "***"])
    }
}

extension S3Configuration {
    /// Reads the target URL and the environment:
    ///
    /// - `S3_BUCKET_URL` (the `url` given): `s3://bucket/optional/prefix`; the prefix may hold spaces and unicode;
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`, each also as `<NAME>_FILE`;
    /// - `AWS_DEFAULT_REGION`, else `AWS_REGION`, else `us-east-1`;
    /// - `S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: a custom (non-AWS) endpoint;
    /// - `S3_FORCE_PATH_STYLE` (default true for custom endpoints, false for AWS), `S3_CA_BUNDLE`;
    /// - `S3_MULTIPART_THRESHOLD`, `S3_PART_SIZE` (sizes like `64MiB`), `S3_MAX_PARTS`, `S3_UPLOAD_CONCURRENCY`,
    ///   `S3_MAX_ATTEMPTS`, `S3_CHECKSUM`, `S3_CONTENT_MD5`, `S3_STORAGE_CLASS`, `S3_SSE`, `S3_SSE_KMS_KEY_ID`.
    ///
    /// Without keys in the environment the configuration is still valid: `credentialChain` finds them at run time.
    public static func parse(url: String, environment: [String: String]) throws -> S3Configuration {
        let variable = urlVariable(url, environment: environment)
        let (bucket, prefix) = try parseBucketURL(url, variable: variable)
        let normalized = normalizedPrefix(prefix)
        let target = normalized.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(normalized.dropLast())"

        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !raw.isEmpty else {
                return nil
            }
            return raw
        }

        // Keys in the environment are checked now (a half-set pair is a mistake to report before any run); with
        // none, the credential chain looks further at every run (shared file, container, instance role).
        let credentialChain = S3CredentialChain(environment: environment)
        let credentials = try credentialChain.fromEnvironment(target: target)

        let region = value("AWS_DEFAULT_REGION") ?? value("AWS_REGION") ?? defaultRegion
        guard region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            let name = value("AWS_DEFAULT_REGION") != nil ? "AWS_DEFAULT_REGION" : "AWS_REGION"
            throw StackVaultError(.invalidConfiguration, "\(name)='\(region)' is not a region name (e.g. eu-west-1)")
        }

        var endpoint: S3Endpoint?
        for name in ["S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"] {
            if let text = value(name) {
                endpoint = try S3Endpoint.parse(text, variable: name)
                break
            }
        }
        let pathStyle = try value("S3_FORCE_PATH_STYLE").map { try boolean($0, variable: "S3_FORCE_PATH_STYLE") }
        if pathStyle == false, bucket.contains("_") || bucket != bucket.lowercased() {
            throw StackVaultError(.invalidConfiguration,
                "S3_FORCE_PATH_STYLE=false needs a bucket name that is a valid host name, and '\(bucket)' is not: "
                    + "use path-style addressing (S3_FORCE_PATH_STYLE=true)")
        }

        var caBundlePath: String?
        if let path = value("S3_CA_BUNDLE") {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw StackVaultError(.invalidConfiguration, "S3_CA_BUNDLE='\(path)' is not a readable file")
            }
            caBundlePath = path
        }

        let threshold = try value("S3_MULTIPART_THRESHOLD").map { try size($0, variable: "S3_MULTIPART_THRESHOLD") }
            ?? defaultMultipartThreshold
        guard threshold <= maximumSinglePutSize else {
            throw StackVaultError(.invalidConfiguration,
                "S3_MULTIPART_THRESHOLD='\(value("S3_MULTIPART_THRESHOLD") ?? "")' is above 5GiB, the largest "
                    + "object S3 accepts in one PUT")
        }
        let partSize = try value("S3_PART_SIZE").map { try size($0, variable: "S3_PART_SIZE") } ?? defaultPartSize
        guard (S3PartPlan.minimumPartSize...S3PartPlan.maximumPartSize).contains(partSize) else {
            throw StackVaultError(.invalidConfiguration,
                "S3_PART_SIZE='\(value("S3_PART_SIZE") ?? "")' is outside what S3 accepts (5MiB to 5GiB)")
        }
        let concurrency = try value("S3_UPLOAD_CONCURRENCY").map {
            try integer($0, in: 1...64, variable: "S3_UPLOAD_CONCURRENCY")
        } ?? defaultConcurrency
        let contentMD5 = try value("S3_CONTENT_MD5").map { try boolean($0, variable: "S3_CONTENT_MD5") } ?? false
        var checksum = S3ChecksumMode.sha256
        if let text = value("S3_CHECKSUM") {
            guard let mode = S3ChecksumMode(rawValue: text.lowercased()) else {
                throw StackVaultError(.invalidConfiguration,
                    "S3_CHECKSUM='\(text)' is not one of sha256 (the default), md5 or none")
            }
            checksum = mode
        }
        let checksumIsExplicit = value("S3_CHECKSUM") != nil
        var retry = RetryPolicy()
        if let attempts = value("S3_MAX_ATTEMPTS") {
            retry.maxAttempts = try integer(attempts, in: 1...20, variable: "S3_MAX_ATTEMPTS")
        }
        let maxParts = try value("S3_MAX_PARTS").map {
            try integer($0, in: 1...S3PartPlan.maximumPartCount, variable: "S3_MAX_PARTS")
        } ?? defaultMaxParts(endpoint: endpoint)
        var storageClass: String?
        if let text = value("S3_STORAGE_CLASS") {
            guard text.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) else {
                throw StackVaultError(.invalidConfiguration,
                    "S3_STORAGE_CLASS='\(text)' is not a storage class name (e.g. STANDARD_IA, GLACIER_IR, ONEZONE_IA)")
            }
            storageClass = text
        }
        var encryption: S3ServerSideEncryption?
        let kmsKeyID = value("S3_SSE_KMS_KEY_ID")
        switch value("S3_SSE") {
        case nil:
            if kmsKeyID != nil {
                throw StackVaultError(.invalidConfiguration,
                    "S3_SSE_KMS_KEY_ID is set but S3_SSE is not: set S3_SSE=aws:kms to use the key")
            }
        case "AES256"?, "aes256"?:
            if kmsKeyID != nil {
                throw StackVaultError(.invalidConfiguration,
                    "S3_SSE_KMS_KEY_ID goes with S3_SSE=aws:kms, not AES256")
            }
            encryption = .aes256
        case "aws:kms"?, "AWS:KMS"?:
            encryption = .kms(keyID: kmsKeyID)
        case let other?:
            throw StackVaultError(.invalidConfiguration,
                "S3_SSE='\(other)' is not AES256 or aws:kms (with S3_SSE_KMS_KEY_ID for a customer key)")
        }

        var configuration = S3Configuration(
            bucket: bucket, prefix: prefix, region: region, endpoint: endpoint, usesPathStyle: pathStyle,
            credentials: credentials, credentialChain: credentialChain,
            caBundlePath: caBundlePath, multipartThreshold: threshold, partSize: partSize, maxParts: maxParts,
            concurrency: concurrency, checksum: checksum, sendsContentMD5: contentMD5, storageClass: storageClass,
            encryption: encryption, retry: retry)
        configuration.checksumIsExplicit = checksumIsExplicit
        return configuration
    }

    /// The variable the target URL most likely came from, for messages.
    static func urlVariable(_ url: String, environment: [String: String]) -> String {
        if environment["S3_BUCKET_URL"] == url { return "S3_BUCKET_URL" }
        if environment["BACKUP_TARGET"] == url { return "BACKUP_TARGET" }
        return "the backup target (S3_BUCKET_URL)"
    }

    /// `s3://bucket/optional/prefix` -> (bucket, prefix). The prefix is taken literally (no percent-decoding),
    /// as the AWS CLI does.
    static func parseBucketURL(_ url: String, variable: String) throws -> (bucket: String, prefix: String) {
        let shown = "\(variable)='\(Redaction.redactURL(url))'"
        guard let range = url.range(of: "://"), url[..<range.lowerBound].lowercased() == "s3" else {
            throw StackVaultError(.invalidConfiguration, "\(shown) is not an s3:// URL (e.g. s3://bucket/backups)")
        }
        let rest = url[range.upperBound...]
        let bucket = String(rest.prefix { $0 != "/" })
        let prefix = String(rest.dropFirst(bucket.count))
        guard !bucket.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "\(shown) names no bucket (e.g. s3://bucket/backups)")
        }
        guard !bucket.contains("@") else {
            throw StackVaultError(.invalidConfiguration,
                "\(shown) must not contain credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
        }
        let allowed = { (character: Character) in
            character.isASCII && (character.isLetter || character.isNumber || "-._".contains(character))
        }
        guard bucket.count <= 255, bucket.allSatisfy(allowed), bucket.first != ".", bucket.last != "."
        else {
            throw StackVaultError(.invalidConfiguration,
                "\(shown): '\(bucket)' is not a bucket name (letters, digits, '-', '.'; e.g. s3://my-backups/stack)")
        }
        let segments = prefix.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains(where: { $0 == "." || $0 == ".." }) else {
            throw StackVaultError(.invalidConfiguration,
                "\(shown): the prefix must not contain '.' or '..' path segments")
        }
        guard !prefix.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StackVaultError(.invalidConfiguration, "\(shown): the prefix contains control characters")
        }
        return (bucket, prefix)
    }

    /// `NAME`, or the content of the file named by `NAME_FILE` (Docker secrets), trimmed; nil when neither is set.
    static func secret(_ name: String, environment: [String: String]) throws -> String? {
        try EnvironmentSecret.value(name, environment: environment)
    }

    static func boolean(_ text: String, variable: String) throws -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            throw StackVaultError(.invalidConfiguration, "\(variable)='\(text)' is not true or false")
        }
    }

    static func integer(_ text: String, in range: ClosedRange<Int>, variable: String) throws -> Int {
        guard let number = Int(text), range.contains(number) else {
            throw StackVaultError(.invalidConfiguration,
                "\(variable)='\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Sizes like `8MiB`, `8M`, `64MB`, `1GiB`, `5242880`.
    static func size(_ text: String, variable: String) throws -> Int64 {
        let value = text.trimmingCharacters(in: .whitespaces)
        let lower = value.lowercased()
        let units: [(String, Int64)] = [
            ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1000), ("mb", 1_000_000),
            ("gb", 1_000_000_000), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
        ]
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            let number = lower.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            if let whole = Int64(number), whole >= 0, whole <= Int64.max / factor { return whole * factor }
            if let fraction = Double(number), fraction >= 0, fraction * Double(factor) < 1e18 {
                return Int64(fraction * Double(factor))
            }
            break
        }
        if let bytes = Int64(value), bytes >= 0 { return bytes }
        throw StackVaultError(.invalidConfiguration, "\(variable)='\(text)' is not a size (e.g. 8MiB, 64MB, 5242880)")
    }
}
