import Foundation
import Testing

extension Integration {
    /// `stackvault backup` end to end against the real S3 server.
    @Suite struct S3BackupTests {
        @Test func backupUploadsAVerifiedArchiveAndAnUnreachableEndpointLosesNothing() throws {
            try TestBed.requireDocker()
            var s3 = S3TestServer.current.environment()  // what a user would set for the test bed's S3 server
            let bucket = S3TestServer.current.bucket
            let name = "svtest-s3-backup"
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.bin=/bin",
                           TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let prefix = "cli run \(UUID().uuidString.prefix(8))"
            let work = try TestBed.temporaryDirectory("s3-work")
            defer { try? FileManager.default.removeItem(at: work) }

            let run = try StackVaultCLI.run(["backup", "--stack", name, "--target", "s3://\(bucket)/\(prefix)",
                                             "--work-dir", work.path], environment: s3)
            #expect(run.ok, "\(run.stdout)\n\(run.stderr)")
            #expect(!run.stderr.contains(s3["AWS_SECRET_ACCESS_KEY"]!))
            let aws = ["aws", "--endpoint-url", s3["S3_ENDPOINT_URL"]!, "--region", s3["AWS_DEFAULT_REGION"]!, "s3"]
            let awsEnv = ["AWS_ACCESS_KEY_ID": s3["AWS_ACCESS_KEY_ID"]!, "AWS_SECRET_ACCESS_KEY": s3["AWS_SECRET_ACCESS_KEY"]!]
            let folder = "\(prefix)/\(TestBed.engineHost)"
            let listing = try Shell.run(aws + ["ls", "s3://\(bucket)/\(folder)/"], environment: awsEnv).stdout
            let object = try #require(listing.split(separator: "\n").compactMap { $0.split(separator: " ").last }
                .first { $0.hasPrefix("backup-\(name)-") })
            let download = work.appendingPathComponent("download.tar.zst").path
            try Shell.run(aws + ["cp", "s3://\(bucket)/\(folder)/\(object)", download], environment: awsEnv)
            let entries = try Shell.run(["tar", "--zstd", "-tf", download]).stdout
            #expect(entries.contains("\(name)/volumes/bin/"))
            #expect(entries.contains("stackvault.json"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: work.path) == ["download.tar.zst"],
                    "the local copy is removed once the upload is confirmed")

            // Nothing listens on this port: the upload fails, the container runs, the archive stays on disk.
            s3["S3_ENDPOINT_URL"] = "http://127.0.0.1:9"
            s3["S3_MAX_ATTEMPTS"] = "2"
            let failed = try StackVaultCLI.run(["backup", "--stack", name, "--target", "s3://\(bucket)/\(prefix)",
                                                "--work-dir", work.path], environment: s3)
            #expect(failed.status == 1, "\(failed.stdout)\n\(failed.stderr)")
            #expect(failed.stdout.contains("FAILED"))
            #expect(try Docker.isRunning(name))
            let kept = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.hasSuffix(".unsent") }
            #expect(kept.count == 1, "the verified archive is kept: \(kept)")
            if let kept = kept.first {
                try Shell.run(["zstd", "-tq", work.appendingPathComponent(kept).path])
            }
        }
    }
}
