import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
import StackVaultTestKit
import Synchronization
import Testing

/// The S3 server the integration tests use, from the environment, so the suite runs unchanged against
/// `rclone serve s3` (scripts/testbed/start-s3.sh), MinIO or AWS:
///
///     STACKVAULT_TEST_S3_ENDPOINT   http://127.0.0.1:9000 (for AWS: https://s3.<region>.amazonaws.com)
///     STACKVAULT_TEST_S3_ACCESS_KEY / STACKVAULT_TEST_S3_SECRET_KEY
///     STACKVAULT_TEST_S3_BUCKET     an existing bucket the tests may write to (they use unique prefixes)
///     STACKVAULT_TEST_S3_REGION     us-east-1
///
/// Values missing from the environment are read from .testbed/env (written by scripts/testbed/up.sh), then
/// default to the test bed's own (scripts/testbed/lib.sh).
struct S3TestServer: Sendable {
    var endpoint: String
    var accessKey: String
    var secretKey: String
    var bucket: String
    var region: String

    static let current = load()

    static func load() -> S3TestServer {
        var values = fileEnvironment()
        values.merge(TestBed.environment.filter { $0.key.hasPrefix("STACKVAULT_TEST_S3_") && !$0.value.isEmpty }) { $1 }
        return S3TestServer(
            endpoint: values["STACKVAULT_TEST_S3_ENDPOINT"] ?? "http://127.0.0.1:9000",
            accessKey: values["STACKVAULT_TEST_S3_ACCESS_KEY"] ?? "stackvault-test-access",
            secretKey: values["STACKVAULT_TEST_S3_SECRET_KEY"] ?? "stackvault-test-secret-0123456789",
            bucket: values["STACKVAULT_TEST_S3_BUCKET"] ?? "stackvault-test",
            region: values["STACKVAULT_TEST_S3_REGION"] ?? "us-east-1")
    }

    /// `export NAME=value` lines of .testbed/env (values as bash's `printf %q` writes them).
    static func fileEnvironment() -> [String: String] {
        let path = TestBed.repositoryRoot.appendingPathComponent(".testbed/env").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            var entry = line.trimmingCharacters(in: .whitespaces)
            guard !entry.hasPrefix("#") else { continue }
            if entry.hasPrefix("export ") { entry.removeFirst("export ".count) }
            guard let equals = entry.firstIndex(of: "=") else { continue }
            var value = String(entry[entry.index(after: equals)...])
            if value.count >= 2, value.first == value.last, value.first == "'" || value.first == "\"" {
                value = String(value.dropFirst().dropLast())
            }
            values[String(entry[..<equals])] = value.replacingOccurrences(of: "\\", with: "")
        }
        return values
    }

    /// True in CI (where a missing server must fail the tests), else when something answers HTTP at the endpoint.
    static let usable: Bool = {
        if TestBed.isCI { return true }
        return current.answers()
    }()

    func answers() -> Bool {
        // -k: this only asks whether something answers HTTP(S) there, whatever its certificate.
        let result = try? Shell.run(["curl", "-k", "-s", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}", endpoint],
                                    check: false)
        return (result?.stdout ?? "000") != "000"
    }

    /// The environment the backend reads, for target `s3://bucket/prefix`.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey, "AWS_DEFAULT_REGION": region,
            "S3_ENDPOINT_URL": endpoint,
        ].merging(extra) { $1 }
    }

    /// The S3 backend as the registry builds it (wrapped in `RetryingBackend`), logging to `logger`.
    func backend(prefix: String, bucket: String? = nil, _ extra: [String: String] = [:],
                 logger: Logger = Logger(label: "s3-it")) throws -> RetryingBackend {
        RetryingBackend(try S3Backend(url: "s3://\(bucket ?? self.bucket)/\(prefix)", environment: environment(extra),
                                      logger: logger), logger: logger)
    }

    /// The AWS CLI with the test credentials only (no profile, no instance metadata).
    @discardableResult
    func aws(_ arguments: [String], endpoint: String? = nil, check: Bool = true) throws -> CommandResult {
        try Shell.run(["aws", "--endpoint-url", endpoint ?? self.endpoint] + arguments, environment: [
            "AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey, "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
        ], check: check)
    }
}

extension RetryingBackend {
    /// The wrapped S3 backend, for checks of its internals.
    var s3: S3Backend { inner as! S3Backend }
}

extension TestBed {
    /// Fails loudly when the S3 server does not answer or the bucket is not usable.
    static func requireS3() throws {
        let server = S3TestServer.current
        guard server.answers() else {
            throw TestFailure("no S3 server answers at \(server.endpoint) (run scripts/testbed/up.sh or "
                + "scripts/testbed/start-s3.sh, or set STACKVAULT_TEST_S3_ENDPOINT)")
        }
        let head = try server.aws(["s3api", "head-bucket", "--bucket", server.bucket], check: false)
        guard head.ok else {
            throw TestFailure("the S3 test bucket \(server.bucket) at \(server.endpoint) is not usable with the "
                + "test credentials: \(head.stderr)")
        }
    }
}

/// Collects log messages; an optional hook sees each one as it is logged.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    private let hook: (@Sendable (String) -> Void)?

    init(hook: (@Sendable (String) -> Void)? = nil) { self.hook = hook }

    var messages: [String] { lock.withLock { storage } }

    func append(_ message: String) {
        lock.withLock { storage.append(message) }
        hook?(message)
    }

    var logger: Logger {
        var logger = Logger(label: "s3-it") { _ in Handler(log: self) }
        logger.logLevel = .debug
        return logger
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            log.append(event.message.description)
        }
    }
}

/// A private `rclone serve s3` on its own port and directory, for tests that kill the server or need another
/// setup (TLS with a self-signed certificate, virtual-hosted addressing).
final class PrivateS3Server: @unchecked Sendable {
    let directory: URL
    let port: Int
    let server = S3TestServer.current
    /// The self-signed certificate (PEM) when serving HTTPS.
    let certificate: String?
    /// The endpoint's host name (`localhost` resolves `bucket.localhost` too, for virtual-hosted addressing).
    let host: String
    private let arguments: [String]
    private let lock = NSLock()
    private var process: Process?
    private var keys: [(access: String, secret: String)]

    /// The access keys the server accepts from the next `start()` on (a rotation is `kill()`, this, `start()`).
    var authKeys: [(access: String, secret: String)] {
        get { lock.withLock { keys } }
        set { lock.withLock { keys = newValue } }
    }

    var endpoint: String { "\(certificate == nil ? "http" : "https")://\(host):\(port)" }

    init(bucket: String, tls: Bool = false, virtualHosted: Bool = false) throws {
        directory = try TestBed.temporaryDirectory("s3-private")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent(bucket),
                                                withIntermediateDirectories: true)
        port = Int(try Shell.run(["python3", "-c", "import socket; s = socket.socket(); "
            + "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        host = virtualHosted ? "localhost" : "127.0.0.1"
        var arguments: [String] = []
        if virtualHosted { arguments.append("--force-path-style=false") }
        if tls {
            let certificate = directory.appendingPathComponent("cert.pem").path
            let key = directory.appendingPathComponent("key.pem").path
            try Shell.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", key, "-out", certificate])
            arguments += ["--cert", certificate, "--key", key]
            self.certificate = certificate
        } else {
            certificate = nil
        }
        self.arguments = arguments
        keys = [(S3TestServer.current.accessKey, S3TestServer.current.secretKey)]
    }

    static func rcloneBinary() throws -> String {
        let found = try Shell.sh("command -v rclone || echo \"$(python3 -c 'import sysconfig; "
            + "print(sysconfig.get_path(\"scripts\"))')/rclone\"").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard FileManager.default.isExecutableFile(atPath: found) else {
            throw TestFailure("rclone not found (run scripts/install-deps.sh)")
        }
        return found
    }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.rcloneBinary())
        process.arguments = ["serve", "s3"] + authKeys.flatMap { ["--auth-key", "\($0.access),\($0.secret)"] }
            + ["--addr", "127.0.0.1:\(port)"] + arguments + [directory.path]
        process.environment = ProcessInfo.processInfo.environment.merging(["RCLONE_CONFIG": "/dev/null"]) { $1 }
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        let deadline = Date().addingTimeInterval(20)
        let probe = S3TestServer(endpoint: endpoint, accessKey: "", secretKey: "", bucket: "", region: "")
        while !probe.answers() {
            guard Date() < deadline, process.isRunning else {
                throw TestFailure("the private rclone S3 server on port \(port) did not start")
            }
            usleep(100_000)
        }
    }

    /// SIGKILL, as a crash or a pulled cable would look; safe to call from any thread, more than once.
    func kill() {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil }
            return self.process
        }
        guard let process, process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(at: directory)
    }
}

extension Integration {
    @Suite(.enabled(if: S3TestServer.usable,
                    "no S3 server answers at \(S3TestServer.current.endpoint); run scripts/testbed/start-s3.sh"))
    struct S3Tests {
        let server = S3TestServer.current

        /// A prefix no other test (or earlier run) uses.
        static func uniquePrefix(_ name: String) -> String { "stackvault-it-\(UUID().uuidString.prefix(8))/\(name)" }

        /// Runs `body`, then deletes everything under the backend's prefix, also when `body` throws.
        static func cleaning<T>(_ backend: any StorageBackend, _ body: () async throws -> T) async throws -> T {
            func clean() async {
                for object in (try? await backend.list(prefix: "")) ?? [] { try? await backend.delete(object.name) }
            }
            do {
                let result = try await body()
                await clean()
                return result
            } catch {
                await clean()
                throw error
            }
        }

        static func file(_ name: String, size: Int, seed: UInt64) throws -> (path: String, digest: SHA256.Digest) {
            let directory = try TestBed.temporaryDirectory("s3")
            let path = directory.appendingPathComponent(name).path
            return (path, try StorageConformance.writePattern(to: path, size: size, seed: seed))
        }

        static func digest(ofFile path: String) throws -> SHA256.Digest {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            var hasher = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(bytes: chunk) }
            return hasher.finalize()
        }

        @Test func conformanceWithSinglePuts() async throws {
            try TestBed.requireS3()
            let backend = try server.backend(prefix: Self.uniquePrefix("conformance"))
            try await Self.cleaning(backend) {
                try await StorageConformance.run(backend)
                #expect(try await backend.list(prefix: "").isEmpty)
            }
        }

        @Test func conformanceWithMultipartUploads() async throws {
            try TestBed.requireS3()
            let log = CapturedLog()
            let backend = try server.backend(prefix: Self.uniquePrefix("conformance-multipart"),
                                             ["S3_MULTIPART_THRESHOLD": "5MiB", "S3_PART_SIZE": "5MiB",
                                              "S3_CONTENT_MD5": "true"],
                                             logger: log.logger)
            try await Self.cleaning(backend) {
                try await StorageConformance.run(backend, largeFileBytes: (12 << 20) + 777)
                #expect(log.messages.contains { $0.contains("in 3 part(s) of 5 MiB") }, "\(log.messages)")
            }
        }

        /// What the sidecar uploads, the AWS CLI downloads byte for byte: one PUT and a 5-part multipart upload.
        @Test func smallAndLargeUploadsReadBackWithTheAWSCLI() async throws {
            try TestBed.requireS3()
            let prefix = Self.uniquePrefix("roundtrip")
            let log = CapturedLog()
            let backend = try server.backend(prefix: prefix,
                                             ["S3_MULTIPART_THRESHOLD": "16MiB", "S3_PART_SIZE": "8MiB"],
                                             logger: log.logger)
            try await Self.cleaning(backend) {
                let small = try Self.file("small.tar.zst", size: 4321, seed: 11)
                let large = try Self.file("large.tar.zst", size: 40 << 20, seed: 12)

                let storedSmall = try await backend.store(localPath: small.path, as: "small.tar.zst")
                let storedLarge = try await backend.store(localPath: large.path, as: "large.tar.zst")
                #expect(storedSmall.sizeBytes == 4321 && storedLarge.sizeBytes == 40 << 20)
                #expect(log.messages.contains { $0.contains("small.tar.zst") && $0.contains("in one request") })
                #expect(log.messages.contains { $0.contains("large.tar.zst") && $0.contains("in 5 part(s) of 8 MiB") })
                let partsDone = log.messages.filter {
                    $0.contains("large.tar.zst: part") && $0.contains("of 5 uploaded")
                }
                #expect(partsDone.count == 5)

                let downloads = try TestBed.temporaryDirectory("s3-download")
                for (name, source) in [("small.tar.zst", small), ("large.tar.zst", large)] {
                    let target = downloads.appendingPathComponent(name).path
                    try server.aws(["s3", "cp", "--only-show-errors", "s3://\(server.bucket)/\(prefix)/\(name)",
                                    target])
                    #expect(try Self.digest(ofFile: target) == source.digest,
                            "\(name) differs after the AWS CLI download")
                }
                let listing = try server.aws(["s3api", "list-objects-v2", "--bucket", server.bucket, "--prefix",
                                              "\(prefix)/", "--query", "Contents[].[Key,Size]", "--output", "text"])
                #expect(listing.stdout.contains("\(prefix)/large.tar.zst\t\(40 << 20)"), "\(listing.stdout)")
                #expect(FileManager.default.fileExists(atPath: large.path), "the local archive is kept")
            }
        }

        @Test func aWrongSecretFailsFastWithAClearMessage() async throws {
            try TestBed.requireS3()
            let wrongSecret = "definitely-not-the-secret-0000"
            let backend = try server.backend(prefix: Self.uniquePrefix("wrong-secret"),
                                             ["AWS_SECRET_ACCESS_KEY": wrongSecret])
            let file = try Self.file("a.tar.zst", size: 1000, seed: 21)
            let started = ContinuousClock.now
            do {
                _ = try await backend.store(localPath: file.path, as: "a.tar.zst")
                Issue.record("a wrong secret was accepted")
            } catch let error as StackVaultError {
                let text = "\(error)"
                print("S3 error as the user sees it: \(text)")
                #expect(text.contains("SignatureDoesNotMatch"), "\(text)")
                #expect(text.contains("AWS_SECRET_ACCESS_KEY"), "\(text)")
                #expect(!text.contains(wrongSecret) && !text.contains(server.secretKey), "no secret in \(text)")
                #expect(!error.isTransient)
            }
            #expect(ContinuousClock.now - started < .seconds(5), "permanent errors are not retried")
            await #expect(throws: StackVaultError.self) { _ = try await backend.list(prefix: "") }
        }

        @Test func aMissingBucketFailsWithAClearMessage() async throws {
            try TestBed.requireS3()
            let bucket = "stackvault-missing-\(UUID().uuidString.prefix(8).lowercased())"
            let backend = try server.backend(prefix: "p", bucket: bucket, ["S3_MULTIPART_THRESHOLD": "5MiB"])
            for size in [1000, 6 << 20] {  // single PUT, then multipart
                let file = try Self.file("a.tar.zst", size: size, seed: 31)
                do {
                    _ = try await backend.store(localPath: file.path, as: "a.tar.zst")
                    Issue.record("an upload into a missing bucket succeeded")
                } catch let error as StackVaultError {
                    let text = "\(error)"
                print("S3 error as the user sees it: \(text)")
                    #expect(text.contains("NoSuchBucket"), "\(text)")
                    #expect(text.contains("bucket '\(bucket)' does not exist"), "\(text)")
                    #expect(!error.isTransient)
                }
            }
        }

        @Test func prefixesWithSpacesAndUnicode() async throws {
            try TestBed.requireS3()
            let prefix = Self.uniquePrefix("My Backups ünïcødé 日本/daily +=&;")
            let backend = try server.backend(prefix: prefix,
                                             ["S3_MULTIPART_THRESHOLD": "5MiB", "S3_CONTENT_MD5": "true"])
            try await Self.cleaning(backend) {
                let small = try Self.file("s", size: 2000, seed: 41)
                let large = try Self.file("l", size: (6 << 20) + 3, seed: 42)
                _ = try await backend.store(localPath: small.path, as: "stack ä+b.tar.zst")
                _ = try await backend.store(localPath: large.path, as: "stack ä+b large.tar.zst")

                let listed = try await backend.list(prefix: "stack ä+b")
                #expect(Set(listed.map(\.name)) == ["stack ä+b.tar.zst", "stack ä+b large.tar.zst"])
                let keys = try server.aws(["s3api", "list-objects-v2", "--bucket", server.bucket, "--prefix", prefix,
                                           "--query", "Contents[].Key", "--output", "json"]).stdout
                let decoded = try JSONDecoder().decode([String].self, from: Data(keys.utf8))
                #expect(Set(decoded) == ["\(prefix)/stack ä+b.tar.zst", "\(prefix)/stack ä+b large.tar.zst"])

                let target = try TestBed.temporaryDirectory("s3-unicode").appendingPathComponent("back").path
                try server.aws(["s3", "cp", "--only-show-errors",
                                "s3://\(server.bucket)/\(prefix)/stack ä+b large.tar.zst", target])
                #expect(try Self.digest(ofFile: target) == large.digest)
            }
        }

        /// The server dies in the middle of a multipart upload: `store` fails (after its retries) with a message
        /// naming the endpoint, the local archive is untouched, no object appears; once the server is back, the
        /// same upload succeeds.
        @Test func serverKilledMidUploadFailsCleanlyAndARetrySucceeds() async throws {
            try TestBed.requireS3()
            let privateServer = try PrivateS3Server(bucket: server.bucket)
            try privateServer.start()
            defer { privateServer.kill() }

            // Kill the server as soon as the first part is through: the rest of the upload meets a dead endpoint.
            let log = CapturedLog { message in
                if message.contains(": part ") && message.contains("uploaded") { privateServer.kill() }
            }
            let environment = [
                "S3_ENDPOINT_URL": privateServer.endpoint, "S3_MULTIPART_THRESHOLD": "5MiB", "S3_PART_SIZE": "5MiB",
                "S3_UPLOAD_CONCURRENCY": "2", "S3_MAX_ATTEMPTS": "3",
            ]
            let backend = try server.backend(prefix: "killed", environment, logger: log.logger)
            let archive = try Self.file("killed.tar.zst", size: 60 << 20, seed: 51)

            let started = ContinuousClock.now
            do {
                _ = try await backend.store(localPath: archive.path, as: "killed.tar.zst")
                Issue.record("the upload succeeded although the server was killed")
            } catch let error as StackVaultError {
                let text = "\(error)"
                print("S3 error as the user sees it: \(text)")
                #expect(text.contains("could not talk to the S3 endpoint \(privateServer.endpoint)"), "\(text)")
                #expect(text.contains("gave up after 3 attempts"), "\(text)")
                #expect(error.isTransient, "a dead server is a passing fault: the next run may succeed")
            }
            #expect(ContinuousClock.now - started < .seconds(60))
            for message in log.messages where message.contains("retrying") || message.contains("abort") {
                print("S3 log: \(message)")
            }
            #expect(log.messages.contains { $0.contains("retrying in") }, "transient errors were retried")
            #expect(log.messages.contains { $0.contains("aborting the multipart upload") && $0.contains("failed too") },
                    "the abort was tried (and, with the server gone, logged as failed)")
            #expect(try Self.digest(ofFile: archive.path) == archive.digest, "the local archive is kept intact")

            // Back up: nothing was left under the name, and the rerun succeeds.
            try privateServer.start()
            #expect(try await backend.list(prefix: "").isEmpty)
            let listing = try server.aws(["s3", "ls", "--recursive", "s3://\(server.bucket)/killed/"],
                                         endpoint: privateServer.endpoint, check: false)
            #expect(!listing.stdout.contains("killed.tar.zst"), "\(listing.stdout)")

            let rerun = try server.backend(prefix: "killed", environment)
            let stored = try await rerun.store(localPath: archive.path, as: "killed.tar.zst")
            #expect(stored.sizeBytes == 60 << 20)
            let back = try TestBed.temporaryDirectory("s3-killed").appendingPathComponent("back").path
            try server.aws(["s3", "cp", "--only-show-errors", "s3://\(server.bucket)/killed/killed.tar.zst", back],
                           endpoint: privateServer.endpoint)
            #expect(try Self.digest(ofFile: back) == archive.digest)
        }

        /// The multipart upload IDs the server still holds under `prefix`.
        func pendingUploads(prefix: String) throws -> [String] {
            let output = try server.aws(["s3api", "list-multipart-uploads", "--bucket", server.bucket,
                                         "--prefix", prefix, "--query", "Uploads[].UploadId", "--output", "text"])
                .stdout
            return output.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0 != "None" }
        }

        /// A permanent failure in the middle of a multipart upload (the archive shrinks under it) against a live
        /// server: the upload is aborted, so no parts and no object are left.
        @Test func aFailedMultipartUploadIsAborted() async throws {
            try TestBed.requireS3()
            let prefix = Self.uniquePrefix("aborted")
            let archive = try Self.file("shrinking.tar.zst", size: 30 << 20, seed: 71)
            let log = CapturedLog { message in
                if message.contains(": part ") && message.contains("uploaded") { truncate(archive.path, 1000) }
            }
            let backend = try server.backend(prefix: prefix, ["S3_MULTIPART_THRESHOLD": "5MiB", "S3_PART_SIZE": "5MiB",
                                                              "S3_UPLOAD_CONCURRENCY": "1"], logger: log.logger)
            do {
                _ = try await backend.store(localPath: archive.path, as: "shrinking.tar.zst")
                Issue.record("an upload of a shrinking file succeeded")
            } catch let error as StackVaultError {
                print("S3 error as the user sees it: \(error)")
                #expect("\(error)".contains("shrank"))
                #expect(!error.isTransient)
            }
            #expect(log.messages.contains { $0.contains("multipart upload aborted") }, "\(log.messages)")
            #expect(try pendingUploads(prefix: prefix).isEmpty, "no multipart upload is left on the server")
            #expect(try await backend.list(prefix: "").isEmpty, "no object appeared")
        }

        /// Cancelling the task (SIGTERM in the sidecar) stops the upload and still aborts it on the server.
        @Test func cancellingAnUploadAbortsIt() async throws {
            try TestBed.requireS3()
            let prefix = Self.uniquePrefix("cancelled")
            let archive = try Self.file("cancelled.tar.zst", size: 60 << 20, seed: 81)
            let log = CapturedLog()
            let backend = try server.backend(prefix: prefix, ["S3_MULTIPART_THRESHOLD": "5MiB", "S3_PART_SIZE": "5MiB",
                                                              "S3_UPLOAD_CONCURRENCY": "1"], logger: log.logger)
            let upload = Task { try await backend.store(localPath: archive.path, as: "cancelled.tar.zst") }
            let deadline = Date().addingTimeInterval(30)
            while !log.messages.contains(where: { $0.contains(": part 1 of") }) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            upload.cancel()
            do {
                _ = try await upload.value
                Issue.record("the cancelled upload succeeded")
            } catch let error as StackVaultError {
                #expect(error.code == .cancelled, "\(error)")
            }
            #expect(log.messages.contains { $0.contains("multipart upload aborted") }, "\(log.messages)")
            #expect(try pendingUploads(prefix: prefix).isEmpty, "no multipart upload is left on the server")
            #expect(try await backend.list(prefix: "").isEmpty, "no object appeared")
            #expect(try Self.digest(ofFile: archive.path) == archive.digest, "the local archive is kept intact")
        }

        /// HTTPS with a self-signed certificate: refused with a hint to S3_CA_BUNDLE, accepted with it.
        @Test func httpsWithAPrivateCertificateAuthority() async throws {
            try TestBed.requireS3()
            let tlsServer = try PrivateS3Server(bucket: server.bucket, tls: true)
            try tlsServer.start()
            defer { tlsServer.kill() }
            let certificate = try #require(tlsServer.certificate)
            let environment = ["S3_ENDPOINT_URL": tlsServer.endpoint, "S3_MAX_ATTEMPTS": "1"]

            let untrusting = try server.backend(prefix: "tls", environment)
            do {
                _ = try await untrusting.list(prefix: "")
                Issue.record("a self-signed certificate was accepted without S3_CA_BUNDLE")
            } catch {
                print("S3 error as the user sees it: \(error)")
                #expect("\(error)".contains("S3_CA_BUNDLE"), "\(error)")
            }

            let trusting = try server.backend(prefix: "tls", environment.merging(["S3_CA_BUNDLE": certificate]) { $1 })
            #expect(trusting.description.hasSuffix("(endpoint \(tlsServer.endpoint))"))
            try await StorageConformance.run(trusting, largeFileBytes: 2 << 20)
        }

        /// Virtual-hosted addressing (`bucket.host`) when S3_FORCE_PATH_STYLE=false.
        @Test func virtualHostedAddressing() async throws {
            try TestBed.requireS3()
            let hostServer = try PrivateS3Server(bucket: server.bucket, virtualHosted: true)
            try hostServer.start()
            defer { hostServer.kill() }
            let backend = try server.backend(prefix: "virtual hosted", [
                "S3_ENDPOINT_URL": hostServer.endpoint, "S3_FORCE_PATH_STYLE": "false",
                "S3_MULTIPART_THRESHOLD": "5MiB",
            ])
            #expect(!backend.s3.configuration.usesPathStyle)
            try await StorageConformance.run(backend)
            let file = try Self.file("v", size: 1234, seed: 91)
            _ = try await backend.store(localPath: file.path, as: "v.bin")
            let stored = hostServer.directory.appendingPathComponent("\(server.bucket)/virtual hosted/v.bin").path
            #expect(try Self.digest(ofFile: stored) == file.digest, "the object landed in the bucket's folder")
        }

        /// Reads stream in small pieces, HEAD reports the size, deleting twice is fine.
        @Test func readStreamsAndDeleteIsIdempotent() async throws {
            try TestBed.requireS3()
            let backend = try server.backend(prefix: Self.uniquePrefix("read"))
            try await Self.cleaning(backend) {
                let file = try Self.file("r", size: (3 << 20) + 5, seed: 61)
                _ = try await backend.store(localPath: file.path, as: "r.bin")
                final class Chunks: ByteSink {
                    var count = 0
                    var largest = 0
                    var hasher = SHA256()
                    func write(_ bytes: UnsafeRawBufferPointer) throws {
                        count += bytes.count
                        largest = max(largest, bytes.count)
                        hasher.update(bytes)
                    }
                }
                let sink = Chunks()
                try await backend.read("r.bin", into: sink)
                #expect(sink.count == (3 << 20) + 5)
                #expect(sink.hasher.finalize() == file.digest)
                #expect(sink.largest <= 1 << 20, "the body streams in small pieces (largest \(sink.largest) bytes)")
                #expect(try await backend.s3.head("r.bin")?.sizeBytes == Int64((3 << 20) + 5))
                try await backend.delete("r.bin")
                try await backend.delete("r.bin")
                #expect(try await backend.s3.head("r.bin") == nil)
            }
        }
    }
}
