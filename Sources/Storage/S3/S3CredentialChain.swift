import Foundation
import Logging
import StackVaultCore

/// Where a set of S3 credentials came from; shown by `plan` and in logs, never with a secret.
public enum S3CredentialSource: Sendable, Equatable, CustomStringConvertible {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, each possibly as `<NAME>_FILE`.
    case environment(files: Bool)
    /// A profile of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`).
    case sharedFile(path: String, profile: String)
    /// The container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI`).
    case container(url: String)
    /// The EC2 instance metadata service (IMDSv2), with the instance role's name.
    case instanceMetadata(endpoint: String, role: String?)
    /// Given in code (tests, library users).
    case fixed

    public var description: String {
        switch self {
        case .environment(let files):
            files ? "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, read from their _FILE files)"
                : "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        case .sharedFile(let path, let profile): "the shared credentials file \(path), profile '\(profile)'"
        case .container(let url): "the container credentials endpoint \(url)"
        case .instanceMetadata(let endpoint, let role):
            "the instance metadata service (IMDSv2) at \(endpoint)" + (role.map { ", role '\($0)'" } ?? "")
        case .fixed: "credentials given in code"
        }
    }
}

/// Finds S3 credentials in the order the AWS SDKs use ("Standardized credential providers" of the AWS SDKs and
/// Tools Reference Guide): the environment, the shared credentials file and profile, the container credentials
/// endpoint, the EC2 instance metadata service (IMDSv2). Each `resolve()` reads them anew, so rotated files and
/// refreshed role credentials are picked up.
///
/// Holds the environment; printing or dumping it never shows a value.
public struct S3CredentialChain: Sendable, CustomStringConvertible, CustomReflectable {
    let environment: [String: String]
    let fixed: S3Credentials?

    /// IMDS's documented link-local address, and the ECS agent's for relative container URIs.
    static let defaultMetadataEndpoint = "http://169.254.169.254"
    static let containerHost = "http://169.254.170.2"

    public init(environment: [String: String]) {
        self.environment = environment.filter { $0.key.hasPrefix("AWS_") || $0.key == "HOME" }
        self.fixed = nil
    }

    public init(fixed credentials: S3Credentials) {
        self.environment = [:]
        self.fixed = credentials
    }

    public var description: String { "S3 credential chain (\(expectedSource))" }
    public var customMirror: Mirror { Mirror(self, children: ["source": "\(expectedSource)"]) }

    func value(_ name: String) -> String? {
        environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The source `resolve()` will use first, judged from the environment alone (no network): for `plan`.
    public var expectedSource: S3CredentialSource {
        if fixed != nil { return .fixed }
        if value("AWS_ACCESS_KEY_ID") != nil || value("AWS_ACCESS_KEY_ID_FILE") != nil {
            return .environment(files: value("AWS_ACCESS_KEY_ID_FILE") != nil
                                    || value("AWS_SECRET_ACCESS_KEY_FILE") != nil)
        }
        if let (path, profile) = sharedFile(), FileManager.default.isReadableFile(atPath: path) {
            return .sharedFile(path: path, profile: profile)
        }
        if let url = containerURL() { return .container(url: url) }
        return .instanceMetadata(endpoint: metadataEndpoint, role: nil)
    }

    /// Credentials from the first source that has them.
    ///
    /// - Throws: `StackVaultError(.missingCredentials)` naming what was tried and what to set; errors of a source
    ///   that is configured but broken (a `_FILE` that cannot be read, a container endpoint that fails) name it.
    public func resolve() async throws -> (S3Credentials, S3CredentialSource) {
        if let fixed { return (fixed, .fixed) }
        if let credentials = try fromEnvironment() {
            return (credentials, .environment(files: value("AWS_ACCESS_KEY_ID_FILE") != nil
                                                  || value("AWS_SECRET_ACCESS_KEY_FILE") != nil))
        }
        if let (path, profile) = sharedFile(), let credentials = try fromSharedFile(path: path, profile: profile) {
            return (credentials, .sharedFile(path: path, profile: profile))
        }
        if let url = containerURL() {
            return (try await fromContainer(url: url), .container(url: url))
        }
        if value("AWS_EC2_METADATA_DISABLED")?.lowercased() != "true" {
            do {
                let (credentials, role) = try await fromInstanceMetadata()
                return (credentials, .instanceMetadata(endpoint: metadataEndpoint, role: role))
            } catch let error as StackVaultError where value("AWS_EC2_METADATA_SERVICE_ENDPOINT") != nil {
                throw error
            } catch {
                // No metadata service here: fall through to the advice below.
            }
        }
        throw StackVaultError(.missingCredentials,
            "no S3 credentials found: set AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID_FILE) and AWS_SECRET_ACCESS_KEY "
                + "(or AWS_SECRET_ACCESS_KEY_FILE), or AWS_PROFILE with a shared credentials file, or run with a "
                + "container or instance role (tried: environment, shared credentials file, container endpoint, "
                + "instance metadata)")
    }

    // MARK: - environment

    /// The keys in the environment (each possibly from its `_FILE`); nil when neither is set. A half-set pair is an
    /// error naming what is missing (and `target`, when given).
    func fromEnvironment(target: String? = nil) throws -> S3Credentials? {
        let accessKeyID = try S3Configuration.secret("AWS_ACCESS_KEY_ID", environment: environment)
        let secretAccessKey = try S3Configuration.secret("AWS_SECRET_ACCESS_KEY", environment: environment)
        let subject = target.map { "the S3 target \($0)" } ?? "S3"
        switch (accessKeyID, secretAccessKey) {
        case (nil, nil):
            return nil
        case (nil, _?):
            throw StackVaultError(.missingCredentials,
                "\(subject) needs credentials: set AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID_FILE) and "
                    + "AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE)")
        case (let id?, nil):
            throw StackVaultError(.missingCredentials,
                "\(subject) needs AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE) to go with "
                    + "AWS_ACCESS_KEY_ID \(id)")
        case (let id?, let secret?):
            return S3Credentials(accessKeyID: id, secretAccessKey: secret,
                                 sessionToken: try S3Configuration.secret("AWS_SESSION_TOKEN", environment: environment))
        }
    }

    // MARK: - shared credentials file

    /// The file and profile to read; nil when no home directory and no explicit file.
    func sharedFile() -> (path: String, profile: String)? {
        let profile = value("AWS_PROFILE") ?? "default"
        if let path = value("AWS_SHARED_CREDENTIALS_FILE") { return (path, profile) }
        guard let home = value("HOME") ?? ProcessInfo.processInfo.environment["HOME"] else { return nil }
        return (home + "/.aws/credentials", profile)
    }

    /// The profile's keys; nil when the file does not exist (unless a profile was asked for by name).
    func fromSharedFile(path: String, profile: String) throws -> S3Credentials? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            if value("AWS_PROFILE") != nil {
                throw StackVaultError(.missingCredentials,
                    "AWS_PROFILE='\(profile)' is set, but the shared credentials file \(path) cannot be read "
                        + "(set AWS_SHARED_CREDENTIALS_FILE to its path)")
            }
            return nil
        }
        let sections = Self.parseINI(text)
        guard let section = sections[profile] else {
            if value("AWS_PROFILE") != nil {
                throw StackVaultError(.missingCredentials,
                    "the shared credentials file \(path) has no profile [\(profile)] (AWS_PROFILE)")
            }
            return nil
        }
        guard let id = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] else {
            throw StackVaultError(.missingCredentials,
                "profile [\(profile)] of \(path) needs aws_access_key_id and aws_secret_access_key")
        }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: section["aws_session_token"])
    }

    /// `[section]` headers and `key = value` lines; `#` and `;` start comments. Section names are trimmed and a
    /// leading `profile ` (the config file's spelling) is dropped.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = String(name.dropFirst("profile ".count)) }
                current = name.trimmingCharacters(in: .whitespaces)
                sections[current!, default: [:]] = sections[current!] ?? [:]
            } else if let current, let equals = line.firstIndex(of: "=") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
                let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                sections[current]?[key] = value
            }
        }
        return sections
    }

    // MARK: - container endpoint

    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on the ECS agent's address, else `_FULL_URI`.
    func containerURL() -> String? {
        if let relative = value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return Self.containerHost + (relative.hasPrefix("/") ? relative : "/" + relative)
        }
        return value("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    }

    func fromContainer(url: String) async throws -> S3Credentials {
        var headers: [(name: String, value: String)] = [("accept", "application/json")]
        let token: String?
        if let path = value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw StackVaultError(.missingCredentials,
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='\(path)' cannot be read")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = value("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        }
        if let token { headers.append(("authorization", token)) }
        let response = try await fetch(HTTPRequest(method: "GET", url: url, headers: headers, timeoutSeconds: 5,
                                                   connectTimeoutSeconds: 2), source: "the container credentials "
                                                   + "endpoint \(url) (AWS_CONTAINER_CREDENTIALS_*_URI)")
        return try Self.decodeCredentials(response.body, source: "the container credentials endpoint \(url)")
    }

    // MARK: - instance metadata (IMDSv2)

    var metadataEndpoint: String {
        var endpoint = value("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? Self.defaultMetadataEndpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        return endpoint
    }

    /// PUT /latest/api/token for a session token, then the role name and its credentials under
    /// /latest/meta-data/iam/security-credentials/ (the IMDSv2 flow of the EC2 user guide).
    func fromInstanceMetadata() async throws -> (S3Credentials, String) {
        let base = metadataEndpoint
        let source = "the instance metadata service at \(base)"
        let tokenResponse = try await fetch(HTTPRequest(
            method: "PUT", url: base + "/latest/api/token",
            headers: [("x-aws-ec2-metadata-token-ttl-seconds", "21600")], timeoutSeconds: 2, connectTimeoutSeconds: 1),
            source: source)
        let token = tokenResponse.bodyText.trimmingCharacters(in: .whitespacesAndNewlines)
        let tokenHeader = [("x-aws-ec2-metadata-token", token)]
        let roles = try await fetch(HTTPRequest(
            method: "GET", url: base + "/latest/meta-data/iam/security-credentials/", headers: tokenHeader,
            timeoutSeconds: 2, connectTimeoutSeconds: 1), source: source)
        guard let role = roles.bodyText.split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw StackVaultError(.missingCredentials, "\(source) lists no instance role: attach a role to the "
                + "instance, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        let credentials = try await fetch(HTTPRequest(
            method: "GET", url: base + "/latest/meta-data/iam/security-credentials/" + role, headers: tokenHeader,
            timeoutSeconds: 2, connectTimeoutSeconds: 1), source: source)
        return (try Self.decodeCredentials(credentials.body, source: source), role)
    }

    // MARK: - shared

    func fetch(_ request: HTTPRequest, source: String) async throws -> HTTPResponse {
        let response: HTTPResponse
        do {
            response = try await HTTPClient().send(request)
        } catch {
            throw StackVaultError(.missingCredentials, "could not get credentials from \(source): \(error)",
                                  isTransient: true)
        }
        guard (200..<300).contains(response.status) else {
            throw StackVaultError(.missingCredentials,
                "could not get credentials from \(source): HTTP \(response.status)",
                isTransient: response.status >= 500)
        }
        return response
    }

    /// The JSON both endpoints serve: `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` (ISO 8601).
    static func decodeCredentials(_ body: [UInt8], source: String) throws -> S3Credentials {
        struct Document: Decodable {
            var AccessKeyId: String?
            var SecretAccessKey: String?
            var Token: String?
            var Expiration: String?
        }
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(body)),
              let id = document.AccessKeyId, let secret = document.SecretAccessKey
        else {
            throw StackVaultError(.missingCredentials,
                "\(source) answered without AccessKeyId and SecretAccessKey in its JSON")
        }
        var credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: document.Token)
        credentials.expiration = document.Expiration.flatMap { S3DateParser().parse($0) }
        return credentials
    }
}

/// The credentials an S3 backend signs with: resolved from the chain at the start of every operation (so rotated
/// files are read), kept while they are valid, refreshed 5 minutes before they expire (also between the parts of
/// a long upload), and re-resolved once when the server refuses them.
actor S3CredentialProvider {
    let chain: S3CredentialChain
    let logger: Logger
    private var cached: (credentials: S3Credentials, source: S3CredentialSource)?
    private var stale = true

    /// Temporary credentials are renewed when they expire within this window (the SDKs' default).
    static let refreshWindow: TimeInterval = 300

    init(chain: S3CredentialChain, logger: Logger) {
        self.chain = chain
        self.logger = logger
    }

    /// The source of the credentials in use, once resolved.
    var source: S3CredentialSource? { cached?.source }

    /// Marks the credentials for re-reading at the next request: called when an operation (a run) starts.
    func beginOperation() {
        if let cached, cached.credentials.expiration != nil {
            return  // temporary credentials are kept until they near expiry
        }
        stale = true
    }

    /// Valid credentials, resolving them when needed.
    func current() async throws -> S3Credentials {
        if !stale, let cached {
            guard let expiration = cached.credentials.expiration,
                  expiration.timeIntervalSinceNow < Self.refreshWindow
            else { return cached.credentials }
            logger.info("S3: credentials from \(cached.source) expire at \(expiration): refreshing")
        }
        return try await resolve()
    }

    /// After the server refused `used`: resolves again and returns the new credentials, or nil when they did not
    /// change (then retrying cannot help).
    func refresh(after used: S3Credentials) async throws -> S3Credentials? {
        let fresh = try await resolve()
        guard fresh != used else { return nil }
        let message = "S3: the server refused access key \(used.accessKeyID); retrying with the credentials now in "
            + "\(cached?.source.description ?? "the environment") (access key \(fresh.accessKeyID))"
        logger.info("\(message)")
        return fresh
    }

    private func resolve() async throws -> S3Credentials {
        let (credentials, source) = try await chain.resolve()
        if cached?.source != source || cached?.credentials.accessKeyID != credentials.accessKeyID {
            logger.debug("S3: using credentials from \(source) (access key \(credentials.accessKeyID))")
        }
        cached = (credentials, source)
        stale = false
        return credentials
    }
}
