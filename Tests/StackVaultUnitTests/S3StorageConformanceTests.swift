import Foundation
import StackVaultCore
import StackVaultStorage
import StackVaultTestKit
import Testing

/// The storage conformance suite (StackVaultTestKit) against the backends that need no network. The S3 backend
/// runs the same suite against a real server in the integration tests.
@Suite("Storage conformance")
struct S3StorageConformanceTests {
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
