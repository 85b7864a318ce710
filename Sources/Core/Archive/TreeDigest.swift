import Foundation

/// The digest of one `.tree` component: the one definition the writer and the verifier share.
///
/// A `.file` component's digest is the plain SHA-256 of its content (what `sha256sum` prints). A `.tree`
/// component's digest is the SHA-256 over, for every archive entry at or below the component root, in archive
/// order, the bytes of
///
///     relativePath NUL typeChar NUL octalMode NUL uid NUL gid NUL size NUL linkTarget NUL
///
/// followed by the entry's content bytes, where
/// - `relativePath` is the path below the root (`""` for the root itself, no leading or trailing `/`, empty
///   components dropped), as raw bytes (UTF-8 for any name that is valid UTF-8);
/// - `typeChar` is `f` regular file, `d` directory, `l` symbolic link, `h` hard link, `c` character device,
///   `b` block device, `p` FIFO;
/// - `octalMode` is the permission bits (`mode & 0o7777`) in octal without leading zeros (`755`);
/// - `uid`, `gid` and `size` (the entry's size field: content bytes, 0 for everything but regular files)
///   are decimal;
/// - `linkTarget` is a symlink's target byte for byte, a hard link's target path relative to the root (as
///   `relativePath`), and empty for every other type.
public typealias TreeDigest = TreeHash<SHA256>

/// The same walk as ``TreeDigest`` with XXH3 instead of SHA-256: the archive writer's in-path checksum of a tree,
/// compared with the one computed from the archive as read back.
typealias TreeChecksum = TreeHash<XXH3>

/// A hash function ``TreeHash`` can run on.
public protocol TreeHashFunction: Sendable {
    associatedtype Digest
    init()
    mutating func update(_ buffer: UnsafeRawBufferPointer)
    mutating func update(bytes: some Sequence<UInt8>)
    func finalize() -> Digest
}

extension SHA256: TreeHashFunction {}
extension XXH3: TreeHashFunction {}

/// The type of an archive entry, with its digest character.
public enum TreeEntryType: UInt8, Sendable, CaseIterable {
    case file = 0x66  // f
    case directory = 0x64  // d
    case symlink = 0x6C  // l
    case hardlink = 0x68  // h
    case characterDevice = 0x63  // c
    case blockDevice = 0x62  // b
    case fifo = 0x70  // p

    /// The digest character.
    public var character: Character { Character(Unicode.Scalar(rawValue)) }
}

/// ``TreeDigest``'s walk over a tree's entries, with any hash function.
public struct TreeHash<Hash: TreeHashFunction>: Sendable {
    public typealias EntryType = TreeEntryType

    private var hasher = Hash()
    /// Entries added so far.
    public private(set) var entries = 0
    /// Content bytes added so far.
    public private(set) var contentBytes: Int64 = 0

    public init() {}

    /// Starts an entry; its `size` content bytes follow through `addContent`.
    public mutating func addEntry(
        relativePath: [UInt8],
        type: EntryType,
        mode: UInt32,
        uid: Int64,
        gid: Int64,
        size: Int64,
        linkTarget: [UInt8] = []
    ) {
        var record: [UInt8] = []
        record.reserveCapacity(relativePath.count + linkTarget.count + 64)
        record += relativePath
        record.append(0)
        record.append(type.rawValue)
        record.append(0)
        record += Array(String(mode & 0o7777, radix: 8).utf8)
        record.append(0)
        record += Array(String(uid).utf8)
        record.append(0)
        record += Array(String(gid).utf8)
        record.append(0)
        record += Array(String(size).utf8)
        record.append(0)
        record += linkTarget
        record.append(0)
        hasher.update(bytes: record)
        entries += 1
    }

    /// Starts an entry whose path and link target are strings (hashed as UTF-8).
    public mutating func addEntry(
        relativePath: String,
        type: EntryType,
        mode: UInt32,
        uid: Int64,
        gid: Int64,
        size: Int64,
        linkTarget: String = ""
    ) {
        addEntry(
            relativePath: Array(relativePath.utf8),
            type: type,
            mode: mode,
            uid: uid,
            gid: gid,
            size: size,
            linkTarget: Array(linkTarget.utf8)
        )
    }

    /// Adds content bytes of the current entry.
    public mutating func addContent(_ buffer: UnsafeRawBufferPointer) {
        hasher.update(buffer)
        contentBytes += Int64(buffer.count)
    }

    /// The digest of everything added so far.
    public func finalize() -> Hash.Digest {
        hasher.finalize()
    }
}

/// Byte-level helpers for paths inside archives (names need not be valid UTF-8).
enum ArchivePath {
    static let slash = UInt8(ascii: "/")

    /// The non-empty `/`-separated components of `path`.
    static func components(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: slash, omittingEmptySubsequences: true).map { Array($0) }
    }

    static func join(_ components: some Sequence<[UInt8]>) -> [UInt8] {
        Array(components.joined(separator: [slash]))
    }

    /// Why `path` is unsafe to extract (absolute, `..`, empty, NUL), or nil when it is a plain relative path.
    static func problem(_ path: [UInt8]) -> String? {
        if path.first == slash { return "is an absolute path" }
        if path.contains(0) { return "contains a NUL byte" }
        let parts = components(path)
        if parts.isEmpty { return "is empty" }
        if parts.contains(where: { $0 == [UInt8(ascii: "."), UInt8(ascii: ".")] }) {
            return "contains a '..' component"
        }
        return nil
    }

    /// The path of `path` below `root` (both split into components), or nil if it is not at or below it.
    static func relative(_ path: [[UInt8]], below root: [[UInt8]]) -> [UInt8]? {
        guard path.count >= root.count, Array(path.prefix(root.count)) == root else { return nil }
        return join(path.dropFirst(root.count))
    }

    /// `path` for messages: UTF-8 where valid, other bytes as `\xNN`.
    static func display(_ path: [UInt8]) -> String {
        if let string = String(bytes: path, encoding: .utf8) { return string }
        var out = ""
        var index = 0
        while index < path.count {
            let byte = path[index]
            if byte < 0x80 {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + String(byte, radix: 16, uppercase: true)
            }
            index += 1
        }
        return out
    }

    /// The bytes of a C string, or nil.
    static func bytes(_ cString: UnsafePointer<CChar>?) -> [UInt8]? {
        guard let cString else { return nil }
        let length = strlen(cString)
        return cString.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }
}
