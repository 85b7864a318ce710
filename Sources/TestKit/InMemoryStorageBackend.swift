public import StackVaultCore
import Foundation
import Synchronization

/// A storage backend that keeps objects in memory: for unit tests of code that stores, lists and reads archives,
/// and as the reference implementation the storage conformance suite runs against.
///
/// It keeps the `StorageBackend` contract: `store` copies the whole file before the object becomes visible (all or
/// nothing) and never deletes the local file; `read` hands out the bytes in 64 KiB pieces; names are validated.
/// Optional fault injection (`failNext`) makes the next operations throw transient errors, for retry tests.
public final class InMemoryStorageBackend: StorageBackend, Sendable {
    private let objects = Mutex<[String: (bytes: [UInt8], modified: Date)]>([:])
    private let faults = Mutex<[Operation: Int]>([:])

    /// The operations faults can be injected into.
    public enum Operation: Sendable, Hashable {
        case store, list, read, delete
    }

    public init() {}

    public var description: String { "memory://" }
    public var capabilities: StorageCapabilities { StorageCapabilities(isLocalDirectory: false) }
    public var localDirectory: String? { nil }

    /// Makes the next `count` calls of `operation` throw a transient `StackVaultError` (for reads: after half the
    /// object was delivered, as a broken transfer would).
    public func failNext(_ operation: Operation, times count: Int) {
        faults.withLock { $0[operation] = count }
    }

    /// The names stored, sorted.
    public var names: [String] { objects.withLock { $0.keys.sorted() } }

    private func takeFault(_ operation: Operation) -> Bool {
        faults.withLock { faults in
            guard let left = faults[operation], left > 0 else { return false }
            faults[operation] = left - 1
            return true
        }
    }

    private static func injected(_ operation: Operation) -> StackVaultError {
        StackVaultError(.storage, "memory backend: injected transient failure of \(operation)", isTransient: true)
    }

    private static func validate(_ name: String) throws {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/").contains(where: { $0 == ".." }) else {
            throw StackVaultError(.storage, "'\(name)' is not a valid object name")
        }
    }

    public func store(localPath: String, as name: String) async throws -> StoredObject {
        try Self.validate(name)
        if takeFault(.store) { throw Self.injected(.store) }
        guard let data = FileManager.default.contents(atPath: localPath) else {
            throw StackVaultError(.storage, "cannot read the archive \(localPath) to store it in memory")
        }
        let bytes = [UInt8](data)
        let modified = Date()
        objects.withLock { $0[name] = (bytes, modified) }
        return StoredObject(name: name, sizeBytes: Int64(bytes.count), lastModified: modified)
    }

    public func list(prefix: String) async throws -> [StoredObject] {
        if takeFault(.list) { throw Self.injected(.list) }
        return objects.withLock { objects in
            objects.filter { $0.key.hasPrefix(prefix) }.map {
                StoredObject(name: $0.key, sizeBytes: Int64($0.value.bytes.count), lastModified: $0.value.modified)
            }
        }
    }

    public func read(_ name: String, into sink: any ByteSink) async throws {
        try await read(name, from: 0, into: sink)
    }

    public func read(_ name: String, from offset: Int64, into sink: any ByteSink) async throws {
        try Self.validate(name)
        guard let bytes = objects.withLock({ $0[name]?.bytes }) else {
            throw StackVaultError(.storage, "there is no object \(name) in memory")
        }
        let start = Int(min(max(offset, 0), Int64(bytes.count)))
        let breakAt = takeFault(.read) ? start + (bytes.count - start) / 2 : nil
        var position = start
        let piece = 64 << 10
        while position < (breakAt ?? bytes.count) {
            let end = min(position + piece, breakAt ?? bytes.count)
            try bytes[position..<end].withUnsafeBytes { try sink.write($0) }
            position = end
        }
        if breakAt != nil { throw Self.injected(.read) }
    }

    public func delete(_ name: String) async throws {
        try Self.validate(name)
        if takeFault(.delete) { throw Self.injected(.delete) }
        _ = objects.withLock { $0.removeValue(forKey: name) }
    }
}
