import Foundation

/// The read-back: the writer reads its archive back while writing it, on helper threads at the lowest CPU
/// priority, so that verifying costs little time after the last byte.
extension ArchiveWriter {
    /// Starts reading the archive back as it grows, on helper threads, until the end the writer sets.
    static func startReadBack(
        of path: String,
        fileDescriptor: Int32,
        growth: ArchiveGrowth,
        compressor: any Compressor,
        decryption: ArchiveDecryption?,
        into completion: ArchiveThreadCompletion<ReadBackPart>
    ) {
        let thread = Thread {
            lowerThreadPriority()
            defer { close(fileDescriptor) }
            completion.complete(Result {
                let reader = try DecompressedTarReader(
                    fileDescriptor: fileDescriptor, from: 0, growth: growth, compressor: compressor,
                    what: "archive '\(path)' as read back", threadName: "stackvault-readback-decompress",
                    lowPriority: true, decryption: decryption)
                var verification = Verification(checksums: true)
                verification.read(reader)  // ends at the end of the components
                return ReadBackPart(verification: verification, decompressed: reader.close(drain: true))
            })
        }
        thread.name = "stackvault-readback"
        thread.start()
    }

    /// Makes everything written so far readable in the file: flushes it and, encrypted, pads the compressed stream
    /// to an age chunk boundary with a skippable frame (``ZstdPadding``) and seals that chunk
    /// (``AgeArchiveOutput/alignToChunk(minimumPadding:padding:)``).
    func alignForReadBack() throws {
        guard let encryption else { return try fileSink.flush() }
        let compressor = self.compressor
        try encryption.alignToChunk(minimumPadding: ZstdPadding.bound(0)) {
            try ZstdPadding.segment(of: [], length: $0, compressor: compressor)
        }
    }

    /// The read-back's verification so far, or a `.verification` error when it could not read the components.
    static func checkReadBack(
        _ result: Result<ReadBackPart, any Error>,
        of path: String
    ) throws -> (Verification, Int64) {
        let part: ReadBackPart
        do {
            part = try result.get()
        } catch {
            throw StackVaultError(.verification, "the archive '\(path)' could not be read back: \(error)")
        }
        let bytes: Int64
        switch part.decompressed {
        case .success(let count): bytes = count
        case .failure(let error):
            throw StackVaultError(.verification, "the archive '\(path)' as read back is damaged: \(error)")
        }
        if !part.verification.problems.isEmpty {
            throw StackVaultError(
                .verification,
                "the archive '\(path)' as read back is damaged: " + part.verification.problems.joined(separator: "; ")
            )
        }
        return (part.verification, bytes)
    }
}
