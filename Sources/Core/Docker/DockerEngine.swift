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
    /// Whether the image `reference` (name:tag or `sha256:` id) exists on this host (`GET /images/{name}/json`).
    func imageExists(_ reference: String) async throws -> Bool
}

/// What `createContainer` makes; only what short-lived helper containers need.
public struct ContainerCreateSpec: Sendable, Equatable {
    /// The container name; nil lets Docker choose one.
    public var name: String?
    public var image: String
    /// Replaces the image's entrypoint; empty keeps the image's (and then an empty `command` keeps its command).
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
    /// `KEY=value` entries added to the image's environment (`Env`).
    public var environment: [String] = []
    /// Memory limit in bytes (`HostConfig.Memory`); nil: none.
    public var memoryLimitBytes: Int64? = nil
    /// Container paths that get a fresh anonymous volume each (`HostConfig.Mounts` of type `volume`, no source);
    /// removed with the container.
    public var anonymousVolumes: [String] = []

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

    public init(type: String, destination: String) {
        self.type = type
        self.destination = destination
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
    /// The image's id (`Image` of the inspect: `sha256:...`); empty when unknown.
    public var imageID: String
    public var isRunning: Bool
    public var labels: [String: String]
    /// `Config.Env` as a dictionary (a later entry wins).
    public var environment: [String: String]
    /// Volumes, bind mounts and tmpfs mounts: `Mounts`, plus each path of `HostConfig.Tmpfs` (`--tmpfs`, Compose
    /// `tmpfs:`, which Docker does not list in `Mounts`) as a mount of type `tmpfs`.
    public var mounts: [ContainerMount]

    public init(
        id: String,
        name: String,
        image: String,
        isRunning: Bool,
        labels: [String: String],
        environment: [String: String],
        mounts: [ContainerMount] = [],
        imageID: String = ""
    ) {
        self.id = id
        self.name = name
        self.image = image
        self.imageID = imageID
        self.isRunning = isRunning
        self.labels = labels
        self.environment = environment
        self.mounts = mounts
    }

    public var composeProject: String? { labels["com.docker.compose.project"] }
    public var composeService: String? { labels["com.docker.compose.service"] }
}
