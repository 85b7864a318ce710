internal import CArchive
import Foundation

/// libarchive's `AE_IF*` file-type bits (the POSIX values; the C macros are casts Swift does not import).
enum TarFileType {
    static let mask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let fifo: UInt32 = 0o010000
}

extension TreeEntryType {
    /// The type of a non-hard-link entry from its libarchive file type, nil for types tar cannot hold.
    init?(fileType: UInt32) {
        switch fileType & TarFileType.mask {
        case TarFileType.regular: self = .file
        case TarFileType.directory: self = .directory
        case TarFileType.symlink: self = .symlink
        case TarFileType.characterDevice: self = .characterDevice
        case TarFileType.blockDevice: self = .blockDevice
        case TarFileType.fifo: self = .fifo
        default: return nil
        }
    }
}

/// A C.UTF-8 `LC_CTYPE` for libarchive's name conversions (nil if the system lacks it).
///
/// Swift programs run in the "C" locale, where libarchive cannot convert non-ASCII names to or from UTF-8:
/// it still keeps them byte-exact, but marks PAX headers `hdrcharset=BINARY` (GNU tar then warns on every such
/// entry) and returns warnings. Under C.UTF-8 it reads and writes standard UTF-8 PAX names, and falls back to
/// `hdrcharset=BINARY` only for names that are not valid UTF-8. Switched per thread with `uselocale`, never
/// process-wide.
nonisolated(unsafe) private let utf8Locale: locale_t? = newlocale(Int32(1) << LC_CTYPE, "C.UTF-8", nil)

/// Runs `body` with the C.UTF-8 character type on this thread (libarchive decides charsets per call).
func withLibArchiveUTF8Locale<Result>(_ body: () throws -> Result) rethrows -> Result {
    guard let utf8Locale else { return try body() }
    let previous = uselocale(utf8Locale)
    defer { uselocale(previous) }
    return try body()
}

/// Turns a libarchive status into a Swift error carrying `archive_error_string`; OK, EOF and WARN pass.
@discardableResult
func archiveCheck(_ status: Int32, _ archive: OpaquePointer, _ what: @autoclosure () -> String) throws -> Int32 {
    if status == ARCHIVE_OK || status == ARCHIVE_EOF || status == ARCHIVE_WARN { return status }
    throw StackVaultError(.archive, "\(what()): \(archiveErrorString(archive))")
}

/// libarchive's message for the last error on `archive`.
func archiveErrorString(_ archive: OpaquePointer) -> String {
    guard let message = archive_error_string(archive) else { return "unknown libarchive error" }
    return String(decoding: ArchivePath.bytes(message) ?? [], as: UTF8.self)
}
