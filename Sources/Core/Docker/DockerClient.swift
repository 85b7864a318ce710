public import Foundation
import Synchronization

/// The Docker Engine API over libcurl, on a unix socket or TCP.
///
/// The API version is negotiated on first use: the daemon's `/_ping` announces its version, and the client
/// speaks that version, capped at the newest one it was written against. Docker 20.10 (API 1.41) is the oldest
/// supported daemon.
public final class DockerClient: DockerEngine {
    public static let minimumAPIVersion = (1, 41)
    public static let maximumAPIVersion = (1, 47)

    public let endpoint: DockerEndpoint
    let http = HTTPClient()
    private let negotiated = Mutex<String?>(nil)
    /// `STACKVAULT_HELPER_IMAGE`, when set (see `HelperImage`).
    public let helperImageOverride: String?
    /// The helper image once resolved (see `helperImage()`).
    let resolvedHelperImage = Mutex<HelperImage?>(nil)
    /// True once the daemon has answered a request: a later failure to connect means it went away (stopped,
    /// restarting, crashed), not that it was never reachable.
    private let hasAnswered = Mutex(false)

    public init(endpoint: DockerEndpoint, helperImageOverride: String? = nil) {
        self.endpoint = endpoint
        let trimmed = helperImageOverride?.trimmingCharacters(in: .whitespaces) ?? ""
        self.helperImageOverride = trimmed.isEmpty ? nil : trimmed
    }

    /// A client for `DOCKER_HOST` from the environment (default socket when unset), with the helper image
    /// `STACKVAULT_HELPER_IMAGE` names, if any.
    public convenience init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        self.init(endpoint: try DockerEndpoint(dockerHost: environment["DOCKER_HOST"]),
                  helperImageOverride: environment[HelperImage.environmentKey])
    }

    public var endpointDescription: String { endpoint.description }

    // MARK: - Version

    /// The API version in use (`1.41`), asking the daemon on first use.
    public func apiVersion() async throws -> String {
        if let version = negotiated.withLock({ $0 }) { return version }
        let response = try await raw("GET", "/_ping", timeout: 30)
        guard response.status == 200 else {
            throw daemonError(response, doing: "ping the daemon")
        }
        let announced = response.head.headers["api-version"] ?? "1.41"
        let version = try Self.negotiate(announced: announced)
        negotiated.withLock { $0 = version }
        return version
    }

    /// Picks the version to speak given the daemon's.
    static func negotiate(announced: String) throws -> String {
        let parts = announced.split(separator: ".").compactMap { Int($0) }
        guard parts.count == 2 else { return "1.41" }
        let server = (parts[0], parts[1])
        if server < minimumAPIVersion {
            throw StackVaultError(.dockerAPI,
                "the Docker daemon speaks API \(announced); StackVault needs 1.41 (Docker 20.10) or newer")
        }
        let chosen = server > maximumAPIVersion ? maximumAPIVersion : server
        return "\(chosen.0).\(chosen.1)"
    }

    /// The daemon's version information (`GET /version`): engine version and API version.
    public func version() async throws -> (engine: String, api: String) {
        let response = try await request("GET", "/version", timeout: 30)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        return (object["Version"] as? String ?? "?", object["ApiVersion"] as? String ?? "?")
    }

    /// The engine's own name (`GET /info` `Name`): the host name of the machine the daemon runs on.
    public func engineName() async throws -> String {
        let response = try await request("GET", "/info", timeout: 30)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        guard let name = object["Name"] as? String, !name.isEmpty else {
            throw StackVaultError(.dockerAPI, "the Docker daemon's GET /info gave no Name")
        }
        return name
    }

    // MARK: - Containers

    public func listContainers(labelFilters: [String]) async throws -> [ContainerSummary] {
        let filters = try JSONSerialization.data(withJSONObject: ["label": labelFilters])
        let query = "all=1&filters=" + percentEncode(String(decoding: filters, as: UTF8.self))
        let response = try await request("GET", "/containers/json?\(query)", timeout: 60)
        let rows = try JSONDecoder().decode([ContainerListRow].self, from: Data(response.body))
        return rows.map {
            ContainerSummary(
                id: $0.Id,
                name: ($0.Names?.first ?? $0.Id).trimmingLeadingSlash,
                image: $0.Image ?? "",
                state: $0.State ?? "",
                labels: $0.Labels ?? [:]
            )
        }
    }

    public func inspectContainer(_ idOrName: String) async throws -> ContainerDetails {
        let response = try await request("GET", "/containers/\(percentEncode(idOrName))/json", timeout: 60,
                                         doing: "inspect container \(idOrName)")
        return try Self.containerDetails(fromInspect: Data(response.body))
    }

    /// The body of `GET /containers/{id}/json` reduced to `ContainerDetails`. The mounts are `Mounts` plus the
    /// paths of `HostConfig.Tmpfs` (`--tmpfs`, Compose `tmpfs:`), which Docker lists only there, as `tmpfs` mounts.
    static func containerDetails(fromInspect body: Data) throws -> ContainerDetails {
        let row = try JSONDecoder().decode(ContainerInspectRow.self, from: body)
        var environment: [String: String] = [:]
        for entry in row.Config?.Env ?? [] {
            if let equals = entry.firstIndex(of: "=") {
                environment[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            } else {
                environment[entry] = ""
            }
        }
        var mounts = (row.Mounts ?? []).compactMap { mount in
            mount.Destination.map {
                ContainerMount(type: mount.`Type` ?? "", destination: $0, name: mount.Name, source: mount.Source)
            }
        }
        // Keys are container paths; options are the values. Should a client have left `:options` on a key, the
        // path still ends at the colon.
        for key in (row.HostConfig?.Tmpfs ?? [:]).keys.sorted() {
            let path = String(key.prefix { $0 != ":" })
            if !mounts.contains(where: { $0.destination == path }) {
                mounts.append(ContainerMount(type: "tmpfs", destination: path))
            }
        }
        // Docker mounts them at every start, also into a container never started yet (whose paths are still empty).
        let dockerFiles = ContainerDetails.dockerManagedFiles.filter { file in !mounts.contains { $0.destination == file } }
        return ContainerDetails(
            id: row.Id,
            name: (row.Name ?? row.Id).trimmingLeadingSlash,
            image: row.Config?.Image ?? "",
            isRunning: row.State?.Running ?? false,
            labels: row.Config?.Labels ?? [:],
            environment: environment,
            mounts: mounts,
            imageID: row.Image,
            networkMode: row.HostConfig?.NetworkMode,
            dockerFiles: dockerFiles
        )
    }

    public func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        let response = try await raw("POST", "/containers/\(percentEncode(id))/stop?t=\(timeoutSeconds)",
                                     timeout: timeoutSeconds + 60)
        guard response.status == 204 || response.status == 304 else {
            throw daemonError(response, doing: "stop container \(id)")
        }
    }

    public func startContainer(_ id: String) async throws {
        let response = try await raw("POST", "/containers/\(percentEncode(id))/start", timeout: 120)
        guard response.status == 204 || response.status == 304 else {
            throw daemonError(response, doing: "start container \(id)")
        }
    }

    public func createContainer(_ spec: ContainerCreateSpec) async throws -> String {
        var hostConfig: [String: Any] = ["VolumesFrom": spec.volumesFrom]
        if !spec.mounts.isEmpty {
            hostConfig["Mounts"] = spec.mounts.map { mount -> [String: Any] in
                ["Type": mount.type, "Source": mount.reference ?? "", "Target": mount.destination]
            }
        }
        if let mode = spec.networkMode {
            hostConfig["NetworkMode"] = mode
        } else if spec.networkDisabled {
            hostConfig["NetworkMode"] = "none"
        }
        if let memory = spec.memoryLimitBytes { hostConfig["Memory"] = memory }
        if !spec.anonymousVolumes.isEmpty {
            let anonymous: [[String: Any]] = spec.anonymousVolumes.map { ["Type": "volume", "Target": $0] }
            hostConfig["Mounts"] = (hostConfig["Mounts"] as? [[String: Any]] ?? []) + anonymous
        }
        if !spec.capDrop.isEmpty { hostConfig["CapDrop"] = spec.capDrop }
        if !spec.capAdd.isEmpty { hostConfig["CapAdd"] = spec.capAdd }
        if spec.noLogs { hostConfig["LogConfig"] = ["Type": "none", "Config": [String: String]()] }
        var body: [String: Any] = [
            "Image": spec.image, "Labels": spec.labels, "Env": spec.environment,
            "OpenStdin": spec.openStdin, "StdinOnce": spec.openStdin, "AttachStdin": false, "AttachStdout": false,
            "AttachStderr": false, "Tty": false, "HostConfig": hostConfig,
        ]
        // Docker takes the image's entrypoint and command for keys that are left out.
        if !spec.entrypoint.isEmpty {
            body["Entrypoint"] = spec.entrypoint
            body["Cmd"] = spec.command
        } else if !spec.command.isEmpty {
            body["Cmd"] = spec.command
        }
        if let user = spec.user { body["User"] = user }
        let query = spec.name.map { "?name=\(percentEncode($0))" } ?? ""
        let response = try await request(
            "POST", "/containers/create\(query)", body: try JSONSerialization.data(withJSONObject: body), timeout: 120,
            doing: "create a container from image \(spec.image)")
        guard let id = (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["Id"]
            as? String
        else {
            throw StackVaultError(.dockerAPI, "the Docker daemon did not return the id of the container it created")
        }
        return id
    }

    public func imageExists(_ reference: String) async throws -> Bool {
        // The route is /images/{name:.*}/json: a repository's slashes stay as they are.
        let path = reference.split(separator: "/", omittingEmptySubsequences: false).map { percentEncode(String($0)) }
            .joined(separator: "/")
        let response = try await raw("GET", "/images/\(path)/json", timeout: 30)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw daemonError(response, doing: "inspect image \(reference)")
        }
    }

    public func removeContainer(_ id: String, force: Bool) async throws {
        let response = try await raw("DELETE", "/containers/\(percentEncode(id))?v=1&force=\(force ? 1 : 0)",
                                     timeout: 120)
        guard response.status == 204 || response.status == 404 else {
            throw daemonError(response, doing: "remove container \(id)")
        }
    }

    // MARK: - Exec

    public func exec(
        in container: String,
        command: [String],
        environment: [String],
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        let create: [String: Any] = [
            "AttachStdin": false, "AttachStdout": true, "AttachStderr": true, "Tty": false,
            "Cmd": command, "Env": environment,
        ]
        let created = try await request(
            "POST", "/containers/\(percentEncode(container))/exec",
            body: try JSONSerialization.data(withJSONObject: create), timeout: 60,
            doing: "create an exec in container \(container)")
        guard let execID = (try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["Id"]
            as? String
        else {
            throw StackVaultError(.dockerAPI, "the Docker daemon did not return an exec id for \(container)")
        }

        let demuxer = DockerStreamDemuxer(stdout: stdout, stderr: stderr)
        let errorBody = CollectingSink(limit: 64 << 10)
        let start = try JSONSerialization.data(withJSONObject: ["Detach": false, "Tty": false])
        let head = try await http.stream(
            try await makeRequest("POST", "/exec/\(execID)/start", body: Array(start), timeout: nil),
            into: demuxer, errorBody: errorBody)
        guard (200..<300).contains(head.status) else {
            throw daemonError(HTTPResponse(head: head, body: errorBody.bytes), doing: "run an exec in \(container)")
        }
        guard demuxer.isAtFrameBoundary else {
            throw StackVaultError(.dockerAPI, "the exec output stream from \(container) ended in the middle of a frame")
        }

        // The exit code is set once the process has been reaped; poll briefly.
        for attempt in 0..<50 {
            let inspected = try await request("GET", "/exec/\(execID)/json", timeout: 30)
            let object = try JSONSerialization.jsonObject(with: Data(inspected.body)) as? [String: Any] ?? [:]
            if (object["Running"] as? Bool) == false, let code = object["ExitCode"] as? Int {
                return code
            }
            try await Task.sleep(for: .milliseconds(attempt < 10 ? 20 : 100))
        }
        throw StackVaultError(.dockerAPI, "the exec in \(container) did not report an exit code")
    }

    // MARK: - Archives

    public func getArchive(from container: String, path: String, into sink: any ByteSink) async throws {
        let errorBody = CollectingSink(limit: 64 << 10)
        let url = "/containers/\(percentEncode(container))/archive?path=\(percentEncode(path))"
        let head = try await http.stream(try await makeRequest("GET", url, timeout: nil), into: sink,
                                         errorBody: errorBody)
        guard head.status == 200 else {
            throw daemonError(HTTPResponse(head: head, body: errorBody.bytes),
                              doing: "read \(path) from container \(container)")
        }
    }

    public func putArchive(
        to container: String,
        path: String,
        body: @escaping @Sendable (any ByteSink) throws -> Void
    ) async throws {
        // The tar producer runs on its own thread and feeds the upload through a ByteChunkQueue.
        let queue = ByteChunkQueue(what: "the tar stream for \(path) in \(container)")
        let producerError = Mutex<(any Error)?>(nil)
        let producer = Thread {
            do {
                try body(queue)
            } catch {
                producerError.withLock { $0 = error }
            }
            queue.closeWriting()
        }
        producer.start()
        // Closing the reading side on every path unblocks a producer still writing (its write then throws).
        defer { queue.closeReading() }
        let url = "/containers/\(percentEncode(container))/archive?path=\(percentEncode(path))"
        let request = try await makeRequest(
            "PUT", url, headers: [("Content-Type", "application/x-tar")],
            stream: { buffer in try queue.read(into: buffer) }, timeout: nil)
        let response = try await http.send(request)
        if let error = producerError.withLock({ $0 }) { throw error }
        guard response.status == 200 else {
            throw daemonError(response, doing: "write into \(path) of container \(container)")
        }
    }

    // MARK: - Plumbing

    func makeRequest(
        _ method: String,
        _ path: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        stream: (@Sendable (UnsafeMutableRawBufferPointer) throws -> Int)? = nil,
        timeout: Int?
    ) async throws -> HTTPRequest {
        let version = try await apiVersion()
        var allHeaders = headers
        let requestBody: HTTPRequest.Body
        if let body {
            allHeaders.append(("Content-Type", "application/json"))
            requestBody = .bytes(body)
        } else if let stream {
            requestBody = .stream(length: nil, read: stream)
        } else {
            requestBody = .none
        }
        return HTTPRequest(method: method, url: "\(endpoint.baseURL)/v\(version)\(path)", headers: allHeaders,
                           body: requestBody, unixSocketPath: endpoint.socketPath, timeoutSeconds: timeout)
    }

    /// A request whose response must be 2xx; daemon errors come back with the daemon's own message.
    func request(
        _ method: String,
        _ path: String,
        body: Data? = nil,
        timeout: Int?,
        doing: String? = nil
    ) async throws -> HTTPResponse {
        let response = try await raw(method, path, body: body, timeout: timeout)
        guard (200..<300).contains(response.status) else {
            throw daemonError(response, doing: doing ?? "\(method) \(path)")
        }
        return response
    }

    /// Any request, translating transport failures into "cannot connect" errors.
    func raw(_ method: String, _ path: String, body: Data? = nil, timeout: Int?) async throws
        -> HTTPResponse
    {
        let request: HTTPRequest
        if path == "/_ping" {
            request = HTTPRequest(method: method, url: "\(endpoint.baseURL)/_ping",
                                  unixSocketPath: endpoint.socketPath, timeoutSeconds: timeout)
        } else {
            request = try await makeRequest(method, path, body: body.map(Array.init), timeout: timeout)
        }
        do {
            let response = try await http.send(request)
            hasAnswered.withLock { $0 = true }
            return response
        } catch let error as HTTPTransportError {
            throw connectionError(error)
        }
    }

    private func connectionError(_ error: HTTPTransportError) -> StackVaultError {
        var hint = "is dockerd running, and is the socket mounted into this container? (\(error.message))"
        if hasAnswered.withLock({ $0 }) {
            hint = "Docker answered earlier in this run and has gone away: was dockerd stopped, restarted or killed? "
                + "(\(error.message))"
        } else if let socket = endpoint.socketPath {
            if !FileManager.default.fileExists(atPath: socket) {
                hint = "\(socket) does not exist: mount it with -v /var/run/docker.sock:/var/run/docker.sock"
            } else if access(socket, R_OK | W_OK) != 0 {
                hint = "\(socket) is not readable and writable by this user (uid \(getuid()))"
            }
        }
        return StackVaultError(.dockerUnreachable,
            "cannot connect to the Docker daemon at \(endpoint.description): \(hint)",
            isTransient: error.isTransient)
    }

    func daemonError(_ response: HTTPResponse, doing what: String) -> StackVaultError {
        let message = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["message"]
            as? String ?? response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines)
        return StackVaultError(.dockerAPI,
            "Docker could not \(what): \(message.isEmpty ? "HTTP \(response.status)" : message)",
            isTransient: response.status >= 500 && response.status != 501)
    }
}

private struct ContainerListRow: Decodable {
    var Id: String
    var Names: [String]?
    var Image: String?
    var State: String?
    var Labels: [String: String]?
}

private struct ContainerInspectRow: Decodable {
    struct Config: Decodable {
        var Image: String?
        var Env: [String]?
        var Labels: [String: String]?
    }

    struct State: Decodable {
        var Running: Bool?
    }

    struct Mount: Decodable {
        var `Type`: String?
        var Destination: String?
        var Name: String?
        var Source: String?
    }

    struct HostConfig: Decodable {
        /// `--tmpfs` mounts: container path -> mount options.
        var Tmpfs: [String: String]?
        var NetworkMode: String?
    }

    var Id: String
    var Name: String?
    /// The image id (`sha256:...`).
    var Image: String?
    var Config: Config?
    var State: State?
    var Mounts: [Mount]?
    var HostConfig: HostConfig?
}

extension String {
    var trimmingLeadingSlash: String { hasPrefix("/") ? String(dropFirst()) : self }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
func percentEncode(_ value: String) -> String {
    var out = ""
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
             UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            out += String(format: "%%%02X", byte)
        }
    }
    return out
}
