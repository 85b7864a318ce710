public import StackVaultCore
import Foundation

/// The storage conformance suite: what every `StorageBackend` must do, as a list of named checks (`checks`), run
/// against each implementation (the in-memory and local-directory backends and the retry wrapper in unit tests,
/// real S3 servers in integration tests), as restic's `internal/backend/test/suite.go` runs its named tests
/// against every backend.
///
/// Every check works under its own fresh, unique name prefix and removes what it stored, also when it fails. All
/// checks run; the `Failure` thrown at the end names each check that failed and why.
public enum StorageConformance {
    /// Checks the backend did not pass.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// One named check of the suite.
    public struct Check: Sendable {
        public let name: String
        let body: @Sendable (Context) async throws -> Void
    }

    /// What a check gets: the backend, its unique prefix, a staging directory for local files, and the size of the
    /// "multi-MiB" object. Objects a check stores are recorded for cleanup.
    public final class Context: @unchecked Sendable {
        public let backend: any StorageBackend
        public let run: String
        public let largeFileBytes: Int
        let staging: String
        var stored: Set<String> = []
        private var serial = 0

        init(backend: any StorageBackend, run: String, largeFileBytes: Int, staging: String) {
            self.backend = backend
            self.run = run
            self.largeFileBytes = largeFileBytes
            self.staging = staging
        }

        /// Whether `store` leaves the local file (true for all but local-directory backends, whose `store` renames).
        var keepsLocalFile: Bool { !backend.capabilities.isLocalDirectory }

        /// A local file of `size` pattern bytes, and its digest.
        func source(size: Int, seed: UInt64) throws -> (path: String, digest: SHA256.Digest) {
            serial += 1
            let path = "\(staging)/.\(run)-source-\(serial).partial"
            return (path, try writePattern(to: path, size: size, seed: seed))
        }

        /// Stores a file of `size` bytes as `name` and checks what `store` returns and that the local file stays.
        @discardableResult
        func store(_ name: String, size: Int, seed: UInt64) async throws -> SHA256.Digest {
            let source = try source(size: size, seed: seed)
            stored.insert(name)
            let object = try await backend.store(localPath: source.path, as: name)
            try expect(object.name == name, "store returns the stored name (got '\(object.name)')")
            try expect(object.sizeBytes == Int64(size), "store returns the size (got \(object.sizeBytes), want \(size))")
            if keepsLocalFile {
                try expect(FileManager.default.fileExists(atPath: source.path),
                           "store leaves the local file in place (the engine removes it)")
                try? FileManager.default.removeItem(atPath: source.path)
            }
            return source.digest
        }
    }

    /// Every check, in the order they run.
    public static let checks: [Check] = [
        Check(name: "store returns the name and size and leaves the local file") { context in
            try await context.store("\(context.run)-small.bin", size: 1000, seed: 1)
        },
        Check(name: "names with spaces, unicode and URL-special characters round-trip") { context in
            // Spaces, unicode and characters that URL encodings treat specially.
            let name = "\(context.run) small ünïcødé +=&$@,;'!(x)~.bin"
            let digest = try await context.store(name, size: 1000, seed: 1)
            try await expectContent(context.backend, name, digest: digest, size: 1000)
            let listed = try await context.backend.list(prefix: context.run)
            try expect(listed.map(\.name) == [name], "list shows the name unchanged (got \(listed.map(\.name)))")
        },
        Check(name: "a multi-MiB object reads back byte-identical") { context in
            let name = "\(context.run)-large.bin"
            let digest = try await context.store(name, size: context.largeFileBytes, seed: 2)
            try await expectContent(context.backend, name, digest: digest, size: context.largeFileBytes)
        },
        Check(name: "an empty file is stored as an empty object") { context in
            let name = "\(context.run)-empty.bin"
            let digest = try await context.store(name, size: 0, seed: 4)
            try await expectContent(context.backend, name, digest: digest, size: 0)
        },
        Check(name: "list filters by prefix and reports sizes") { context in
            let run = context.run
            try await context.store("\(run) a.bin", size: 1000, seed: 1)
            try await context.store("\(run)-b.bin", size: 2000, seed: 2)
            try await context.store("\(run)-c.bin", size: 0, seed: 3)
            let listed = try await context.backend.list(prefix: run)
            let sizes = Dictionary(listed.map { ($0.name, $0.sizeBytes) }, uniquingKeysWith: { first, _ in first })
            try expect(sizes == ["\(run) a.bin": 1000, "\(run)-b.bin": 2000, "\(run)-c.bin": 0],
                       "list(prefix:) returns exactly the stored objects with their sizes (got \(sizes))")
            let narrowed = try await context.backend.list(prefix: "\(run) a")
            try expect(narrowed.map(\.name) == ["\(run) a.bin"],
                       "list(prefix:) filters by prefix (got \(narrowed.map(\.name)))")
            let none = try await context.backend.list(prefix: "\(run)-nothing-here")
            try expect(none.isEmpty, "list(prefix:) of an unused prefix is empty (got \(none.map(\.name)))")
        },
        Check(name: "storing under an existing name replaces the object") { context in
            let name = "\(context.run)-replaced.bin"
            try await context.store(name, size: 1000, seed: 1)
            let digest = try await context.store(name, size: 2500, seed: 3)
            try await expectContent(context.backend, name, digest: digest, size: 2500)
            let listed = try await context.backend.list(prefix: context.run)
            try expect(listed.count == 1 && listed.first?.sizeBytes == 2500,
                       "after replacing, list shows one object with the new size (got \(listed))")
        },
        Check(name: "reading from an offset returns the rest of the object") { context in
            let name = "\(context.run)-offset.bin"
            let size = 300_000
            _ = try await context.store(name, size: size, seed: 5)
            let whole = CollectingSink(limit: size)
            try await context.backend.read(name, into: whole)
            let tail = CollectingSink(limit: size)
            try await context.backend.read(name, from: 123_457, into: tail)
            try expect(tail.bytes == Array(whole.bytes[123_457...]),
                       "read(from: 123457) returns the object's bytes from that offset (got \(tail.bytes.count) bytes)")
        },
        Check(name: "reading a missing object throws and writes nothing") { context in
            let sink = DigestSink()
            var threw = false
            do {
                try await context.backend.read("\(context.run)-missing.bin", into: sink)
            } catch {
                threw = true
            }
            try expect(threw, "reading a missing object throws")
            try expect(sink.count == 0, "reading a missing object writes nothing into the sink")
        },
        Check(name: "storing a local file that does not exist throws and stores nothing") { context in
            var threw = false
            do {
                _ = try await context.backend.store(localPath: "\(context.staging)/.\(context.run)-does-not-exist",
                                                    as: "\(context.run)-ghost.bin")
            } catch {
                threw = true
            }
            try expect(threw, "storing a local file that does not exist throws")
            let listed = try await context.backend.list(prefix: context.run)
            try expect(listed.isEmpty, "a failed store leaves no object (got \(listed.map(\.name)))")
        },
        Check(name: "delete removes the object; deleting a missing object is no error") { context in
            let name = "\(context.run)-deleted.bin"
            try await context.store(name, size: 1000, seed: 6)
            try await context.backend.delete(name)
            context.stored.remove(name)
            let listed = try await context.backend.list(prefix: context.run)
            try expect(listed.isEmpty, "after delete, list(prefix:) is empty (got \(listed.map(\.name)))")
            try await context.backend.delete(name)
        },
    ]

    /// Runs every check (or those named in `only`) against `backend`; throws a `Failure` naming each check that
    /// failed.
    ///
    /// - Parameter largeFileBytes: the size of the "multi-MiB" object; make it exceed a backend's multipart
    ///   threshold to cover multipart uploads.
    public static func run(_ backend: any StorageBackend, largeFileBytes: Int = (6 << 20) + 12_345,
                           only: Set<String>? = nil) async throws {
        let staging = try stagingDirectory(for: backend)
        defer { cleanStaging(staging, backend: backend) }
        var failures: [String] = []
        for check in checks where only?.contains(check.name) ?? true {
            let context = Context(backend: backend, run: "conformance-\(UUID().uuidString.prefix(8).lowercased())",
                                  largeFileBytes: largeFileBytes, staging: staging)
            do {
                try await check.body(context)
            } catch {
                failures.append("\(check.name): \(error)")
            }
            for name in context.stored { try? await backend.delete(name) }
        }
        guard failures.isEmpty else {
            throw Failure(description: "storage conformance of \(backend.description) failed \(failures.count) of "
                + "\(checks.count) check(s):\n  " + failures.joined(separator: "\n  "))
        }
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
