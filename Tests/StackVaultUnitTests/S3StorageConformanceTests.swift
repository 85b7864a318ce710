import Foundation
import StackVaultCore
import StackVaultStorage
import StackVaultTestKit
import Testing

/// The storage conformance suite (StackVaultTestKit) against the backends that need no network: the local
/// directory (as the registry builds it, retry-wrapped), the in-memory backend, and the retry wrapper around a
/// backend that fails now and then. The S3 backend runs the same suite against real servers (rclone, moto) in the
/// integration tests.
@Suite("Storage conformance")
struct S3StorageConformanceTests {
    @Test func theSuiteIsAListOfNamedChecks() {
        let names = StorageConformance.checks.map(\.name)
        #expect(names.count >= 8)
        #expect(Set(names).count == names.count, "check names are unique")
    }

    @Test func inMemoryBackendConforms() async throws {
        let backend = InMemoryStorageBackend()
        try await StorageConformance.run(backend)
        #expect(backend.names.isEmpty, "the suite cleans up after itself (left: \(backend.names))")
    }

    /// Every operation of the inner backend fails once with a transient error (reads after half the object):
    /// the wrapper retries each, and a broken read resumes so the sink sees every byte once.
    @Test func retryWrappedBackendConformsThroughTransientFailures() async throws {
        let inner = InMemoryStorageBackend()
        let wrapped = RetryingBackend(inner, policy: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1),
                                                                 maxDelay: .milliseconds(2)))
        for check in StorageConformance.checks {
            for operation in [InMemoryStorageBackend.Operation.store, .list, .read, .delete] {
                inner.failNext(operation, times: 1)
            }
            try await StorageConformance.run(wrapped, largeFileBytes: 300_000, only: [check.name])
        }
        #expect(inner.names.isEmpty)
    }

    @Test func retryWrapperGivesUpOnPermanentErrorsAndAfterMaxAttempts() async throws {
        let inner = InMemoryStorageBackend()
        let wrapped = RetryingBackend(inner, policy: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(1),
                                                                 maxDelay: .milliseconds(2)))
        inner.failNext(.list, times: 2)
        let exhausted = await #expect(throws: StackVaultError.self) { try await wrapped.list(prefix: "") }
        #expect(exhausted?.message.contains("gave up after 2 attempts") == true)
        #expect(exhausted?.isTransient == true)
        inner.failNext(.read, times: 1)
        let missing = await #expect(throws: StackVaultError.self) {
            try await wrapped.read("missing", into: CollectingSink(limit: 10))
        }
        #expect(missing?.message.contains("gave up") == false, "a missing object is not retried")
    }

    @Test func theRegistryWrapsEveryBackendInRetries() throws {
        let registry = try BuiltinStorageBackends.registry()
        #expect(try registry.backend(for: "/srv/b", environment: [:]) is RetryingBackend)
        let s3 = try registry.backend(for: "s3://b/p", environment: ["AWS_ACCESS_KEY_ID": "AKID",
                                                                     "AWS_SECRET_ACCESS_KEY": "x",
                                                                     "S3_MAX_ATTEMPTS": "3"])
        let wrapped = try #require(s3 as? RetryingBackend)
        #expect(wrapped.policy.maxAttempts == 3, "the S3 backend's S3_MAX_ATTEMPTS is the wrapper's policy")
        #expect(wrapped.inner is S3Backend)
    }

    @Test func localDirectoryBackendConforms() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("stackvault-conformance-local-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let backend = try BuiltinStorageBackends.registry().backend(for: "file://\(directory.path)", environment: [:])
        try await StorageConformance.run(backend)
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(left.isEmpty, "the suite cleans up after itself (left: \(left))")
    }

    /// A backend that drops what it stores must fail the suite: the suite really checks.
    @Test func aBrokenBackendFails() async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("stackvault-conformance-broken-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = TruncatingBackend(inner: LocalDirectoryBackend(directory: directory.path))
        await #expect(throws: StorageConformance.Failure.self) { try await StorageConformance.run(broken) }
    }
}

/// Stores only the first half of every file: what a careless upload would do.
struct TruncatingBackend: StorageBackend {
    let inner: LocalDirectoryBackend
    var description: String { "truncating " + inner.description }
    var capabilities: StorageCapabilities { inner.capabilities }
    var localDirectory: String? { inner.localDirectory }

    func store(localPath: String, as name: String) async throws -> StoredObject {
        let size = (try FileManager.default.attributesOfItem(atPath: localPath)[.size] as? NSNumber)?.uint64Value ?? 0
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: localPath))
        try handle.truncate(atOffset: size / 2)
        try handle.close()
        var object = try await inner.store(localPath: localPath, as: name)
        object.sizeBytes = Int64(size)
        return object
    }

    func list(prefix: String) async throws -> [StoredObject] { try await inner.list(prefix: prefix) }
    func read(_ name: String, into sink: any ByteSink) async throws { try await inner.read(name, into: sink) }
    func delete(_ name: String) async throws { try await inner.delete(name) }
}
