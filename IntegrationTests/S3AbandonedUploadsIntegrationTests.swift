import Foundation
import StackVaultCore
import StackVaultStorage
import Testing

extension Integration {
    /// Multipart uploads of archives that a dead run began are aborted (with a log line); other uploads under the
    /// prefix are left alone.
    @Suite(.enabled(if: S3TestServer.usable,
                    "no S3 server answers at \(S3TestServer.current.endpoint); run scripts/testbed/start-s3.sh"))
    struct S3AbandonedUploadsTests {
        let server = S3TestServer.current

        @Test func abandonedArchiveUploadsAreAbortedAndOthersKept() async throws {
            try TestBed.requireS3()
            let prefix = S3Tests.uniquePrefix("abandoned")
            let log = CapturedLog()
            let backend = try server.backend(prefix: prefix, logger: log.logger)
            let archive = ArchiveName.make(stack: "shop", date: Date())
            func begin(_ key: String) throws -> String {
                let out = try server.aws(["s3api", "create-multipart-upload", "--bucket", server.bucket, "--key", key,
                                          "--output", "text", "--query", "UploadId"]).stdout
                return out.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            func pending() throws -> [String] {
                try server.aws(["s3api", "list-multipart-uploads", "--bucket", server.bucket, "--prefix", prefix,
                                "--output", "text", "--query", "Uploads[].Key"]).stdout
                    .split(whereSeparator: { $0 == "\t" || $0 == "\n" }).map(String.init).filter { $0 != "None" }
            }
            let otherID = try begin("\(prefix)/notes.txt")
            defer {
                _ = try? server.aws(["s3api", "abort-multipart-upload", "--bucket", server.bucket, "--key",
                                     "\(prefix)/notes.txt", "--upload-id", otherID], check: false)
            }
            _ = try begin("\(prefix)/\(archive)")
            #expect(try pending().sorted() == ["\(prefix)/\(archive)", "\(prefix)/notes.txt"])

            // Begun less than a day ago: kept.
            #expect(try await backend.abortAbandonedUploads(olderThan: 86_400).isEmpty)
            try await Task.sleep(for: .seconds(2))
            let aborted = try await backend.abortAbandonedUploads(olderThan: 1)
            #expect(aborted == [archive])
            #expect(try pending() == ["\(prefix)/notes.txt"])
            #expect(log.messages.contains { $0.contains("aborted the multipart upload of \(archive)") },
                    "\(log.messages)")
        }
    }
}
