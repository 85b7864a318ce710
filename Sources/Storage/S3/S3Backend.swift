public import Logging
public import StackVaultCore
import Foundation
import Synchronization

/// `s3://bucket/optional/prefix`: archives in an S3 bucket, on AWS or any S3-compatible service (MinIO, Ceph,
/// Garage, Backblaze B2, Wasabi, Cloudflare R2, rclone serve s3).
///
/// - Uploads stream from the finished local archive: up to `multipartThreshold` as one PUT, larger ones as a
///   multipart upload with a bounded number of parts in flight, each read with `pread` at its offset. Memory stays
///   flat whatever the archive size.
/// - Every request body carries its SHA-256 (`x-amz-content-sha256`, signed; AWS, MinIO, Ceph, Garage verify it)
///   and, by default, `x-amz-checksum-sha256` (the flexible checksum that Object Lock buckets and AWS require of
///   parts too); `S3_CHECKSUM=md5` or `S3_CONTENT_MD5=true` add `Content-MD5` (verified by every S3 server, rclone's
///   included), so data corrupted in flight is refused by the server.
/// - Errors say whether they are transient; retrying is `RetryingBackend`'s job (the registry wraps this backend),
///   except for the parts of a multipart upload, each retried on its own so a passing fault does not re-send the
///   whole archive. Permanent errors say what to fix. A failed multipart upload is aborted; the local file is never touched.
/// - Credentials are resolved at the start of every operation (`S3CredentialChain`), so rotated files and renewed
///   role credentials are used without a restart.
/// - After an upload the object's size is confirmed with HEAD before `store` returns.
public struct S3Backend: StorageBackend, RetryConfigurable {
    public let configuration: S3Configuration
    let client: S3Client
    let logger: Logger
    /// The checksum mode in use: `configuration.checksum`, or `md5` once the server refused
    /// `x-amz-checksum-sha256` while `S3_CHECKSUM` was left at its default.
    let checksum: S3ChecksumChoice

    /// The `s3://` entry of the storage registry.
    public static let factory = StorageBackendFactory(scheme: "s3") { url, environment in
        try S3Backend(url: url, environment: environment)
    }

    public init(configuration: S3Configuration, logger: Logger = Logger(label: "stackvault.storage.s3")) {
        self.configuration = configuration
        self.logger = logger
        self.client = S3Client(configuration: configuration, logger: logger)
        self.checksum = S3ChecksumChoice(configuration.checksum)
    }

    /// Reads the target URL and the environment (see `S3Configuration.parse(url:environment:)`).
    public init(url: String, environment: [String: String],
                logger: Logger = Logger(label: "stackvault.storage.s3")) throws {
        self.init(configuration: try S3Configuration.parse(url: url, environment: environment), logger: logger)
    }

    public var description: String { configuration.description }
    public var capabilities: StorageCapabilities {
        StorageCapabilities(isLocalDirectory: false,
                            maximumObjectSize: S3PartPlan.largestObject(maxParts: configuration.maxParts))
    }
    public var localDirectory: String? { nil }
    public var retryPolicy: RetryPolicy { configuration.retry }

    /// `s3://bucket/prefix (endpoint ...), credentials from the environment (...)`.
    public var planDescription: String { "\(description), credentials from \(credentialSource)" }

    /// Where credentials come from, as `plan` shows it (judged from the environment; never a secret).
    public var credentialSource: S3CredentialSource { configuration.credentialChain.expectedSource }

    // MARK: - store

    public func store(localPath: String, as name: String) async throws -> StoredObject {
        try Self.validate(name)
        let file = try S3SourceFile(path: localPath)
        let key = configuration.key(for: name)
        let started = ContinuousClock.now
        // Bytes done: the parts the server accepted (a part sent again is not counted twice).
        let progress = ProgressReporter(operation: "upload", subject: "\(name) to \(description)",
                                        total: ProgressTotal(bytes: file.size, estimated: false), logger: logger)
            .start()
        defer { progress.finish() }
        await client.credentials.beginOperation()
        do {
            do {
                try await upload(file, key: key, name: name, progress: progress)
            } catch let error as StackVaultError
                where !configuration.checksumIsExplicit && checksum.current == .sha256
                && (error.cause as? S3ErrorResponse)?.rejectsChecksumHeader == true
            {
                let message = "S3: \(description) does not accept x-amz-checksum-sha256 (\(error.cause!)); using "
                    + "Content-MD5 from now on (set S3_CHECKSUM=md5 to say so and skip this first try)"
                logger.warning("\(message)")
                checksum.current = .md5
                progress.set(0)
                try await upload(file, key: key, name: name, progress: progress)
            }
        } catch is CancellationError {
            throw StackVaultError(.cancelled, "the upload of \(name) to \(description) was cancelled")
        }
        let transferred = ContinuousClock.now
        let stored = try await confirm(key: key, name: name, expectedSize: file.size)
        let seconds = (ContinuousClock.now - started).seconds
        let confirming = (ContinuousClock.now - transferred).seconds
        let rate = seconds > 0 ? Double(file.size) / seconds / 1_048_576 : 0
        let summary = "S3: uploaded \(name) (\(file.size) bytes) to \(description) in "
            + "\(String(format: "%.2f", seconds)) s (\(String(format: "%.1f", rate)) MiB/s), including "
            + "\(String(format: "%.2f", confirming)) s for the server to confirm the size"
        logger.info("\(summary)")
        return stored
    }

    func upload(_ file: S3SourceFile, key: String, name: String, progress: ProgressReporter? = nil) async throws {
        if file.size <= configuration.multipartThreshold {
            try await uploadSingle(file, key: key, name: name)
            progress?.add(file.size)
        } else {
            try await uploadMultipart(file, key: key, name: name, progress: progress)
        }
    }

    /// One PUT streamed from the file, after a first pass that hashes it.
    func uploadSingle(_ file: S3SourceFile, key: String, name: String) async throws {
        let size = file.size
        logger.info("S3: uploading \(name) (\(size) bytes) to \(description) in one request")
        let mode = checksum.current
        let md5 = configuration.wantsMD5(mode)
        let digests = try await runBlocking { flag in
            try file.digests(offset: 0, length: size, md5: md5, cancellation: flag)
        }
        let headers = digests.headers(mode) + configuration.objectHeaders
            + [("content-type", "application/octet-stream")]
        _ = try await client.send(S3Client.Unsigned(
            method: "PUT", key: key, headers: headers, body: { file.body(offset: 0, length: size) },
            payloadHash: digests.sha256Hex, timeoutSeconds: nil), operation: "uploading \(name) to \(description)")
        file.dropFromCache(offset: 0, length: size)
    }

    /// HEADs the new object: it must exist with the local file's size. A missing object is a transient error (a
    /// server slow to show it: `RetryingBackend` tries again); a wrong size is deleted and reported.
    func confirm(key: String, name: String, expectedSize: Int64) async throws -> StoredObject {
        let operation = "confirming the upload of \(name) to \(description)"
        guard let head = try await headObject(name) else {
            throw StackVaultError(.storage, "\(operation) failed: the server reported success, but the object is "
                + "not there", isTransient: true)
        }
        let object = try storedObject(name, head: head)
        guard object.sizeBytes == expectedSize else {
            logger.error(
                "S3: \(name) has \(object.sizeBytes) bytes on the server instead of \(expectedSize); deleting it")
            try? await delete(name)
            throw StackVaultError(.verification, "the upload of \(name) to \(description) is incomplete: the server "
                + "holds \(object.sizeBytes) of \(expectedSize) bytes; the object was removed", isTransient: true)
        }
        return object
    }

    // MARK: - head, list, read, delete

    /// The object `name`, or nil when it does not exist.
    public func head(_ name: String) async throws -> StoredObject? {
        try Self.validate(name)
        return try await headObject(name).map { try storedObject(name, head: $0) }
    }

    /// The HEAD answer for `name`, or nil on 404.
    func headObject(_ name: String) async throws -> HTTPResponseHead? {
        let response = try await client.send(S3Client.Unsigned(method: "HEAD", key: configuration.key(for: name)),
                                             operation: "checking \(name) in \(description)", accepting: [404])
        return response.status == 404 ? nil : response.head
    }

    func storedObject(_ name: String, head: HTTPResponseHead) throws -> StoredObject {
        guard let length = head.headers["content-length"].flatMap({ Int64($0) }) else {
            throw StackVaultError(.storage, "checking \(name) in \(description) failed: the answer has no size")
        }
        return StoredObject(name: name, sizeBytes: length,
                            lastModified: head.headers["last-modified"].flatMap(Self.httpDate))
    }

    public func list(prefix: String) async throws -> [StoredObject] {
        let fullPrefix = configuration.prefix + prefix
        var objects: [StoredObject] = []
        var continuation: String?
        var startAfter: String?
        let dates = S3DateParser()
        await client.credentials.beginOperation()
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", fullPrefix)]
            if let continuation { query.append(("continuation-token", continuation)) }
            if let startAfter { query.append(("start-after", startAfter)) }
            let response = try await client.send(S3Client.Unsigned(method: "GET", key: nil, query: query),
                                                 operation: "listing \(description)")
            guard let root = S3XML.parse(response.body), root.name == "ListBucketResult" else {
                throw StackVaultError(.storage, "listing \(description) failed: the server's answer is not a "
                    + "ListBucketResult: \(response.bodyText.prefix(300))")
            }
            var lastKey: String?
            for entry in root.children("Contents") {
                guard let key = entry.value("Key") else { continue }
                lastKey = key
                guard key.hasPrefix(configuration.prefix), !key.hasSuffix("/") else { continue }
                objects.append(StoredObject(
                    name: String(key.dropFirst(configuration.prefix.count)),
                    sizeBytes: entry.value("Size").flatMap { Int64($0) } ?? 0,
                    lastModified: entry.value("LastModified").flatMap(dates.parse)))
            }
            continuation = nil
            startAfter = nil
            if root.value("IsTruncated")?.lowercased() == "true" {
                if let token = root.value("NextContinuationToken"), !token.isEmpty {
                    continuation = token
                } else if let lastKey {
                    startAfter = lastKey
                } else {
                    throw StackVaultError(.storage, "listing \(description) failed: the server says the list is "
                        + "truncated but gives no way to continue")
                }
            }
        } while continuation != nil || startAfter != nil
        return objects
    }

    /// Streams the object into `sink`. The object is looked up first (a missing one throws before anything is
    /// written).
    public func read(_ name: String, into sink: any ByteSink) async throws {
        try await read(name, from: 0, into: sink)
    }

    /// Streams the object from byte `offset` on (a ranged GET, how `RetryingBackend` resumes a broken transfer),
    /// bound to the ETag the HEAD saw, so a changed object is refused rather than spliced.
    public func read(_ name: String, from offset: Int64, into sink: any ByteSink) async throws {
        try Self.validate(name)
        let key = configuration.key(for: name)
        let operation = "reading \(name) from \(description)"
        await client.credentials.beginOperation()
        guard let object = try await headObject(name) else {
            throw StackVaultError(.storage, "\(operation) failed: there is no object \(name) (key '\(key)')")
        }
        let size = object.headers["content-length"].flatMap { Int64($0) }
        if let size, offset >= size { return }
        var headers: [(name: String, value: String)] = []
        if let etag = object.headers["etag"] { headers.append(("if-match", etag)) }
        if offset > 0 { headers.append(("range", "bytes=\(offset)-")) }
        let (head, _) = try await client.exchange(
            S3Client.Unsigned(method: "GET", key: key, headers: headers, timeoutSeconds: nil), into: sink,
            operation: operation
        ) { response in
            switch (response.status, response.code) {
            case (_, "NoSuchKey"), (404, nil):
                StackVaultError(.storage, "\(operation) failed: the object \(name) was deleted while it was read",
                                cause: response)
            case (412, _):
                StackVaultError(.storage, "\(operation) failed: the object changed while it was read; read it again",
                                cause: response)
            default:
                nil
            }
        }
        // rclone serve s3 answers a ranged GET with 200 and a Content-Range: accept either form.
        let ranged = head.status == 206 || head.headers["content-range"]?.hasPrefix("bytes \(offset)-") == true
        if offset > 0 && !ranged {
            throw StackVaultError(.storage, "\(operation) failed: the transfer broke off and the server cannot "
                + "resume it (it answered HTTP \(head.status) to a ranged GET, ignoring the Range header)")
        }
    }

    public func delete(_ name: String) async throws {
        try Self.validate(name)
        await client.credentials.beginOperation()
        _ = try await client.send(S3Client.Unsigned(method: "DELETE", key: configuration.key(for: name)),
                                  operation: "deleting \(name) from \(description)", accepting: [404])
    }

    // MARK: - helpers

    /// Names are relative to the prefix: not empty, no leading `/`, no `.` or `..` segments, no control characters,
    /// and the whole key at most 1024 bytes (S3's limit).
    static func validate(_ name: String) throws {
        let segments = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.hasPrefix("/"), !segments.contains(where: { $0 == "." || $0 == ".." }),
              !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }),
              name.utf8.count <= 1024
        else {
            throw StackVaultError(.storage, "'\(name)' is not a valid object name")
        }
    }

    /// `Last-Modified: Wed, 12 Oct 2009 17:50:00 GMT`.
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}

/// Parses ListObjectsV2's `LastModified` (`2009-10-12T17:50:30.000Z`, fractional seconds optional).
struct S3DateParser {
    private let withFraction: ISO8601DateFormatter
    private let plain: ISO8601DateFormatter

    init() {
        withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
    }

    func parse(_ text: String) -> Date? {
        withFraction.date(from: text) ?? plain.date(from: text)
    }
}

/// The checksum mode an `S3Backend` uses now; it changes at most once, from `sha256` to `md5`, when a server
/// refuses the `x-amz-checksum-sha256` header and `S3_CHECKSUM` was not set.
final class S3ChecksumChoice: Sendable {
    private let mode: Mutex<S3ChecksumMode>

    init(_ mode: S3ChecksumMode) { self.mode = Mutex(mode) }

    var current: S3ChecksumMode {
        get { mode.withLock { $0 } }
        set { mode.withLock { $0 = newValue } }
    }
}
