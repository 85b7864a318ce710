public import Foundation

/// An object in a storage target.
public struct StoredObject: Sendable, Hashable, Codable {
    /// The object's name relative to the target (`backup-app-20261127-120000-<uuid>.tar.zst`).
    public var name: String
    public var sizeBytes: Int64
    public var lastModified: Date?

    public init(name: String, sizeBytes: Int64, lastModified: Date? = nil) {
        self.name = name
        self.sizeBytes = sizeBytes
        self.lastModified = lastModified
    }
}

/// What a backend can do, declared rather than assumed (restic's backend `Properties`).
public struct StorageCapabilities: Sendable, Equatable {
    /// The backend is a local directory: the engine writes archives straight into it under a temporary name, and
    /// `store` only renames (no second copy on disk).
    public var isLocalDirectory: Bool
    /// The largest object the backend accepts, if limited.
    public var maximumObjectSize: Int64?

    public init(isLocalDirectory: Bool, maximumObjectSize: Int64? = nil) {
        self.isLocalDirectory = isLocalDirectory
        self.maximumObjectSize = maximumObjectSize
    }
}

/// A place archives are kept, selected by the scheme of its URL (`file://`, `s3://`).
///
/// An implementation must guarantee:
/// - `store` is all or nothing: while it runs, and after it fails, no object is visible under `name` (a partial
///   upload is removed or aborted); when it returns, the object is confirmed complete (size checked);
/// - the local file given to `store` is never deleted by the backend: the engine removes it once stored;
/// - `read` streams, with memory bounded whatever the object size;
/// - errors say what to fix (wrong credentials, missing bucket, unreachable endpoint) and never contain secrets;
///   `StackVaultError.isTransient` tells passing faults from permanent ones.
public protocol StorageBackend: Sendable {
    /// The target, with any secret redacted, for logs and `plan`.
    var description: String { get }
    /// What `plan` shows for the target: `description`, plus what the backend adds (S3: where its credentials come
    /// from). Never a secret. Default: `description`.
    var planDescription: String { get }
    var capabilities: StorageCapabilities { get }
    /// For local-directory backends: the directory archives live in (the engine stages archives there).
    var localDirectory: String? { get }

    /// Stores the finished archive at `localPath` as `name`.
    func store(localPath: String, as name: String) async throws -> StoredObject
    /// Objects whose names start with `prefix`, in no particular order.
    func list(prefix: String) async throws -> [StoredObject]
    /// Streams the object `name` into `sink`.
    func read(_ name: String, into sink: any ByteSink) async throws
    /// Streams the object `name` from byte `offset` on into `sink`: how a retried read resumes where a broken
    /// transfer stopped. The default reads from the start and drops the first `offset` bytes; backends that can seek
    /// (S3 ranged GETs) override it.
    func read(_ name: String, from offset: Int64, into sink: any ByteSink) async throws
    func delete(_ name: String) async throws
    /// Aborts the uploads of archives (names `ArchiveName` parses) that runs started and never finished, begun
    /// more than `seconds` ago, logging each; returns their names. Only backends with resumable uploads (S3
    /// multipart uploads) have any: the default does nothing.
    func abortAbandonedUploads(olderThan seconds: Double) async throws -> [String]
}

extension StorageBackend {
    public var planDescription: String { description }

    public func abortAbandonedUploads(olderThan seconds: Double) async throws -> [String] { [] }

    public func read(_ name: String, from offset: Int64, into sink: any ByteSink) async throws {
        guard offset > 0 else { return try await read(name, into: sink) }
        try await read(name, into: SkippingSink(skipping: offset, into: sink))
    }
}

/// Drops the first `skipping` bytes and forwards the rest (the default `read(_:from:into:)`).
///
/// `@unchecked Sendable`: written by one read at a time.
private final class SkippingSink: ByteSink, @unchecked Sendable {
    private var remaining: Int64
    private let downstream: any ByteSink

    init(skipping: Int64, into downstream: any ByteSink) {
        remaining = skipping
        self.downstream = downstream
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard remaining > 0 else { return try downstream.write(bytes) }
        let skipped = Int(min(Int64(bytes.count), remaining))
        remaining -= Int64(skipped)
        if skipped < bytes.count { try downstream.write(UnsafeRawBufferPointer(rebasing: bytes[skipped...])) }
    }
}

/// Builds a backend from a target URL and the environment (for credentials).
public struct StorageBackendFactory: Sendable {
    public var scheme: String
    public var make: @Sendable (_ url: String, _ environment: [String: String]) throws -> any StorageBackend

    public init(
        scheme: String,
        make: @escaping @Sendable (_ url: String, _ environment: [String: String]) throws -> any StorageBackend
    ) {
        self.scheme = scheme
        self.make = make
    }
}

/// Storage backends by URL scheme, from one explicit list (`BuiltinStorageBackends.all`).
public struct StorageRegistry: Sendable {
    private let registry: PluginRegistry<StorageBackendFactory>

    public init(_ factories: [StorageBackendFactory]) throws {
        registry = try PluginRegistry(kind: "storage backend", factories.map { ($0.scheme, $0) })
    }

    public var schemes: [String] { registry.keys }

    /// The backend for `url`. A plain path (no `scheme://`) means the `file` backend.
    public func backend(for url: String, environment: [String: String]) throws -> any StorageBackend {
        let scheme: String
        if let range = url.range(of: "://") {
            scheme = url[..<range.lowerBound].lowercased()
        } else {
            scheme = "file"
        }
        guard let factory = registry[scheme] else {
            throw StackVaultError(.invalidConfiguration,
                "backup target '\(Redaction.redactURL(url))' uses the scheme '\(scheme)://', which no storage backend "
                    + "handles (known: \(schemes.map { "\($0)://" }.joined(separator: ", ")))")
        }
        return try factory.make(url, environment)
    }
}

/// Keeps secrets out of messages.
public enum Redaction {
    /// `scheme://user:secret@host/...` -> `scheme://user:***@host/...`; query strings are dropped.
    public static func redactURL(_ url: String) -> String {
        var value = url
        if let query = value.firstIndex(of: "?") { value = String(value[..<query]) + "?***" }
        if let schemeEnd = value.range(of: "://"), let at = value[schemeEnd.upperBound...].firstIndex(of: "@") {
            let userInfo = value[schemeEnd.upperBound..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                value.replaceSubrange(value.index(after: colon)..<at, with: "***")
            }
        }
        return value
    }
}
