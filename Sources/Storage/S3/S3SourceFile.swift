import Dispatch
import Foundation
import StackVaultCore
import Synchronization

/// The local archive being uploaded: one read-only descriptor shared by all parts, read with `pread` at each part's
/// offset, so nothing but small buffers is ever in memory. Closed in `deinit`.
///
/// `@unchecked Sendable`: the descriptor never changes and `pread` does not move a shared file position.
final class S3SourceFile: @unchecked Sendable {
    let path: String
    let size: Int64
    private let fd: Int32

    /// Chunk size of hashing passes and of each buffer handed to libcurl at most.
    static let chunkSize = 1 << 20

    init(path: String) throws {
        let fd = try syscall("open", path: path, .storage, failing: "cannot open the archive \(path) for upload") {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        var info = stat()
        do {
            try syscall("fstat", path: path, .storage, failing: "cannot stat the archive \(path)") { fstat(fd, &info) }
        } catch {
            close(fd)
            throw error
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw StackVaultError(.storage, "\(path) is not a regular file")
        }
        self.path = path
        self.fd = fd
        self.size = Int64(info.st_size)
    }

    deinit { close(fd) }

    /// Drops `length` bytes at `offset` from the page cache: a part that was sent is not read again (unless a
    /// retry reads it from disk). Parts go in parallel, so each drops its own range (``PageCacheDropper``).
    func dropFromCache(offset: Int64, length: Int64) {
        PageCacheDropper.drop(fd, offset: offset, length: length)
    }

    /// Reads up to `buffer.count` bytes at `offset`, retrying interrupted and short reads; 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        var done = 0
        while done < buffer.count {
            let count = try FileDescriptorIO.read(
                fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + Int64(done),
                what: "the archive \(path)")
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// SHA-256 (hex, for `x-amz-content-sha256`) and, when asked, MD5 (base64, for `Content-MD5`) of `length` bytes
    /// at `offset`. Blocking; stops early when `cancellation` is set.
    func digests(offset: Int64, length: Int64, md5 wantsMD5: Bool, cancellation: CancellationFlag) throws
        -> S3PayloadDigests
    {
        var sha = SHA256()
        var md5 = wantsMD5 ? MD5() : nil
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var position = offset
        let end = offset + length
        while position < end {
            if cancellation.isCancelled { throw StackVaultError(.cancelled, "hashing \(path) was cancelled") }
            let want = Int(min(Int64(buffer.count), end - position))
            let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: position)
            guard count == want else {
                throw StackVaultError(.storage, "the archive \(path) shrank while being uploaded (it should hold "
                    + "\(end) bytes or more, a read at byte \(position) came up short): did another process change it?")
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            sha.update(chunk)
            md5?.update(chunk)
            position += Int64(count)
        }
        let sha256 = sha.finalize()
        return S3PayloadDigests(sha256Hex: sha256.hex, sha256Base64: Data(sha256.bytes).base64EncodedString(),
                                md5Base64: md5.map { Data($0.finalize()).base64EncodedString() })
    }

    /// A request body that streams `length` bytes at `offset` straight from the file into libcurl's buffer.
    /// Each call gives a fresh reader, so a retried request starts over.
    func body(offset: Int64, length: Int64) -> HTTPRequest.Body {
        let cursor = Cursor(offset)
        let end = offset + length
        return .stream(length: length) { [self] buffer in
            try cursor.position.withLock { position in
                let want = Int(min(Int64(buffer.count), end - position))
                guard want > 0 else { return 0 }
                let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: position)
                guard count > 0 else {
                    throw StackVaultError(.storage, "the archive \(path) shrank while being uploaded")
                }
                position += Int64(count)
                return count
            }
        }
    }
}

/// The next offset a streamed body reads from (libcurl calls the read callback from one thread at a time).
private final class Cursor: Sendable {
    let position: Mutex<Int64>
    init(_ offset: Int64) { position = Mutex(offset) }
}

/// Integrity headers of one request body.
struct S3PayloadDigests: Sendable, Equatable {
    /// For `x-amz-content-sha256` (signed).
    var sha256Hex: String
    /// For `x-amz-checksum-sha256` (and the part's `ChecksumSHA256` at completion).
    var sha256Base64: String
    var md5Base64: String?

    /// The checksum headers for `mode`: for `.sha256` `x-amz-checksum-sha256` with `x-amz-sdk-checksum-algorithm`
    /// (as the AWS SDKs send them; some servers, moto's Object Lock check among them, look for the latter), plus
    /// `Content-MD5` whenever the MD5 was computed (`.md5`, or `S3_CONTENT_MD5=true`).
    func headers(_ mode: S3ChecksumMode) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if mode == .sha256 {
            headers.append(("x-amz-sdk-checksum-algorithm", "SHA256"))
            headers.append(("x-amz-checksum-sha256", sha256Base64))
        }
        if let md5Base64 { headers.append(("content-md5", md5Base64)) }
        return headers
    }

}
