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
///
/// A regular file stored as a sparse entry (PAX `GNU.sparse` 1.0: only its data regions are in the archive) has
/// `typeChar` `s` and `size` its logical size (holes included), and its content is hashed so that holes cost
/// nothing: the logical content (holes read as zeros) is cut into 4,096-byte blocks from offset 0, the last one
/// shorter when `size` is not a multiple of 4,096. Every full block that is all zeros is only counted; every other
/// block (and the short last block, whatever it holds) is hashed as the number of all-zero blocks counted since the
/// previous hashed block (or the start) as an 8-byte little-endian integer, then its bytes; the entry ends with the
/// number of all-zero blocks after the last hashed block, as 8 bytes likewise. This depends on the logical content
/// only, not on where the holes lie: a restored file whose file system puts its holes elsewhere, or fills some of
/// them, digests the same as long as it is read back as a sparse entry (read back whole, as Docker's archive API
/// reads every file, it is a dense entry with another digest). Entries that are not sparse are hashed as above,
/// byte for byte, so archives written before sparse entries existed keep their digests.
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

    /// The digest character of a regular file stored as a sparse entry.
    static let sparseCharacter: UInt8 = 0x73  // s
}

/// ``TreeDigest``'s walk over a tree's entries, with any hash function.
public struct TreeHash<Hash: TreeHashFunction>: Sendable {
    public typealias EntryType = TreeEntryType

    private var hasher = Hash()
    /// Entries added so far.
    public private(set) var entries = 0
    /// Content bytes added so far (for sparse entries the data regions only, not the holes).
    public private(set) var contentBytes: Int64 = 0
    /// The current entry's block state while it is sparse, nil otherwise.
    private var sparse: SparseBlocks?

    public init() {}

    /// Starts an entry; its `size` content bytes follow through `addContent(_:)`, or, when `sparse` (a regular
    /// file stored as a sparse entry, `size` its logical size), its data regions through `addContent(_:at:)`.
    public mutating func addEntry(
        relativePath: [UInt8],
        type: EntryType,
        mode: UInt32,
        uid: Int64,
        gid: Int64,
        size: Int64,
        linkTarget: [UInt8] = [],
        sparse: Bool = false
    ) {
        endSparseEntry()
        var record: [UInt8] = []
        record.reserveCapacity(relativePath.count + linkTarget.count + 64)
        record += relativePath
        record.append(0)
        record.append(sparse && type == .file ? TreeEntryType.sparseCharacter : type.rawValue)
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
        if sparse && type == .file { self.sparse = SparseBlocks(size: size) }
    }

    /// Starts an entry whose path and link target are strings (hashed as UTF-8).
    public mutating func addEntry(
        relativePath: String,
        type: EntryType,
        mode: UInt32,
        uid: Int64,
        gid: Int64,
        size: Int64,
        linkTarget: String = "",
        sparse: Bool = false
    ) {
        addEntry(
            relativePath: Array(relativePath.utf8),
            type: type,
            mode: mode,
            uid: uid,
            gid: gid,
            size: size,
            linkTarget: Array(linkTarget.utf8),
            sparse: sparse
        )
    }

    /// Adds content bytes of the current entry (at the end of what was added so far, for a sparse entry).
    public mutating func addContent(_ buffer: UnsafeRawBufferPointer) {
        guard sparse != nil else {
            hasher.update(buffer)
            contentBytes += Int64(buffer.count)
            return
        }
        addContent(buffer, at: sparse!.position)
    }

    /// Adds a data region's bytes of the current sparse entry at the logical `offset`: the bytes between the end of
    /// the previous data and `offset` are a hole (zeros), counted, not hashed. Offsets must not go back (callers
    /// check the sparse map first); bytes past the entry's size are ignored.
    public mutating func addContent(_ buffer: UnsafeRawBufferPointer, at offset: Int64) {
        guard var blocks = sparse else {
            hasher.update(buffer)
            contentBytes += Int64(buffer.count)
            return
        }
        sparse = nil  // no copy-on-write of the block buffer while it changes
        blocks.skipZeros(to: offset, into: &hasher)
        blocks.add(buffer, into: &hasher)
        contentBytes += Int64(buffer.count)
        sparse = blocks
    }

    /// Ends the current sparse entry: its trailing hole, its short last block and its trailing zero-block count.
    private mutating func endSparseEntry() {
        guard var blocks = sparse else { return }
        sparse = nil
        blocks.finish(into: &hasher)
    }

    /// The digest of everything added so far.
    public func finalize() -> Hash.Digest {
        var copy = self
        copy.endSparseEntry()
        return copy.hasher.finalize()
    }
}

/// ``TreeHash``'s state inside a sparse entry: the logical content in 4,096-byte blocks, all-zero blocks counted.
private struct SparseBlocks {
    static let blockSize = 4096

    /// The entry's logical size.
    let size: Int64
    /// Logical bytes passed so far (data and holes).
    private(set) var position: Int64 = 0
    /// All-zero full blocks since the last hashed block.
    private var zeroBlocks: UInt64 = 0
    /// The start of the current block when it is not complete yet (`position % blockSize` bytes).
    private var partial: [UInt8] = []

    init(size: Int64) {
        self.size = size
    }

    /// Passes zeros up to `offset` (a hole): whole blocks are only counted.
    mutating func skipZeros(to offset: Int64, into hasher: inout some TreeHashFunction) {
        var gap = min(offset, size) - position
        guard gap > 0 else { return }
        if !partial.isEmpty {
            let fill = Int(min(gap, Int64(Self.blockSize - partial.count)))
            partial += repeatElement(0, count: fill)
            position += Int64(fill)
            gap -= Int64(fill)
            if partial.count == Self.blockSize { completePartial(into: &hasher) }
        }
        let whole = gap / Int64(Self.blockSize)
        zeroBlocks += UInt64(whole)
        position += whole * Int64(Self.blockSize)
        gap -= whole * Int64(Self.blockSize)
        if gap > 0 {
            partial = Array(repeating: 0, count: Int(gap))
            position += gap
        }
    }

    /// Passes data bytes at the current position.
    mutating func add(_ buffer: UnsafeRawBufferPointer, into hasher: inout some TreeHashFunction) {
        var rest = UnsafeRawBufferPointer(rebasing: buffer.prefix(Int(max(0, min(Int64(buffer.count),
                                                                              size - position)))))
        if !partial.isEmpty {
            let fill = min(rest.count, Self.blockSize - partial.count)
            partial += rest.prefix(fill)
            position += Int64(fill)
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(fill))
            if partial.count == Self.blockSize { completePartial(into: &hasher) }
        }
        while rest.count >= Self.blockSize {
            block(UnsafeRawBufferPointer(rebasing: rest.prefix(Self.blockSize)), into: &hasher)
            position += Int64(Self.blockSize)
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(Self.blockSize))
        }
        if !rest.isEmpty {
            partial = Array(rest)
            position += Int64(rest.count)
        }
    }

    /// Ends the entry: zeros up to its size, the short last block, the trailing count.
    mutating func finish(into hasher: inout some TreeHashFunction) {
        skipZeros(to: size, into: &hasher)
        if !partial.isEmpty {
            hashBlock(partial, into: &hasher)
            partial = []
        }
        withUnsafeBytes(of: zeroBlocks.littleEndian) { hasher.update($0) }
    }

    private mutating func completePartial(into hasher: inout some TreeHashFunction) {
        let full = partial
        partial = []
        full.withUnsafeBytes { block($0, into: &hasher) }
    }

    /// A full block: counted when all zeros, hashed otherwise.
    private mutating func block(_ bytes: UnsafeRawBufferPointer, into hasher: inout some TreeHashFunction) {
        if memcmp(bytes.baseAddress!, zeroBytes.baseAddress!, bytes.count) == 0 {
            zeroBlocks += 1
        } else {
            hashBlock(bytes, into: &hasher)
        }
    }

    private mutating func hashBlock(_ bytes: UnsafeRawBufferPointer, into hasher: inout some TreeHashFunction) {
        withUnsafeBytes(of: zeroBlocks.littleEndian) { hasher.update($0) }
        hasher.update(bytes)
        zeroBlocks = 0
    }

    private mutating func hashBlock(_ bytes: [UInt8], into hasher: inout some TreeHashFunction) {
        bytes.withUnsafeBytes { hashBlock($0, into: &hasher) }
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
