import Foundation

/// Checks a finished archive end to end: decompresses it, reads every tar entry to the end, recomputes each
/// component's digest, size and entry count, and compares them with the manifest.
///
/// Memory is bounded: the file is decompressed on a helper thread into a few 1 MiB buffers that libarchive reads
/// (``DecompressedTarReader``), and entry data is hashed in place. Damage of any kind (corrupt or truncated compression,
/// bad tar, missing index or manifest, unknown format version, unsafe entry names) is reported in
/// ``VerificationReport/problems``; only failing to open the file or to start is thrown.
///
/// Synchronous and blocking for as long as reading the whole file takes: call it from a thread of your own
/// (or a detached task you accept to block), not from a latency-sensitive task.
public enum ArchiveVerifier {
    /// Verifies the archive at `path` (age-encrypted: with `decryption`).
    public static func verify(path: String, compressor: any Compressor, decryption: ArchiveDecryption? = nil) throws
        -> VerificationReport
    {
        let fd = try syscall("open", path: path, failing: "cannot open the archive '\(path)' to verify it") {
            open(path, O_RDONLY | O_CLOEXEC)
        }
        defer { close(fd) }
        return try verify(fileDescriptor: fd, compressor: compressor, decryption: decryption)
    }

    /// Verifies the archive read from `fileDescriptor` (from its current offset to its end; not closed).
    public static func verify(fileDescriptor: Int32, compressor: any Compressor, decryption: ArchiveDecryption? = nil)
        throws -> VerificationReport
    {
        try verify(fileDescriptor: fileDescriptor, compressor: compressor, keepingFileTails: 0, decryption: decryption)
    }

    /// Verifies, and keeps the last `tailBytes` bytes of each `.file` component in ``VerificationReport/fileTails``
    /// (for the strategies' completeness checks, in the same pass). The file is dropped from the page cache behind
    /// the reader unless `keepingPageCache` (it is read again next). `progress` is told the compressed bytes read.
    static func verify(
        fileDescriptor: Int32, compressor: any Compressor, keepingFileTails tailBytes: Int,
        decryption: ArchiveDecryption? = nil, keepingPageCache: Bool = false, progress: ProgressReporter? = nil
    ) throws -> VerificationReport {
        let reader = try DecompressedTarReader(
            fileDescriptor: fileDescriptor, from: nil, compressor: compressor, what: "archive",
            threadName: "stackvault-verify-decompress", decryption: decryption, dropsPageCache: !keepingPageCache,
            progress: progress)
        var verification = Verification(tailBytes: tailBytes)
        verification.read(reader)
        // Drain whatever libarchive left, so the decompressor reaches the end and checks the whole file.
        let decompressed = reader.close(drain: true)
        return verification.report(decompressed: decompressed)
    }
}
