import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
import StackVaultTestKit
import Testing

extension S3TestServer {
    /// The test bed's second S3 server, moto (scripts/testbed/start-s3.sh): `STACKVAULT_TEST_MOTO_ENDPOINT`, else
    /// .testbed/env, else http://127.0.0.1:9100. moto accepts any keys; the bucket is the same name as rclone's.
    static let moto: S3TestServer = {
        var values = fileEnvironment()
        values.merge(TestBed.environment.filter { $0.key.hasPrefix("STACKVAULT_TEST_") && !$0.value.isEmpty }) { $1 }
        var server = current
        server.endpoint = values["STACKVAULT_TEST_MOTO_ENDPOINT"] ?? "http://127.0.0.1:9100"
        return server
    }()

    static let motoUsable: Bool = TestBed.isCI || moto.answers()

    /// Fails loudly when moto does not answer.
    func requireAnswering() throws {
        guard answers() else {
            throw TestFailure("no S3 server answers at \(endpoint) (run scripts/testbed/start-s3.sh, which starts "
                + "moto too, or set STACKVAULT_TEST_MOTO_ENDPOINT)")
        }
    }
}

/// A private rclone that accepts one key pair, and `_FILE` files holding that pair; `rotate()` switches the server
/// and the files to a new pair (the server restarts on the same port, as a key rotation looks to a client).
struct RotatingKeys {
    let rclone: PrivateS3Server
    let idFile: String
    let secretFile: String
    let label: String

    init(_ label: String) throws {
        self.label = label
        rclone = try PrivateS3Server(bucket: S3TestServer.current.bucket)
        let directory = try TestBed.temporaryDirectory("\(label)-keys")
        idFile = directory.appendingPathComponent("id").path
        secretFile = directory.appendingPathComponent("secret").path
        try use("old")
        try rclone.start()
    }

    private func use(_ generation: String) throws {
        rclone.authKeys = [("\(label)-\(generation)-key", "\(label)-\(generation)-secret-0123456789")]
        try "\(label)-\(generation)-key\n".write(toFile: idFile, atomically: true, encoding: .utf8)
        try "\(label)-\(generation)-secret-0123456789\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
    }

    func rotate() throws {
        rclone.kill()
        try use("new")
        try rclone.start()
    }
}

extension Integration {
    /// The second S3 implementation: the conformance suite, Object Lock with default retention (which requires a
    /// checksum header on every upload), and part limits counted on the server.
    @Suite(.enabled(if: S3TestServer.motoUsable,
                    "moto does not answer at \(S3TestServer.moto.endpoint); run scripts/testbed/start-s3.sh"))
    struct S3MotoTests {
        let server = S3TestServer.moto

        @Test func conformanceOnMotoWithSinglePutsAndMultipart() async throws {
            try server.requireAnswering()
            let single = try server.backend(prefix: S3Tests.uniquePrefix("moto-conformance"))
            try await S3Tests.cleaning(single) { try await StorageConformance.run(single) }
            let log = CapturedLog()
            let multipart = try server.backend(prefix: S3Tests.uniquePrefix("moto-conformance-multipart"),
                                               ["S3_MULTIPART_THRESHOLD": "5MiB", "S3_PART_SIZE": "5MiB"],
                                               logger: log.logger)
            try await S3Tests.cleaning(multipart) {
                try await StorageConformance.run(multipart, largeFileBytes: (12 << 20) + 777)
                #expect(log.messages.contains { $0.contains("in 3 part(s) of 5 MiB") }, "\(log.messages)")
            }
        }

        /// A bucket with Object Lock and a default retention: uploads need a checksum header. With the defaults both
        /// a small (one PUT) and a multipart archive go up and carry the retention; with S3_CHECKSUM=none the
        /// server's refusal names the setting, at once (not retried).
        @Test func objectLockBucketWithDefaultRetention() async throws {
            try server.requireAnswering()
            let bucket = "stackvault-lock-\(UUID().uuidString.prefix(8).lowercased())"
            try server.aws(["s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket"])
            try server.aws(["s3api", "put-object-lock-configuration", "--bucket", bucket,
                            "--object-lock-configuration",
                            #"{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}"#])
            let backend = try server.backend(prefix: "locked", bucket: bucket, ["S3_MULTIPART_THRESHOLD": "5MiB",
                                                                               "S3_PART_SIZE": "5MiB"])
            let small = try S3Tests.file("small.tar.zst", size: 4321, seed: 101)
            let large = try S3Tests.file("large.tar.zst", size: (11 << 20) + 5, seed: 102)
            _ = try await backend.store(localPath: small.path, as: "small.tar.zst")
            _ = try await backend.store(localPath: large.path, as: "large.tar.zst")
            let smallHead = try server.aws(["s3api", "head-object", "--bucket", bucket, "--key", "locked/small.tar.zst",
                                            "--output", "json"]).stdout
            #expect(smallHead.contains("\"ObjectLockMode\": \"GOVERNANCE\""), "\(smallHead)")
            #expect(smallHead.contains("ObjectLockRetainUntilDate"), "\(smallHead)")
            // moto (5.2) applies a bucket's default retention in PutObject only, not at CompleteMultipartUpload (AWS
            // applies it to every new object), so for the multipart archive the server can only show that it took
            // the upload as 3 parts, each with its checksum.
            let largeHead = try server.aws(["s3api", "head-object", "--bucket", bucket, "--key", "locked/large.tar.zst",
                                            "--output", "json"]).stdout
            #expect(largeHead.contains("-3\\\""), "a 3-part upload: \(largeHead)")
            let back = try TestBed.temporaryDirectory("moto-lock").appendingPathComponent("back").path
            try server.aws(["s3", "cp", "--only-show-errors", "s3://\(bucket)/locked/large.tar.zst", back])
            #expect(try S3Tests.digest(ofFile: back) == large.digest)

            let unchecked = try server.backend(prefix: "locked", bucket: bucket, ["S3_CHECKSUM": "none"])
            let started = ContinuousClock.now
            do {
                _ = try await unchecked.store(localPath: small.path, as: "unchecked.tar.zst")
                Issue.record("an Object Lock bucket accepted an upload without a checksum header")
            } catch let error as StackVaultError {
                print("S3 error as the user sees it: \(error)")
                #expect("\(error)".contains("S3_CHECKSUM"), "\(error)")
                #expect(!error.isTransient)
            }
            #expect(ContinuousClock.now - started < .seconds(5), "a refused checksum is not retried")
        }

        /// S3_MAX_PARTS=20 on a 200 MiB archive: the part size grows to 10 MiB and the server's multipart ETag
        /// (`<md5 of the part md5s>-<count>`) says 20 parts. An archive too large for the limit is refused before
        /// anything is sent.
        @Test func partLimitIsKeptAndTooLargeArchivesAreRefusedBeforeUpload() async throws {
            try server.requireAnswering()
            let prefix = S3Tests.uniquePrefix("max-parts")
            let log = CapturedLog()
            let backend = try server.backend(prefix: prefix, ["S3_MAX_PARTS": "20"], logger: log.logger)
            try await S3Tests.cleaning(backend) {
                let archive = try S3Tests.file("big.tar.zst", size: 200 << 20, seed: 111)
                _ = try await backend.store(localPath: archive.path, as: "big.tar.zst")
                #expect(log.messages.contains { $0.contains("in 20 part(s) of 10 MiB") }, "\(log.messages)")
                let etag = try server.aws(["s3api", "head-object", "--bucket", server.bucket, "--key",
                                           "\(prefix)/big.tar.zst", "--query", "ETag", "--output", "text"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let parts = Int(etag.replacingOccurrences(of: "\"", with: "").split(separator: "-").last ?? "")
                #expect(parts == 20, "the server assembled \(parts.map(String.init) ?? "?") parts (ETag \(etag))")

                // 1 part of at most 5 GiB cannot hold 6 GiB (a sparse file: nothing is read before the refusal).
                let tooLarge = try TestBed.temporaryDirectory("max-parts").appendingPathComponent("huge").path
                try Shell.run(["truncate", "-s", "6G", tooLarge])
                let limited = try server.backend(prefix: prefix, ["S3_MAX_PARTS": "1"])
                let started = ContinuousClock.now
                do {
                    _ = try await limited.store(localPath: tooLarge, as: "huge.tar.zst")
                    Issue.record("a 6 GiB archive was accepted with S3_MAX_PARTS=1")
                } catch let error as StackVaultError {
                    #expect("\(error)".contains("S3_MAX_PARTS") && "\(error)".contains("nothing was uploaded"))
                }
                #expect(ContinuousClock.now - started < .seconds(5))
                let uploads = try server.aws(["s3api", "list-multipart-uploads", "--bucket", server.bucket,
                                              "--prefix", prefix, "--query", "Uploads[].UploadId", "--output",
                                              "text"]).stdout
                #expect(!uploads.contains(where: \.isLetter) || uploads.contains("None"), "no upload started: \(uploads)")
                #expect(try await backend.list(prefix: "huge").isEmpty)
            }
        }
    }

    /// Credentials that change while the sidecar runs: rotated `_FILE` keys, container and instance-role
    /// credentials from a loopback endpoint. Each test runs its own rclone on its own port (the shared one on 9000
    /// is never restarted).
    @Suite(.enabled(if: S3TestServer.usable,
                    "no S3 server answers at \(S3TestServer.current.endpoint); run scripts/testbed/start-s3.sh"))
    struct S3CredentialTests {
        let server = S3TestServer.current

        /// One backend (as the daemon keeps it between runs) reading `_FILE` keys: the server's keys are rotated
        /// and the files rewritten; the next run succeeds without a restart.
        @Test func fileCredentialsSurviveARotation() async throws {
            try TestBed.requireS3()
            let keys = try RotatingKeys("rotation")
            defer { keys.rclone.kill() }
            let environment = [
                "AWS_ACCESS_KEY_ID_FILE": keys.idFile, "AWS_SECRET_ACCESS_KEY_FILE": keys.secretFile,
                "AWS_DEFAULT_REGION": server.region, "S3_ENDPOINT_URL": keys.rclone.endpoint, "S3_MAX_ATTEMPTS": "2",
            ]
            let backend = try BuiltinStorageBackends.registry().backend(for: "s3://\(server.bucket)/rotation",
                                                                        environment: environment)
            let archive = try S3Tests.file("a.tar.zst", size: 5000, seed: 121)
            _ = try await backend.store(localPath: archive.path, as: "before.tar.zst")

            try keys.rotate()

            _ = try await backend.store(localPath: archive.path, as: "after.tar.zst")
            #expect(Set(try await backend.list(prefix: "").map(\.name)) == ["before.tar.zst", "after.tar.zst"])
        }

        /// Starts the fixture script `name` (a loopback server that writes its port to the file given as its first
        /// argument); returns its base URL, its port file, and the process (kill it with SIGKILL: children of the
        /// test process inherit a blocked SIGTERM).
        static func loopbackServer(_ name: String, _ arguments: [String]) throws
            -> (url: String, portFile: URL, process: Process)
        {
            let directory = try TestBed.temporaryDirectory(name)
            let portFile = directory.appendingPathComponent("port")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", TestBed.fixtures.appendingPathComponent(name).path, portFile.path]
                + arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(15)
            while !FileManager.default.fileExists(atPath: portFile.path) {
                guard Date() < deadline, process.isRunning else { throw TestFailure("\(name) did not start") }
                usleep(50_000)
            }
            return ("http://127.0.0.1:\(try String(contentsOf: portFile, encoding: .utf8))", portFile, process)
        }

        /// The loopback credential endpoint (container and IMDSv2 paths); returns its URL, the file that holds (and
        /// rotates) the credentials it serves, and its process.
        static func credentialEndpoint(token: String? = nil) throws -> (url: String, file: URL, process: Process) {
            let credentials = try TestBed.temporaryDirectory("credentials").appendingPathComponent("credentials.json")
            let server = try loopbackServer("credential-endpoint.py", [credentials.path] + (token.map { [$0] } ?? []))
            return (server.url, credentials, server.process)
        }

        static func writeCredentials(_ file: URL, key: String, secret: String, expiresIn: TimeInterval) throws {
            let expiration = ISO8601DateFormatter().string(from: Date().addingTimeInterval(expiresIn))
            try #"{"AccessKeyId":"\#(key)","SecretAccessKey":"\#(secret)","Token":"token-\#(key)","Expiration":"\#(expiration)"}"#
                .write(to: file, atomically: true, encoding: .utf8)
        }

        /// Container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI` + token file) and IMDSv2
        /// (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), with no keys configured: uploads work; the role's keys rotate on
        /// the server while the old temporary credentials are still cached, and the refused request is signed again
        /// with the fresh ones; credentials about to expire are renewed before use.
        @Test(arguments: ["container", "instance metadata"])
        func roleCredentialsFromALoopbackEndpointRotate(source: String) async throws {
            try TestBed.requireS3()
            let rclone = try PrivateS3Server(bucket: server.bucket)
            rclone.authKeys = [("role-key-1", "role-secret-1-0123456789")]
            try rclone.start()
            defer { rclone.kill() }
            let token = "container-token-\(UUID().uuidString)"
            let endpoint = try Self.credentialEndpoint(token: token)
            defer { kill(endpoint.process.processIdentifier, SIGKILL) }
            try Self.writeCredentials(endpoint.file, key: "role-key-1", secret: "role-secret-1-0123456789",
                                      expiresIn: 3600)
            let tokenFile = try TestBed.temporaryDirectory("container-token").appendingPathComponent("token")
            try token.write(to: tokenFile, atomically: true, encoding: .utf8)
            var environment = ["AWS_DEFAULT_REGION": server.region, "S3_ENDPOINT_URL": rclone.endpoint,
                               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "S3_MAX_ATTEMPTS": "2"]
            if source == "container" {
                environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url + "/creds"
                environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = tokenFile.path
            } else {
                environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = endpoint.url
            }
            let log = CapturedLog()
            let backend = RetryingBackend(try S3Backend(url: "s3://\(server.bucket)/role", environment: environment,
                                                        logger: log.logger), logger: log.logger)
            let expected: S3CredentialSource = source == "container"
                ? .container(url: endpoint.url + "/creds") : .instanceMetadata(endpoint: endpoint.url, role: nil)
            #expect(backend.s3.credentialSource == expected)
            let archive = try S3Tests.file("r.tar.zst", size: 3000, seed: 131)
            _ = try await backend.store(localPath: archive.path, as: "one.tar.zst")

            // Rotation: the server takes only the new key; the cached credentials are still valid for an hour.
            rclone.kill()
            rclone.authKeys = [("role-key-2", "role-secret-2-0123456789")]
            try rclone.start()
            try Self.writeCredentials(endpoint.file, key: "role-key-2", secret: "role-secret-2-0123456789",
                                      expiresIn: 120)
            _ = try await backend.store(localPath: archive.path, as: "two.tar.zst")
            #expect(log.messages.contains { $0.contains("refused access key role-key-1") }, "\(log.messages)")

            // The new credentials expire within the refresh window: they are renewed before the next request.
            rclone.kill()
            rclone.authKeys = [("role-key-2", "role-secret-2-0123456789"), ("role-key-3", "role-secret-3-0123456789")]
            try rclone.start()
            try Self.writeCredentials(endpoint.file, key: "role-key-3", secret: "role-secret-3-0123456789",
                                      expiresIn: 3600)
            _ = try await backend.store(localPath: archive.path, as: "three.tar.zst")
            #expect(log.messages.contains { $0.contains("expire at") && $0.contains("refreshing") }, "\(log.messages)")
            #expect(Set(try await backend.list(prefix: "").map(\.name)) == ["one.tar.zst", "two.tar.zst",
                                                                           "three.tar.zst"])
            #expect(!log.messages.contains { $0.contains("role-secret") }, "no secret in the log")
        }
    }
}

extension Integration.S3CredentialTests {
    /// A server that refuses `x-amz-checksum-sha256` as Backblaze B2 does (a loopback front to rclone): with
    /// S3_CHECKSUM unset the first upload falls back to Content-MD5 and every later one uses it at once; with
    /// S3_CHECKSUM=sha256 set, the refusal fails the upload with an error naming the setting.
    @Test func aServerRefusingChecksumHeadersGetsContentMD5() async throws {
        try TestBed.requireS3()
        let upstream = URLComponents(string: server.endpoint)
        let front = try Self.loopbackServer("checksum-rejecting-proxy.py",
                                            [upstream?.host ?? "127.0.0.1", "\(upstream?.port ?? 9000)"])
        defer { kill(front.process.processIdentifier, SIGKILL) }
        let proxy = front.url
        let portFile = front.portFile
        let prefix = Integration.S3Tests.uniquePrefix("b2-like")
        let log = CapturedLog()
        let backend = RetryingBackend(try S3Backend(
            url: "s3://\(server.bucket)/\(prefix)",
            environment: server.environment(["S3_ENDPOINT_URL": proxy, "S3_MULTIPART_THRESHOLD": "5MiB"]),
            logger: log.logger), logger: log.logger)
        try await Integration.S3Tests.cleaning(backend) {
            let small = try Integration.S3Tests.file("small.tar.zst", size: 1500, seed: 151)
            let large = try Integration.S3Tests.file("large.tar.zst", size: (6 << 20) + 9, seed: 152)
            _ = try await backend.store(localPath: small.path, as: "small.tar.zst")
            _ = try await backend.store(localPath: large.path, as: "large.tar.zst")
            #expect(log.messages.contains { $0.contains("does not accept x-amz-checksum-sha256") }, "\(log.messages)")
            let refusals = (try? String(contentsOf: portFile.appendingPathExtension("log"), encoding: .utf8)) ?? ""
            #expect(refusals.split(separator: "\n").count == 1, "one refusal, then Content-MD5: \(refusals)")
            let back = try TestBed.temporaryDirectory("b2-like").appendingPathComponent("large").path
            try server.aws(["s3", "cp", "--only-show-errors", "s3://\(server.bucket)/\(prefix)/large.tar.zst", back])
            #expect(try Integration.S3Tests.digest(ofFile: back) == large.digest)

            let strict = try server.backend(prefix: prefix, ["S3_ENDPOINT_URL": proxy, "S3_CHECKSUM": "sha256"])
            do {
                _ = try await strict.store(localPath: small.path, as: "strict.tar.zst")
                Issue.record("a refused checksum header was not reported")
            } catch {
                print("S3 error as the user sees it: \(error)")
                #expect("\(error)".contains("S3_CHECKSUM=md5"), "\(error)")
            }
        }
    }
}

extension Integration.DaemonTests {
    /// `stackvault daemon` with `_FILE` keys and an S3 target on a private rclone: after the first run (at start) the
    /// keys are rotated on the server and in the files; the next scheduled run succeeds without a restart.
    @Test func aDaemonWithFileCredentialsSurvivesAKeyRotation() throws {
        try TestBed.requireDocker()
        try TestBed.requireS3()
        let server = S3TestServer.current
        let keys = try RotatingKeys("daemon")
        defer { keys.rclone.kill() }

        let name = "svtest-dmn-rotation"
        try Self.volumeContainer(name)
        defer { Self.removeContainers(name) }
        let daemon = try Daemon("rotation", stacks: [name], environment: [
            "CRON_SCHEDULE": "* * * * *", "BACKUP_ON_START": "true", "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "", "AWS_ACCESS_KEY_ID_FILE": keys.idFile, "AWS_SECRET_ACCESS_KEY_FILE": keys.secretFile,
            "AWS_DEFAULT_REGION": server.region, "S3_ENDPOINT_URL": keys.rclone.endpoint, "S3_MAX_ATTEMPTS": "2",
        ], targetURL: "s3://\(server.bucket)/daemon-rotation")
        defer { daemon.cleanUp() }
        let first = try daemon.waitForState(seconds: 80, "the run at start") { $0.lastRun != nil }
        let firstRun = try #require(first.lastRun)
        #expect(firstRun.outcome == .succeeded, "\(daemon.log.suffix(3000))")

        try keys.rotate()
        // A run that started before the rotation (the every-minute tick right after the run at start) may fail: it
        // signed with the old keys. The claim is about the runs after it.
        let rotatedAt = Date()

        let second = try daemon.waitForState(seconds: 80, "a scheduled run after the rotation") {
            ($0.lastRun?.startedAt ?? .distantPast) > rotatedAt
        }
        #expect(second.lastRun?.outcome == .succeeded, "\(daemon.log.suffix(3000))")
        #expect(!daemon.log.contains("daemon-new-secret") && !daemon.log.contains("daemon-old-secret"))
        let stored = try FileManager.default.subpathsOfDirectory(
            atPath: keys.rclone.directory.appendingPathComponent("\(server.bucket)/daemon-rotation").path)
            .filter { $0.hasSuffix(".tar.zst") }
        #expect(stored.count >= 2, "an archive per successful run: \(stored)")
        #expect(daemon.stop() == 0)
    }
}
