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
    /// Creates (does not start) a container as `spec` describes; returns its id.
    func createContainer(_ spec: ContainerCreateSpec) async throws -> String
    /// Removes a container; `force` kills it first if it runs. Its anonymous volumes go with it, unless another
    /// container still uses them.
    func removeContainer(_ id: String, force: Bool) async throws
}

/// What `createContainer` makes; only what short-lived helper containers need.
public struct ContainerCreateSpec: Sendable, Equatable {
    /// The container name; nil lets Docker choose one.
    public var name: String?
    public var image: String
    /// Replaces the image's entrypoint.
    public var entrypoint: [String]
    public var command: [String]
    /// `uid[:gid]` or a user name; nil keeps the image's user.
    public var user: String?
    public var labels: [String: String]
    /// Containers whose volumes and bind mounts this one mounts at the same paths (`--volumes-from`).
    public var volumesFrom: [String]
    /// No network at all (`--network none`).
    public var networkDisabled: Bool
    /// Keeps stdin open although nothing is attached (`-i`), so a command that reads it blocks instead of ending.
    public var openStdin: Bool

    public init(
        name: String? = nil,
        image: String,
        entrypoint: [String],
        command: [String] = [],
        user: String? = nil,
        labels: [String: String] = [:],
        volumesFrom: [String] = [],
        networkDisabled: Bool = true,
        openStdin: Bool = false
    ) {
        self.name = name
        self.image = image
        self.entrypoint = entrypoint
        self.command = command
        self.user = user
        self.labels = labels
        self.volumesFrom = volumesFrom
        self.networkDisabled = networkDisabled
        self.openStdin = openStdin
    }
}

/// One mount of a container (`Mounts` in `GET /containers/{id}/json`).
public struct ContainerMount: Sendable, Equatable, Codable {
    /// `volume`, `bind`, `tmpfs`, ...
    public var type: String
    /// The absolute path inside the container.
    public var destination: String
    /// The volume's name (`volume` mounts); nil for others.
    public var name: String?
    /// The host path: a bind mount's source, a local volume's `_data` directory; nil when unknown (tmpfs).
    public var source: String?

    public init(type: String, destination: String, name: String? = nil, source: String? = nil) {
        self.type = type
        self.destination = destination
        self.name = name
        self.source = source
    }

    /// True when the absolute, normalized path `inner` lies strictly below the directory `outer`.
    public static func isPath(_ inner: String, below outer: String) -> Bool {
        outer == "/" ? inner != "/" : inner.hasPrefix(outer + "/")
    }
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
    /// Volumes, bind mounts and tmpfs mounts: `Mounts`, plus each path of `HostConfig.Tmpfs` (`--tmpfs`, Compose
    /// `tmpfs:`, which Docker does not list in `Mounts`) as a mount of type `tmpfs`.
    public var mounts: [ContainerMount]
    /// `HostConfig.NetworkMode`: `container:<id>` when it shares another container's network namespace.
    public var networkMode: String?

    public init(
        id: String,
        name: String,
        image: String,
        isRunning: Bool,
        labels: [String: String],
        environment: [String: String],
        mounts: [ContainerMount] = [],
        networkMode: String? = nil
    ) {
        self.networkMode = networkMode
        self.id = id
        self.name = name
        self.image = image
        self.isRunning = isRunning
        self.labels = labels
        self.environment = environment
        self.mounts = mounts
    }

    public var composeProject: String? { labels["com.docker.compose.project"] }
    public var composeService: String? { labels["com.docker.compose.service"] }
}
