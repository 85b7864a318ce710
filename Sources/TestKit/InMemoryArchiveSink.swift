public import StackVaultCore
import Foundation

/// Records what strategies write, in memory: file contents by path, tar streams by root.
public final class InMemoryArchiveSink: ArchiveSink, @unchecked Sendable {
    public private(set) var files: [String: [UInt8]] = [:]
    public private(set) var tars: [String: [UInt8]] = [:]
    /// What `recordContents` was told, by path.
    public private(set) var contents: [String: DumpContents] = [:]

    public init() {}

    public func addFile(at path: String, mode: UInt32, produce: (any ByteSink) async throws -> Void) async throws
        -> ComponentRecord
    {
        let collector = CollectingSink()
        try await produce(collector)
        files[path] = collector.bytes
        return ComponentRecord(archivePath: path, kind: .file, sizeBytes: Int64(collector.bytes.count), entries: 1,
                               sha256: "")
    }

    public func addTar(at root: String, produce: (any ByteSink) async throws -> Void) async throws -> ComponentRecord {
        let collector = CollectingSink()
        try await produce(collector)
        tars[root] = collector.bytes
        return ComponentRecord(archivePath: root, kind: .tree, sizeBytes: Int64(collector.bytes.count), entries: 0,
                               sha256: "")
    }

    public func recordContents(_ contents: DumpContents, of path: String) throws {
        guard files[path] != nil else {
            throw StackVaultError(.archive, "cannot record the contents of '\(path)': no file was added there")
        }
        self.contents[path] = contents
    }
}
