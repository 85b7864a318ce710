import Foundation
import StackVaultCore
import Testing

extension Integration {
    /// Encrypted backups end to end, with real containers and the real `age`: a stack with PostgreSQL, MariaDB
    /// and directories is backed up encrypted to one public key (to S3 when the test S3 server answers, and to a
    /// directory), the archive decrypts with `age -d` into what `tar --zstd -x` extracts byte for byte, `verify`
    /// checks the envelope without the key and everything with it, and `restore` with the identity puts back every
    /// row and file; without it, or with a wrong key, it refuses and leaves the host untouched.
    @Suite struct AgeBackupTests {
        static let project = "svtest_age"
        typealias Restore = RestoreTests

        @Test func encryptedBackupVerifyRestoreRoundTrip() throws {
            try TestBed.requireDocker()
            #expect(TestBed.isCI || AgeTools.installed, "age is not installed")
            guard AgeTools.installed else { return }
            let stack = try Restore.Stack.up(Self.project)
            defer { stack.compose.down() }
            try Restore.seed(stack)
            let original = try stack.snapshot()

            let directory = try TestBed.temporaryDirectory("age-backup")
            defer { try? FileManager.default.removeItem(at: directory) }
            let key = directory.appendingPathComponent("key.txt").path
            try Shell.run(["age-keygen", "-o", key])
            let recipient = try Shell.run(["age-keygen", "-y", key]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let writing = ["AGE_RECIPIENTS": recipient]
            let reading = ["AGE_IDENTITY_FILE": key]

            // A backup to a directory: one .tar.zst.age that the standard tools open.
            let archives = directory.appendingPathComponent("archives")
            let fileTarget = "file://\(archives.path)"
            let backup = try StackVaultCLI.run(["backup", "--stack", Self.project, "--target", fileTarget], environment: writing)
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            let names = TestBed.hostFiles(archives).filter { $0.hasPrefix("backup-") }
            #expect(names.count == 1 && names[0].hasSuffix(".tar.zst.age"), "\(names)")
            let produced = TestBed.hostFolder(archives).appendingPathComponent(try #require(names.first)).path
            #expect(try Shell.run(["head", "-c", "21", produced]).stdout == "age-encryption.org/v1")
            let extracted = directory.appendingPathComponent("extracted")
            try FileManager.default.createDirectory(at: extracted, withIntermediateDirectories: true)
            try Shell.sh("age -d -i '\(key)' '\(produced)' | tar --zstd -x -C '\(extracted.path)'")
            let checksums = "find . -type f -exec md5sum {} + | LC_ALL=C sort -k 2"
            let inContainer = try Docker.exec(stack.files, "cd /data && \(checksums)")
            let fromArchive = try Shell.sh("cd '\(extracted.path)/files/volumes/data' && \(checksums)").stdout
            #expect(!inContainer.isEmpty && fromArchive == inContainer, "the directory extracts byte for byte")

            // The same to S3 when there is one: that is where backups usually live.
            let s3 = Restore.s3Target()
            let (target, storageEnvironment) = s3 ?? (fileTarget, [:])
            defer { if let s3 { Restore.removeS3(s3.url) } }
            if s3 != nil {
                let toS3 = try StackVaultCLI.run(["backup", "--stack", Self.project, "--target", target],
                                                 environment: storageEnvironment.merging(writing) { $1 })
                #expect(toS3.ok, "\(toS3.stdout)\n\(toS3.stderr)")
            }
            let withKey = storageEnvironment.merging(reading) { $1 }

            // list shows it encrypted; verify checks the envelope without the key, everything with it.
            let list = try StackVaultCLI.run(["list", "--stack", Self.project, "--target", target],
                                             environment: storageEnvironment)
            #expect(list.ok && list.stdout.contains(" age ") && list.stdout.contains(".tar.zst.age"), "\(list.stdout)")
            let keyless = try StackVaultCLI.run(["verify", "--latest", "--stack", Self.project, "--target", target],
                                                environment: storageEnvironment)
            #expect(keyless.ok && keyless.stdout.contains("envelope only") && keyless.stdout.contains("needs the identity"),
                    "\(keyless.stdout)\n\(keyless.stderr)")
            let verify = try StackVaultCLI.run(["verify", "--latest", "--stack", Self.project, "--target", target],
                                               environment: withKey)
            #expect(verify.ok && verify.stdout.contains("PASSED") && verify.stdout.contains("ok, complete dump"),
                    "\(verify.stdout)\n\(verify.stderr)")

            // Restoring needs the identity: without it, or with another key, nothing is touched.
            try Restore.destroy(stack)
            let destroyed = try stack.snapshot()
            let noKey = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target, "--yes"],
                                              environment: storageEnvironment)
            #expect(!noKey.ok && noKey.stderr.contains("AGE_IDENTITY_FILE"), "\(noKey.stdout)\n\(noKey.stderr)")
            let otherKey = directory.appendingPathComponent("other.txt").path
            try Shell.run(["age-keygen", "-o", otherKey])
            let wrong = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target, "--yes"],
                                              environment: storageEnvironment.merging(["AGE_IDENTITY_FILE": otherKey]) { $1 })
            #expect(wrong.status == 1 && (wrong.stdout + wrong.stderr).contains("no identity given opens"),
                    "\(wrong.stdout)\n\(wrong.stderr)")
            #expect(try stack.snapshot() == destroyed, "refused restores changed nothing")
            for secret in ["AGE-SECRET-KEY-", "app-secret-pw"] {
                #expect(!(noKey.stderr + wrong.stderr + wrong.stdout + backup.stderr).contains(secret))
            }

            let restore = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target,
                                                 "--yes"], environment: withKey)
            #expect(restore.ok, "\(restore.stdout)\n\(restore.stderr)")
            let restored = try stack.snapshot()
            #expect(restored.postgres == original.postgres)
            #expect(restored.mariadb == original.mariadb)
            #expect(restored.data == original.data)
            #expect(restored.config == original.config)
        }
    }
}
