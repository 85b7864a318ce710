public import StackVaultCore
public import Logging
import Foundation

/// A backend that retries the operations of another backend after transient failures, with backoff
/// (`RetryPolicy`); modelled on restic's `internal/backend/retry` `Backend`, which wraps any backend the same way.
///
/// - `store` is retried whole: the inner backend's all-or-nothing guarantee (a failed upload leaves nothing) makes
///   every attempt start clean. The local file is never touched by the inner backend, so every attempt re-reads it.
/// - `read` resumes: it counts the bytes `sink` has received and continues a broken transfer with
///   `read(_:from:into:)`, so `sink` sees every byte exactly once.
/// - `list` and `delete` are retried as they are (both are idempotent).
///
/// The wrapper is applied where backends are built (`BuiltinStorageBackends.registry()`), like restic's
/// `wrapBackend`, so backends write no retry loops of their own (S3 only re-sends a failed part of a multipart
/// upload with the same `RetryPolicy.run`, rather than the whole archive). The policy is the inner backend's when it has one
/// (`RetryConfigurable`, e.g. S3's `S3_MAX_ATTEMPTS`), else `RetryPolicy()`.
public struct RetryingBackend: StorageBackend {
    public let inner: any StorageBackend
    public let policy: RetryPolicy
    let logger: Logger

    public init(_ inner: any StorageBackend, policy: RetryPolicy? = nil,
                logger: Logger = Logger(label: "stackvault.storage")) {
        self.inner = inner
        self.policy = policy ?? (inner as? any RetryConfigurable)?.retryPolicy ?? RetryPolicy()
        self.logger = logger
    }

    public var description: String { inner.description }
    public var planDescription: String { inner.planDescription }
    public var capabilities: StorageCapabilities { inner.capabilities }
    public var localDirectory: String? { inner.localDirectory }

    public func store(localPath: String, as name: String) async throws -> StoredObject {
        try await policy.run("storing \(name) in \(description)", logger: logger) { _ in
            try await inner.store(localPath: localPath, as: name)
        }
    }

    public func list(prefix: String) async throws -> [StoredObject] {
        try await policy.run("listing \(description)", logger: logger) { _ in
            try await inner.list(prefix: prefix)
        }
    }

    public func read(_ name: String, into sink: any ByteSink) async throws {
        try await read(name, from: 0, into: sink)
    }

    public func read(_ name: String, from offset: Int64, into sink: any ByteSink) async throws {
        let counter = CountingSink(sink)
        try await policy.run("reading \(name) from \(description)", logger: logger) { _ in
            try await inner.read(name, from: offset + counter.delivered, into: counter)
        }
    }

    public func abortAbandonedUploads(olderThan seconds: Double) async throws -> [String] {
        try await inner.abortAbandonedUploads(olderThan: seconds)
    }

    public func delete(_ name: String) async throws {
        try await policy.run("deleting \(name) from \(description)", logger: logger) { _ in
            try await inner.delete(name)
        }
    }
}

/// A backend that chooses its own retry policy (S3: `S3_MAX_ATTEMPTS`); `RetryingBackend` uses it.
public protocol RetryConfigurable {
    var retryPolicy: RetryPolicy { get }
}

extension StorageBackendFactory {
    /// This factory with every backend it builds wrapped in a `RetryingBackend`.
    public func retrying() -> StorageBackendFactory {
        let make = self.make
        return StorageBackendFactory(scheme: scheme) { url, environment in
            RetryingBackend(try make(url, environment))
        }
    }
}

/// Forwards a download to the caller's sink, counting bytes so a broken transfer can resume at the right offset.
///
/// `@unchecked Sendable`: used by one transfer at a time (attempts run one after another).
final class CountingSink: ByteSink, @unchecked Sendable {
    let downstream: any ByteSink
    private(set) var delivered: Int64 = 0

    init(_ downstream: any ByteSink) { self.downstream = downstream }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        delivered += Int64(bytes.count)
    }
}
