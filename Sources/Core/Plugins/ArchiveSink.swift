/// Where strategies write their components. `ArchiveWriter` is the real one; the test kit has an in-memory one.
///
/// Calls are made one at a time, from one task.
public protocol ArchiveSink: AnyObject, Sendable {
    /// Adds one regular file at `path` (mode `mode`) whose bytes `produce` writes into the sink it is given.
    /// The size need not be known in advance. If `produce` throws, nothing is added and the error is rethrown.
    func addFile(at path: String, mode: UInt32, produce: (any ByteSink) async throws -> Void) async throws
        -> ComponentRecord

    /// Adds the tar stream that `produce` writes (for instance Docker's archive of a directory), with its top
    /// entry renamed to `root` and everything below it moved along. Modes, owners, times, links are kept.
    func addTar(at root: String, produce: (any ByteSink) async throws -> Void) async throws -> ComponentRecord

    /// Records what the dump added at `path` holds (counted as it streamed); the manifest carries it as the
    /// component's `contents`. Call after the `addFile` of `path` returned; an unknown path is an error.
    func recordContents(_ contents: DumpContents, of path: String) throws
}

/// What was written for one component; the manifest records it and verification checks it.
public struct ComponentRecord: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// A single regular file; `sha256` is the plain SHA-256 of its content (as `sha256sum` prints it).
        case file
        /// A directory tree; `sha256` is `TreeDigest` over its entries in archive order.
        case tree
    }

    public var archivePath: String
    public var kind: Kind
    /// Bytes of file content (sum over regular files for a tree).
    public var sizeBytes: Int64
    /// Number of archive entries.
    public var entries: Int
    /// Lower-case hex SHA-256. `ArchiveWriter` returns records with an empty one: it computes digests from the
    /// archive as read back, and the manifest gets them from `ArchiveWriter.finish(_:)`.
    public var sha256: String

    public init(archivePath: String, kind: Kind, sizeBytes: Int64, entries: Int, sha256: String) {
        self.archivePath = archivePath
        self.kind = kind
        self.sizeBytes = sizeBytes
        self.entries = entries
        self.sha256 = sha256
    }
}
