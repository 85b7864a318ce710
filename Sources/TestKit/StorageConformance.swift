public import StackVaultCore
import Foundation

/// The storage conformance suite: what every `StorageBackend` must do, run against each implementation (the local
/// directory in unit tests, a real S3 server in integration tests), as restic's `internal/backend/test/suite.go`.
///
/// It works under a fresh, unique name prefix and removes what it stored, also when a check fails.
public enum StorageConformance {
    /// A check the backend did not pass.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs every check against `backend`; throws a `Failure` naming the first one that fails.
    ///
    /// - Parameter largeFileBytes: the size of the "multi-MiB" object; make it exceed a backend's multipart
    ///   threshold to cover multipart uploads.
    public static func run(_ backend: any StorageBackend, largeFileBytes: Int = (6 << 20) + 12_345) async throws {
        let run = "conformance-\(UUID().uuidString.prefix(8).lowercased())"
        // Spaces, unicode and characters that URL encodings treat specially.
        let small = "\(run) small ünïcødé +=&$@,;'!(x)~.bin"
        let large = "\(run)-large.bin"
        let staging = try stagingDirectory(for: backend)
        var stored: Set<String> = []
        do {
            try await checks(backend, run: run, small: small, large: large, largeFileBytes: largeFileBytes,
                             staging: staging, stored: &stored)
        } catch {
            for name in stored { try? await backend.delete(name) }
            cleanStaging(staging, backend: backend)
            throw error
        }
        cleanStaging(staging, backend: backend)
    }

    private static func checks(
        _ backend: any StorageBackend,
        run: String,
        small: String,
        large: String,
        largeFileBytes: Int,
        staging: String,
        stored: inout Set<String>
    ) async throws {
        let keepsLocalFile = !backend.capabilities.isLocalDirectory
        var serial = 0
        func source(size: Int, seed: UInt64) throws -> (path: String, digest: SHA256.Digest) {
            serial += 1
            let path = "\(staging)/.\(run)-source-\(serial).partial"
            return (path, try writePattern(to: path, size: size, seed: seed))
        }

        // 1. Store a small, a multi-MiB and an empty object.
        let smallSource = try source(size: 1000, seed: 1)
        stored.insert(small)
        let smallObject = try await backend.store(localPath: smallSource.path, as: small)
        try expect(smallObject.name == small, "store returns the stored name (got '\(smallObject.name)')")
        try expect(smallObject.sizeBytes == 1000, "store returns the size (got \(smallObject.sizeBytes), want 1000)")
        if keepsLocalFile {
            try expect(FileManager.default.fileExists(atPath: smallSource.path),
                       "store leaves the local file in place (the engine removes it)")
            try? FileManager.default.removeItem(atPath: smallSource.path)
        }

        let largeSource = try source(size: largeFileBytes, seed: 2)
        stored.insert(large)
        let largeObject = try await backend.store(localPath: largeSource.path, as: large)
        try expect(largeObject.sizeBytes == Int64(largeFileBytes),
                   "store returns the size of the large object (got \(largeObject.sizeBytes), want \(largeFileBytes))")
        if keepsLocalFile {
            try expect(FileManager.default.fileExists(atPath: largeSource.path), "store leaves the local file in place")
            try? FileManager.default.removeItem(atPath: largeSource.path)
        }

        let empty = "\(run)-empty.bin"
        let emptySource = try source(size: 0, seed: 4)
        stored.insert(empty)
        let emptyObject = try await backend.store(localPath: emptySource.path, as: empty)
        try expect(emptyObject.sizeBytes == 0, "an empty file is stored as an empty object")
        try? FileManager.default.removeItem(atPath: emptySource.path)

        // 2. List with a prefix.
        let listed = try await backend.list(prefix: run)
        let sizes = Dictionary(listed.map { ($0.name, $0.sizeBytes) }, uniquingKeysWith: { first, _ in first })
        try expect(sizes == [small: 1000, large: Int64(largeFileBytes), empty: 0],
                   "list(prefix:) returns exactly the stored objects with their sizes (got \(sizes))")
        let narrowed = try await backend.list(prefix: "\(run) small")
        try expect(narrowed.map(\.name) == [small], "list(prefix:) filters by prefix (got \(narrowed.map(\.name)))")
        let none = try await backend.list(prefix: "\(run)-nothing-here")
        try expect(none.isEmpty, "list(prefix:) of an unused prefix is empty (got \(none.map(\.name)))")

        // 3. Read back byte-identical.
        try await expectContent(backend, small, digest: smallSource.digest, size: 1000)
        try await expectContent(backend, large, digest: largeSource.digest, size: largeFileBytes)
        try await expectContent(backend, empty, digest: emptySource.digest, size: 0)

        // 4. Storing under an existing name replaces the object.
        let replacement = try source(size: 2500, seed: 3)
        let replaced = try await backend.store(localPath: replacement.path, as: small)
        try expect(replaced.sizeBytes == 2500, "storing under an existing name returns the new size")
        try? FileManager.default.removeItem(atPath: replacement.path)
        try await expectContent(backend, small, digest: replacement.digest, size: 2500)
        let relisted = try await backend.list(prefix: run)
        try expect(relisted.count == 3 && relisted.first(where: { $0.name == small })?.sizeBytes == 2500,
                   "after replacing, list shows one object with the new size (got \(relisted))")

        // 5. Reading a missing object throws, and writes nothing.
        let missingSink = DigestSink()
        var readMissingThrew = false
        do {
            try await backend.read("\(run)-missing.bin", into: missingSink)
        } catch {
            readMissingThrew = true
        }
        try expect(readMissingThrew, "reading a missing object throws")
        try expect(missingSink.count == 0, "reading a missing object writes nothing into the sink")

        // 6. Storing a local file that does not exist throws and stores nothing.
        var storeMissingThrew = false
        do {
            _ = try await backend.store(localPath: "\(staging)/.\(run)-does-not-exist", as: "\(run)-ghost.bin")
        } catch {
            storeMissingThrew = true
        }
        try expect(storeMissingThrew, "storing a local file that does not exist throws")

        // 7. Delete; deleting again (a missing object) is not an error.
        for name in [small, large, empty] { try await backend.delete(name) }
        stored.removeAll()
        let afterDelete = try await backend.list(prefix: run)
        try expect(afterDelete.isEmpty, "after delete, list(prefix:) is empty (got \(afterDelete.map(\.name)))")
        try await backend.delete(small)
    }

    // MARK: - helpers

    private static func expect(_ condition: Bool, _ check: @autoclosure () -> String) throws {
        guard condition else { throw Failure(description: "storage conformance: \(check())") }
    }

    private static func expectContent(_ backend: any StorageBackend, _ name: String, digest: SHA256.Digest,
                                      size: Int) async throws {
        let sink = DigestSink()
        try await backend.read(name, into: sink)
        try expect(sink.count == size, "read('\(name)') returns \(size) bytes (got \(sink.count))")
        try expect(sink.digest == digest, "read('\(name)') returns the stored bytes (SHA-256 differs)")
    }

    /// Where source files are written: the backend's own directory for local backends (whose `store` renames),
    /// a temporary directory otherwise.
    private static func stagingDirectory(for backend: any StorageBackend) throws -> String {
        let temporary = "stackvault-conformance-\(UUID().uuidString)"
        let directory = backend.localDirectory ?? (NSTemporaryDirectory() as NSString).appendingPathComponent(temporary)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    private static func cleanStaging(_ staging: String, backend: any StorageBackend) {
        if backend.localDirectory == nil {
            try? FileManager.default.removeItem(atPath: staging)
        } else if let names = try? FileManager.default.contentsOfDirectory(atPath: staging) {
            for name in names where name.hasPrefix(".conformance-") {
                try? FileManager.default.removeItem(atPath: "\(staging)/\(name)")
            }
        }
    }

    /// Writes `size` pseudo-random bytes (xorshift from `seed`, so every offset differs) and returns their digest.
    @discardableResult
    public static func writePattern(to path: String, size: Int, seed: UInt64) throws -> SHA256.Digest {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path)
        else {
            throw Failure(description: "storage conformance: cannot create \(path)")
        }
        defer { try? handle.close() }
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var hasher = SHA256()
        var remaining = size
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while remaining > 0 {
            let count = min(remaining, chunk.count)
            chunk.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for index in 0..<((count + 7) / 8) {
                    state ^= state << 13
                    state ^= state >> 7
                    state ^= state << 17
                    words[index] = state
                }
            }
            let slice = chunk[0..<count]
            hasher.update(bytes: slice)
            try handle.write(contentsOf: slice)
            remaining -= count
        }
        return hasher.finalize()
    }
}

/// Hashes and counts what a backend reads, with constant memory.
final class DigestSink: ByteSink {
    private var hasher = SHA256()
    private(set) var count = 0

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        count += bytes.count
    }

    var digest: SHA256.Digest { hasher.finalize() }
}
