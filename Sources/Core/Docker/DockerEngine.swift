/// The part of the Docker Engine API that StackVault uses.
///
/// `DockerClient` speaks it over libcurl; tests use `FakeDockerEngine` from the test kit.
/// Streams are pushed into sinks as they arrive and are never buffered whole in memory.
public protocol DockerEngine: Sendable {
    /// A description of the daemon endpoint for messages, e.g. `unix:///var/run/docker.sock`.
    var endpointDescription: String { get }
    /// Containers, running and stopped, that carry every label filter (`key=value` or `key`).
    func listContainers(labelFilters: [String]) async throws -> [ContainerSummary]
    func inspectContainer(_ idOrName: String) async throws -> ContainerDetails
    /// Runs `command` inside a running container. Stdout and stderr arrive demultiplexed in their sinks.
    /// Returns the process's exit code. Secrets never go in `command`: the process inherits the container's
    /// environment, plus `environment`.
    func exec(
        in container: String,
        command: [String],
        environment: [String],
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int
    /// Streams a tar archive of `path` inside the container (running or stopped) into `sink`.
    func getArchive(from container: String, path: String, into sink: any ByteSink) async throws
    /// Extracts the tar stream produced by `body` into directory `path` inside the container.
    func putArchive(to container: String, path: String, body: @escaping @Sendable (any ByteSink) throws -> Void)
        async throws
    func stopContainer(_ id: String, timeoutSeconds: Int) async throws
    func startContainer(_ id: String) async throws
}

/// One row of `GET /containers/json`.
public struct ContainerSummary: Sendable, Equatable {
    public var id: String
    /// The name without the leading slash.
    public var name: String
    public var image: String
    public var state: String
    public var labels: [String: String]

    public init(id: String, name: String, image: String, state: String, labels: [String: String]) {
        self.id = id
        self.name = name
        self.image = image
        self.state = state
        self.labels = labels
    }
}

/// What `GET /containers/{id}/json` says about a container, reduced to what backups need.
public struct ContainerDetails: Sendable, Equatable {
    public var id: String
    /// The name without the leading slash.
    public var name: String
    public var image: String
    public var isRunning: Bool
    public var labels: [String: String]
    /// `Config.Env` as a dictionary (a later entry wins).
    public var environment: [String: String]

    public init(
        id: String,
        name: String,
        image: String,
        isRunning: Bool,
        labels: [String: String],
        environment: [String: String]
    ) {
        self.id = id
        self.name = name
        self.image = image
        self.isRunning = isRunning
        self.labels = labels
        self.environment = environment
    }

    public var composeProject: String? { labels["com.docker.compose.project"] }
    public var composeService: String? { labels["com.docker.compose.service"] }
}
