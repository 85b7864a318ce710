import Foundation
import StackVaultCore
import Testing

@testable import StackVaultStorage

@Suite("S3 configuration from the URL and the environment")
struct S3ConfigurationTests {
    static let secret = "s3cr3t-Value/+never-shown"
    static let keys = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": secret]

    static func parse(_ url: String, _ extra: [String: String] = [:]) throws -> S3Configuration {
        try S3Configuration.parse(url: url, environment: keys.merging(extra) { $1 })
    }

    /// The error `parse` throws, as text (failing the test when it does not throw).
    static func failure(
        _ url: String, _ environment: [String: String], sourceLocation: SourceLocation = #_sourceLocation
    ) -> String {
        do {
            _ = try S3Configuration.parse(url: url, environment: environment)
            Issue.record("expected an error", sourceLocation: sourceLocation)
            return ""
        } catch {
            return "\(error)"
        }
    }

    // MARK: - the target URL

    @Test(arguments: [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("S3://bucket/backups", "bucket", "backups/"),
        ("s3://bucket/a/b/", "bucket", "a/b/"),
        ("s3://my.bucket-1/My Backups/ünïcødé 日本", "my.bucket-1", "My Backups/ünïcødé 日本/"),
        ("s3://bucket/100%25+x=y", "bucket", "100%25+x=y/"),
    ])
    func bucketAndPrefix(url: String, bucket: String, prefix: String) throws {
        let configuration = try Self.parse(url)
        #expect(configuration.bucket == bucket)
        #expect(configuration.prefix == prefix)
        #expect(configuration.key(for: "x.tar.zst") == prefix + "x.tar.zst")
    }

    @Test(arguments: [
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("s3://Bad Bucket/x", "is not a bucket name"),
        ("s3://key:secret@bucket/x", "must not contain credentials"),
        ("s3://bucket/a/../b", "'.' or '..'"),
        ("gs://bucket/x", "is not an s3:// URL"),
    ])
    func malformedURLsNameTheVariable(url: String, problem: String) {
        let message = Self.failure(url, Self.keys.merging(["S3_BUCKET_URL": url]) { $1 })
        #expect(message.contains("S3_BUCKET_URL"))
        #expect(message.contains(problem))
        #expect(!message.contains("secret@"), "a password in the URL is redacted")
    }

    @Test func aTargetFromBackupTargetIsNamedSo() {
        let message = Self.failure("s3://", Self.keys.merging(["BACKUP_TARGET": "s3://"]) { $1 })
        #expect(message.contains("BACKUP_TARGET"))
    }

    // MARK: - credentials

    @Test func missingAccessKeyNamesTheVariables() {
        let message = Self.failure("s3://bucket/p", ["AWS_SECRET_ACCESS_KEY": Self.secret])
        #expect(message.contains("AWS_ACCESS_KEY_ID"))
        #expect(message.contains("s3://bucket/p"))
        #expect(!message.contains(Self.secret))
    }

    @Test func missingSecretNamesTheVariable() {
        let message = Self.failure("s3://bucket", ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"])
        #expect(message.contains("AWS_SECRET_ACCESS_KEY"))
        #expect(message.contains("AWS_SECRET_ACCESS_KEY_FILE"))
    }

    @Test func secretsAreReadFromFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("s3-conf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let secretFile = directory.appendingPathComponent("secret")
        let tokenFile = directory.appendingPathComponent("token")
        try "\(Self.secret)\n".write(to: secretFile, atomically: true, encoding: .utf8)
        try "session-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let configuration = try S3Configuration.parse(url: "s3://bucket", environment: [
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY_FILE": secretFile.path,
            "AWS_SESSION_TOKEN_FILE": tokenFile.path,
        ])
        #expect(configuration.credentials?.secretAccessKey == Self.secret)
        #expect(configuration.credentials?.sessionToken == "session-token")

        let unreadable = Self.failure("s3://bucket", [
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY_FILE": directory.path + "/missing",
        ])
        #expect(unreadable.contains("AWS_SECRET_ACCESS_KEY_FILE"))
        #expect(unreadable.contains("/missing"))

        let both = Self.failure("s3://bucket",
                                Self.keys.merging(["AWS_SECRET_ACCESS_KEY_FILE": secretFile.path]) { $1 })
        #expect(both.contains("both AWS_SECRET_ACCESS_KEY and AWS_SECRET_ACCESS_KEY_FILE"))
        #expect(!both.contains(Self.secret))

        try "\n".write(to: secretFile, atomically: true, encoding: .utf8)
        let empty = Self.failure("s3://bucket", ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                                                 "AWS_SECRET_ACCESS_KEY_FILE": secretFile.path])
        #expect(empty.contains("AWS_SECRET_ACCESS_KEY_FILE") && empty.contains("is empty"))
    }

    @Test func secretsNeverShow() throws {
        let configuration = try Self.parse("s3://bucket/p", ["AWS_SESSION_TOKEN": "the-session-token",
                                                             "S3_ENDPOINT_URL": "http://127.0.0.1:9000"])
        var dumped = ""
        dump(configuration, to: &dumped)
        let texts = [configuration.description, "\(configuration.credentials!)",
                     String(reflecting: configuration.credentials!), dumped,
                     S3Backend(configuration: configuration).description]
        for text in texts {
            #expect(!text.contains(Self.secret), "\(text)")
            #expect(!text.contains("the-session-token"), "\(text)")
        }
        #expect(configuration.description == "s3://bucket/p (endpoint http://127.0.0.1:9000)")
        #expect(try Self.parse("s3://bucket").description == "s3://bucket (AWS region us-east-1)")
    }

    // MARK: - region and endpoint

    @Test func regionPrecedence() throws {
        #expect(try Self.parse("s3://b").region == "us-east-1")
        #expect(try Self.parse("s3://b", ["AWS_REGION": "eu-west-1"]).region == "eu-west-1")
        #expect(try Self.parse("s3://b", ["AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-central-1"]).region
            == "eu-central-1")
        #expect(Self.failure("s3://b", Self.keys.merging(["AWS_REGION": "eu west"]) { $1 }).contains("AWS_REGION"))
    }

    @Test func endpointPrecedence() throws {
        let all = ["S3_ENDPOINT_URL": "http://one:9000", "AWS_ENDPOINT_URL_S3": "http://two:9000",
                   "AWS_ENDPOINT_URL": "http://three:9000"]
        #expect(try Self.parse("s3://b", all).endpoint.host == "one")
        #expect(try Self.parse("s3://b", all.filter { $0.key != "S3_ENDPOINT_URL" }).endpoint.host == "two")
        #expect(try Self.parse("s3://b", ["AWS_ENDPOINT_URL": "http://three:9000"]).endpoint.host == "three")
        let aws = try Self.parse("s3://b", ["AWS_DEFAULT_REGION": "eu-west-1"])
        #expect(aws.endpoint == S3Endpoint(scheme: "https", host: "s3.eu-west-1.amazonaws.com"))
        #expect(!aws.isCustomEndpoint)
    }

    @Test(arguments: ["minio:9000", "ftp://minio", "http://", "http://user:pw@minio:9000", "http://minio?x=1"])
    func badEndpointsNameTheVariable(endpoint: String) {
        let message = Self.failure("s3://b", Self.keys.merging(["AWS_ENDPOINT_URL_S3": endpoint]) { $1 })
        #expect(message.contains("AWS_ENDPOINT_URL_S3"), "\(message)")
        #expect(!message.contains(":pw@"))
    }

    @Test func addressingStyle() throws {
        let custom = ["S3_ENDPOINT_URL": "https://s3.example.com"]
        #expect(try Self.parse("s3://b", custom).usesPathStyle)
        #expect(try !Self.parse("s3://b", custom.merging(["S3_FORCE_PATH_STYLE": "false"]) { $1 }).usesPathStyle)
        #expect(try !Self.parse("s3://b").usesPathStyle)
        #expect(try Self.parse("s3://b", ["S3_FORCE_PATH_STYLE": "true"]).usesPathStyle)
        #expect(try Self.parse("s3://my.dotted.bucket").usesPathStyle, "dots break the wildcard certificate")
        #expect(Self.failure("s3://b", Self.keys.merging(["S3_FORCE_PATH_STYLE": "maybe"]) { $1 })
            .contains("S3_FORCE_PATH_STYLE"))
        #expect(Self.failure("s3://Under_score", Self.keys.merging(["S3_FORCE_PATH_STYLE": "no"]) { $1 })
            .contains("S3_FORCE_PATH_STYLE"))
    }

    @Test func requestLocations() throws {
        let pathStyle = S3Client(configuration: try Self.parse("s3://bucket/my backups",
                                                               ["S3_ENDPOINT_URL": "http://127.0.0.1:9000/"]),
                                 logger: .init(label: "test"))
        #expect(pathStyle.location(key: "my backups/a+b ü.tar") == .init(
            url: "http://127.0.0.1:9000/bucket/my%20backups/a%2Bb%20%C3%BC.tar", host: "127.0.0.1:9000",
            path: "/bucket/my%20backups/a%2Bb%20%C3%BC.tar"))
        #expect(pathStyle.location(key: nil, query: [("prefix", "my backups/"), ("list-type", "2")]).url
            == "http://127.0.0.1:9000/bucket?list-type=2&prefix=my%20backups%2F")

        let virtual = S3Client(configuration: try Self.parse("s3://bucket/p", ["AWS_DEFAULT_REGION": "eu-west-1"]),
                               logger: .init(label: "test"))
        #expect(virtual.location(key: "p/x") == .init(url: "https://bucket.s3.eu-west-1.amazonaws.com/p/x",
                                                      host: "bucket.s3.eu-west-1.amazonaws.com", path: "/p/x"))
        #expect(virtual.location(key: nil).path == "/")

        let proxied = try Self.parse("s3://b", ["S3_ENDPOINT_URL": "https://[::1]:8443/s3/"])
        let behindProxy = S3Client(configuration: proxied, logger: .init(label: "test"))
        #expect(behindProxy.location(key: "k") == .init(url: "https://[::1]:8443/s3/b/k", host: "[::1]:8443",
                                                         path: "/s3/b/k"))
        let defaultPort = S3Client(configuration: try Self.parse("s3://b", ["S3_ENDPOINT_URL": "https://h:443"]),
                                   logger: .init(label: "test"))
        #expect(defaultPort.location(key: "k").host == "h")
    }

    @Test func signedRequestsCarryHostDateAndHash() throws {
        let client = S3Client(configuration: try Self.parse("s3://bucket", ["S3_ENDPOINT_URL": "http://h:9000"]),
                              logger: .init(label: "test"))
        let request = client.request("PUT", key: "k", headers: [("content-md5", "md5==")], payloadHash: "abc")
        let names = request.headers.map(\.name)
        #expect(names == ["host", "content-md5", "x-amz-date", "x-amz-content-sha256", "authorization"])
        let authorization = request.headers.last?.value ?? ""
        #expect(authorization.contains("SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date,"))
        #expect(!authorization.contains(Self.secret))
        #expect(request.url == "http://h:9000/bucket/k")
    }

    // MARK: - tuning

    @Test func uploadTuning() throws {
        let defaults = try Self.parse("s3://b")
        #expect(defaults.multipartThreshold == 64 << 20)
        #expect(defaults.partSize == 8 << 20)
        #expect(defaults.concurrency == 4)
        #expect(!defaults.sendsContentMD5)
        let tuned = try Self.parse("s3://b", ["S3_MULTIPART_THRESHOLD": "16MiB", "S3_PART_SIZE": "5M",
                                              "S3_UPLOAD_CONCURRENCY": "8", "S3_MAX_ATTEMPTS": "2",
                                              "S3_CONTENT_MD5": "yes"])
        #expect(tuned.multipartThreshold == 16 << 20)
        #expect(tuned.partSize == 5 << 20)
        #expect(tuned.concurrency == 8)
        #expect(tuned.retry.maxAttempts == 2)
        #expect(tuned.sendsContentMD5)
        #expect(try S3Configuration.size("64MB", variable: "X") == 64_000_000)
        #expect(try S3Configuration.size("1.5GiB", variable: "X") == 3 << 29)
        #expect(try S3Configuration.size("5242880", variable: "X") == 5_242_880)
    }

    @Test(arguments: [
        ("S3_PART_SIZE", "1MiB"), ("S3_PART_SIZE", "lots"), ("S3_MULTIPART_THRESHOLD", "6GiB"),
        ("S3_UPLOAD_CONCURRENCY", "0"), ("S3_UPLOAD_CONCURRENCY", "many"), ("S3_MAX_ATTEMPTS", "0"),
        ("S3_CA_BUNDLE", "/nonexistent/ca.pem"), ("S3_CONTENT_MD5", "sometimes"),
    ])
    func badTuningNamesTheVariable(variable: String, value: String) {
        let message = Self.failure("s3://b", Self.keys.merging([variable: value]) { $1 })
        #expect(message.contains(variable), "\(message)")
    }

    @Test func theRegistryBuildsTheS3Backend() throws {
        let registry = try BuiltinStorageBackends.registry()
        #expect(registry.schemes.contains("s3"))
        let backend = try registry.backend(for: "s3://bucket/stack backups", environment: Self.keys.merging(
            ["S3_ENDPOINT_URL": "http://127.0.0.1:9000"]) { $1 })
        #expect(backend.description == "s3://bucket/stack backups (endpoint http://127.0.0.1:9000)")
        #expect(backend.localDirectory == nil)
        #expect(!backend.capabilities.isLocalDirectory)
        #expect(backend.capabilities.maximumObjectSize == 5 << 40)
    }
}

@Suite("S3 checksums, part limits, storage class, encryption and credential sources")
struct S3ProviderSettingsTests {
    static func parse(_ url: String = "s3://b", _ extra: [String: String] = [:]) throws -> S3Configuration {
        try S3ConfigurationTests.parse(url, extra)
    }

    @Test func checksumsAreSHA256ByDefault() throws {
        #expect(try Self.parse().checksum == .sha256)
        #expect(try Self.parse("s3://b", ["S3_CHECKSUM": "MD5"]).checksum == .md5)
        #expect(try Self.parse("s3://b", ["S3_CHECKSUM": "none"]).checksum == .none)
        #expect(try Self.parse("s3://b", ["S3_CHECKSUM": "md5"]).wantsMD5)
        #expect(try Self.parse("s3://b", ["S3_CONTENT_MD5": "true"]).wantsMD5)
        #expect(!(try Self.parse().wantsMD5))
        let message = S3ConfigurationTests.failure("s3://b", S3ConfigurationTests.keys.merging(
            ["S3_CHECKSUM": "crc32"]) { $1 })
        #expect(message.contains("S3_CHECKSUM") && message.contains("sha256"))
    }

    @Test func checksumHeadersPerMode() {
        let digests = S3PayloadDigests(sha256Hex: "ab", sha256Base64: "qw==", md5Base64: "md5==")
        #expect(digests.headers(.sha256).map(\.name)
            == ["x-amz-sdk-checksum-algorithm", "x-amz-checksum-sha256", "content-md5"])
        #expect(digests.headers(.none).map(\.name) == ["content-md5"])
        let plain = S3PayloadDigests(sha256Hex: "ab", sha256Base64: "qw==", md5Base64: nil)
        #expect(plain.headers(.sha256).map(\.value) == ["SHA256", "qw=="])
        #expect(plain.headers(.none).isEmpty)
    }

    @Test func completionListsPartChecksums() {
        let document = S3Backend.completionDocument([.init(number: 1, etag: "\"a\"", checksumSHA256: "c2hh")])
        #expect(String(decoding: document, as: UTF8.self).contains(
            "<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag><ChecksumSHA256>c2hh</ChecksumSHA256></Part>"))
    }

    @Test func aMissingChecksumAnswerNamesTheSetting() throws {
        let configuration = S3RetryTests.configuration
        func text(_ code: String, _ message: String) -> String {
            let response = S3ErrorResponse(status: 400, headers: [:],
                                           body: S3RetryTests.errorDocument(code, message))
            return "\(response.error(operation: "uploading x", configuration: configuration))"
        }
        let objectLock = text("InvalidRequest", "Content-MD5 OR x-amz-checksum- HTTP header is required for Put "
            + "Object requests with Object Lock parameters")
        #expect(objectLock.contains("S3_CHECKSUM") && objectLock.contains("S3_CONTENT_MD5"), "\(objectLock)")
        #expect(text("MissingContentMD5", "Missing required header for this request: Content-MD5")
            .contains("S3_CHECKSUM"))
        let rejected = text("InvalidArgument", "x-amz-checksum-sha256 is not supported")
        #expect(rejected.contains("S3_CHECKSUM=none"), "\(rejected)")
        #expect(!text("InvalidArgument", "something else").contains("S3_CHECKSUM"))

        // Which answers make the backend fall back to Content-MD5 (when S3_CHECKSUM is not set).
        func response(_ code: String, _ message: String) -> S3ErrorResponse {
            S3ErrorResponse(status: 400, headers: [:], body: S3RetryTests.errorDocument(code, message))
        }
        let b2 = response("InvalidArgument", "Unsupported header 'x-amz-checksum-sha256' received for this API call.")
        #expect(b2.rejectsChecksumHeader && !b2.requiresChecksum)
        let moto = response("MissingUploadObjectWithObjectLockHeaders", "Content-MD5 or x-amz-sdk-checksum-algorithm "
            + "header required to upload an object with a retention period configured using Object Lock")
        #expect(moto.requiresChecksum && !moto.rejectsChecksumHeader)
        #expect(!response("AccessDenied", "Access Denied").rejectsChecksumHeader)
        #expect(!(try Self.parse()).checksumIsExplicit)
        #expect(try Self.parse("s3://b", ["S3_CHECKSUM": "sha256"]).checksumIsExplicit)
    }

    @Test func partLimits() throws {
        #expect(try Self.parse().maxParts == 10_000)
        #expect(try Self.parse("s3://b", ["S3_ENDPOINT_URL": "https://s3.fr-par.scw.cloud"]).maxParts == 1_000)
        #expect(try Self.parse("s3://b", ["S3_ENDPOINT_URL": "https://s3.fr-par.scw.cloud", "S3_MAX_PARTS": "500"])
            .maxParts == 500)
        #expect(S3ConfigurationTests.failure("s3://b", S3ConfigurationTests.keys.merging(["S3_MAX_PARTS": "0"]) { $1 })
            .contains("S3_MAX_PARTS"))

        // Scaleway: a 10 GiB archive at the default 8 MiB parts would need 1,280 parts; the size grows to fit.
        let scaleway = try S3PartPlan(fileSize: 10 << 30, preferredPartSize: 8 << 20, maxParts: 1_000)
        #expect(scaleway.partCount <= 1_000 && scaleway.partSize == 11 << 20)
        let twenty = try S3PartPlan(fileSize: 200 << 20, preferredPartSize: 8 << 20, maxParts: 20)
        #expect(twenty.partCount == 20 && twenty.partSize == 10 << 20)
        let tooLarge = #expect(throws: StackVaultError.self) {
            try S3PartPlan(fileSize: (20 * (5 << 30)) + 1, maxParts: 20)
        }
        #expect(tooLarge?.message.contains("S3_MAX_PARTS") == true)
        #expect(tooLarge?.message.contains("nothing was uploaded") == true)
        #expect(S3Backend(configuration: try Self.parse("s3://b", ["S3_MAX_PARTS": "20"])).capabilities
            .maximumObjectSize == 100 << 30)
    }

    @Test func storageClassAndEncryptionHeaders() throws {
        #expect(try Self.parse().objectHeaders.isEmpty)
        let tuned = try Self.parse("s3://b", ["S3_STORAGE_CLASS": "STANDARD_IA", "S3_SSE": "aws:kms",
                                              "S3_SSE_KMS_KEY_ID": "arn:aws:kms:eu-west-1:1:key/k"])
        #expect(tuned.objectHeaders.map(\.name) == ["x-amz-storage-class", "x-amz-server-side-encryption",
                                                    "x-amz-server-side-encryption-aws-kms-key-id"])
        #expect(tuned.objectHeaders.map(\.value) == ["STANDARD_IA", "aws:kms", "arn:aws:kms:eu-west-1:1:key/k"])
        #expect(try Self.parse("s3://b", ["S3_SSE": "AES256"]).objectHeaders.map(\.value) == ["AES256"])
        for (name, value) in [("S3_SSE", "des"), ("S3_STORAGE_CLASS", "cold storage"), ("S3_SSE_KMS_KEY_ID", "k")] {
            let message = S3ConfigurationTests.failure("s3://b", S3ConfigurationTests.keys.merging([name: value]) { $1 })
            #expect(message.contains(name), "\(message)")
        }
    }

    @Test func noKeysMeansTheChainLooksFurther() throws {
        let configuration = try S3Configuration.parse(url: "s3://b", environment: [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds",
        ])
        #expect(configuration.credentials == nil)
        #expect(configuration.credentialChain.expectedSource == .container(url: "http://127.0.0.1:1/creds"))
        #expect(try S3ConfigurationTests.parse("s3://b").credentialChain.expectedSource
            == .environment(files: false))
    }

    @Test func sharedCredentialsFileAndProfile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("s3-shared-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("credentials").path
        try """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = default-secret
            # a comment
            [nightly]
            aws_access_key_id=AKIDNIGHTLY
            aws_secret_access_key=nightly-secret
            aws_session_token = nightly-token
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let chain = S3CredentialChain(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nightly",
                                                    "AWS_EC2_METADATA_DISABLED": "true"])
        let (credentials, source) = try await chain.resolve()
        #expect(credentials == S3Credentials(accessKeyID: "AKIDNIGHTLY", secretAccessKey: "nightly-secret",
                                             sessionToken: "nightly-token"))
        #expect(source == .sharedFile(path: file, profile: "nightly"))
        #expect(!"\(source)".contains("secret") && !"\(chain)".contains("nightly-secret"))
        let defaults = try await S3CredentialChain(environment: ["AWS_SHARED_CREDENTIALS_FILE": file]).resolve()
        #expect(defaults.0.accessKeyID == "AKIDDEFAULT")
        await #expect(throws: StackVaultError.self) {
            _ = try await S3CredentialChain(environment: ["AWS_SHARED_CREDENTIALS_FILE": file,
                                                          "AWS_PROFILE": "missing"]).resolve()
        }
    }

    @Test func keyFilesAreReadAgainAtEveryResolve() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("s3-rotate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let id = directory.appendingPathComponent("id").path
        let secret = directory.appendingPathComponent("secret").path
        try "AKIDOLD".write(toFile: id, atomically: true, encoding: .utf8)
        try "old-secret".write(toFile: secret, atomically: true, encoding: .utf8)
        let chain = S3CredentialChain(environment: ["AWS_ACCESS_KEY_ID_FILE": id,
                                                    "AWS_SECRET_ACCESS_KEY_FILE": secret])
        #expect(chain.expectedSource == .environment(files: true))
        #expect(try await chain.resolve().0.accessKeyID == "AKIDOLD")
        try "AKIDNEW".write(toFile: id, atomically: true, encoding: .utf8)
        #expect(try await chain.resolve().0.accessKeyID == "AKIDNEW")
    }

    @Test func noCredentialsAnywhereSaysWhatToSet() async throws {
        let chain = S3CredentialChain(environment: ["AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
                                                    "AWS_EC2_METADATA_DISABLED": "true"])
        let error = await #expect(throws: StackVaultError.self) { _ = try await chain.resolve() }
        #expect(error?.message.contains("AWS_ACCESS_KEY_ID") == true)
        #expect(error?.message.contains("AWS_PROFILE") == true)
    }

    @Test func containerCredentialsJSONIsDecoded() throws {
        let json = """
            {"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-02T03:04:05Z"}
            """
        let credentials = try S3CredentialChain.decodeCredentials(Array(json.utf8), source: "test")
        #expect(credentials.accessKeyID == "ASIAEXAMPLE" && credentials.sessionToken == "t")
        #expect(credentials.expiration == ISO8601DateFormatter().date(from: "2030-01-02T03:04:05Z"))
        #expect(throws: StackVaultError.self) {
            try S3CredentialChain.decodeCredentials(Array("{}".utf8), source: "test")
        }
    }
}

extension S3ProviderSettingsTests {
    @Test func planShowsTheCredentialSourceNeverTheSecret() throws {
        let registry = try BuiltinStorageBackends.registry()
        let backend = try registry.backend(for: "s3://bucket/p", environment: S3ConfigurationTests.keys)
        #expect(backend.planDescription.hasPrefix(backend.description))
        #expect(backend.planDescription.contains("credentials from the environment (AWS_ACCESS_KEY_ID"))
        #expect(!backend.planDescription.contains(S3ConfigurationTests.secret))
        let role = try registry.backend(for: "s3://bucket/p", environment: [
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1",
        ])
        #expect(role.planDescription.contains("instance metadata service (IMDSv2) at http://127.0.0.1:1"))
        #expect(try registry.backend(for: "/srv/b", environment: [:]).planDescription == "file:///srv/b")
    }
}
