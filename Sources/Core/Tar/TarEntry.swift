internal import CArchive
import Foundation

/// One tar entry's header: an entry read from a ``TarReader`` (owned by libarchive, valid until the reader's next
/// entry) or a new one made with ``init()`` (freed when the last copy goes).
///
/// Paths are raw bytes (tar names need not be UTF-8); the setters copy what they are given.
struct TarEntry {
    let pointer: OpaquePointer
    /// Keeps a new entry alive; nil for an entry libarchive owns.
    private let owner: Owner?

    private final class Owner {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { archive_entry_free(pointer) }
    }

    /// An entry libarchive owns.
    init(borrowing pointer: OpaquePointer) {
        self.pointer = pointer
        self.owner = nil
    }

    /// A new, empty entry.
    init() throws {
        guard let pointer = archive_entry_new() else {
            throw StackVaultError(.archive, "libarchive: cannot allocate an entry (out of memory?)")
        }
        self.pointer = pointer
        self.owner = Owner(pointer)
    }

    /// A copy of `other` (libarchive's `archive_entry_clone`: names, metadata, xattrs, ACLs, sparse map), owned.
    init(cloning other: TarEntry) throws {
        guard let pointer = archive_entry_clone(other.pointer) else {
            throw StackVaultError(.archive, "libarchive: cannot copy an entry (out of memory?)")
        }
        self.pointer = pointer
        self.owner = Owner(pointer)
    }

    /// A new regular file entry owned by root, modified now.
    static func regularFile(path: [UInt8], size: Int64, permissions: UInt32) throws -> TarEntry {
        let entry = try TarEntry()
        entry.setPath(path)
        archive_entry_set_filetype(entry.pointer, TarFileType.regular)
        archive_entry_set_perm(entry.pointer, mode_t(permissions & 0o7777))
        archive_entry_set_size(entry.pointer, size)
        archive_entry_set_uid(entry.pointer, 0)
        archive_entry_set_gid(entry.pointer, 0)
        archive_entry_copy_uname(entry.pointer, "root")
        archive_entry_copy_gname(entry.pointer, "root")
        archive_entry_set_mtime(entry.pointer, time(nil), 0)
        return entry
    }

    /// A new directory entry owned by root, modified now.
    static func directory(path: [UInt8], permissions: UInt32) throws -> TarEntry {
        let entry = try regularFile(path: path, size: 0, permissions: permissions)
        archive_entry_set_filetype(entry.pointer, TarFileType.directory)
        return entry
    }

    /// The entry's name as stored (falling back to its UTF-8 form), nil when it has none.
    var path: [UInt8]? {
        ArchivePath.bytes(archive_entry_pathname(pointer)) ?? ArchivePath.bytes(archive_entry_pathname_utf8(pointer))
    }

    /// The hard-link target, nil for anything but a hard link.
    var hardlink: [UInt8]? { ArchivePath.bytes(archive_entry_hardlink(pointer)) }
    var symlink: [UInt8]? { ArchivePath.bytes(archive_entry_symlink(pointer)) }
    /// The `AE_IF*` file type bits.
    var fileType: UInt32 { archive_entry_filetype(pointer) }
    /// The full mode (type and permissions).
    var mode: UInt32 { UInt32(archive_entry_mode(pointer)) }
    var permissions: UInt32 { UInt32(archive_entry_perm(pointer)) }
    var uid: Int64 { archive_entry_uid(pointer) }
    var gid: Int64 { archive_entry_gid(pointer) }
    /// The data size its header announces.
    var size: Int64 { archive_entry_size(pointer) }

    /// True for a regular file that is not a hard link.
    var isRegularFile: Bool {
        archive_entry_hardlink(pointer) == nil && TreeEntryType(fileType: fileType) == .file
    }

    /// The distinct names of the entry's extended attributes.
    var extendedAttributeNames: Set<String> {
        var names = Set<String>()
        archive_entry_xattr_reset(pointer)
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(pointer, &name, &value, &size) == ARCHIVE_OK {
            if let name { names.insert(String(cString: name)) }
        }
        return names
    }

    /// True when the entry carries a POSIX access or default ACL.
    var hasACL: Bool {
        archive_entry_acl_count(pointer, ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) > 0
    }

    func setPath(_ path: [UInt8]) {
        withNulTerminated(path) { archive_entry_copy_pathname(pointer, $0) }
    }

    func setHardlink(_ target: [UInt8]) {
        withNulTerminated(target) { archive_entry_copy_hardlink(pointer, $0) }
    }

    func setSize(_ size: Int64) {
        archive_entry_set_size(pointer, size)
    }

    func setOwner(uid: Int64, gid: Int64) {
        archive_entry_set_uid(pointer, uid)
        archive_entry_set_gid(pointer, gid)
        archive_entry_copy_uname(pointer, nil)
        archive_entry_copy_gname(pointer, nil)
    }

    /// Forgets the entry's sparse map: its data is then copied in full, holes as zeros.
    func clearSparse() {
        archive_entry_sparse_clear(pointer)
    }

    /// The data regions of the entry's sparse map (offset and length in bytes, ascending, as libarchive keeps
    /// them: contiguous regions merged, invalid ones dropped); empty when the entry is not sparse.
    var sparseRegions: [(offset: Int64, length: Int64)] {
        var regions: [(offset: Int64, length: Int64)] = []
        guard archive_entry_sparse_reset(pointer) > 0 else { return regions }
        var offset: Int64 = 0
        var length: Int64 = 0
        while archive_entry_sparse_next(pointer, &offset, &length) == ARCHIVE_OK {
            regions.append((offset, length))
        }
        return regions
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string.
private func withNulTerminated<Result>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws -> Result) rethrows
    -> Result
{
    try (bytes + [0]).withUnsafeBufferPointer { buffer in
        try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}
