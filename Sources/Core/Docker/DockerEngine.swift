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

    // Swarm (see `SwarmService.swift`). Defaults: an engine outside any swarm.

    /// This engine's place in a swarm (`GET /info` `Swarm`).
    func swarmNode() async throws -> SwarmNode
    /// Services that carry every label filter (`GET /services`); only a manager can answer.
    func listServices(labelFilters: [String]) async throws -> [SwarmService]
    /// One service (`GET /services/{id}`); only a manager can answer.
    func inspectService(_ idOrName: String) async throws -> SwarmService
    /// The tasks of a service, on every node (`GET /tasks?filters={"service":[id]}`); only a manager can answer.
    func listTasks(serviceID: String) async throws -> [SwarmTask]
    /// Sets a replicated service's replica count and changes its service labels (`labels`: a nil value removes the
    /// key), keeping the rest of the spec, in one `POST /services/{id}/update` at the version just read (retried
    /// when another update came in between). Changing only these fields never restarts the service's other tasks.
    func scaleService(_ id: String, replicas: Int, labels: [String: String?]) async throws
    /// What `path` is in the container, running or stopped, mounts included (`HEAD /containers/{id}/archive`);
    /// nil when it does not exist. A symlink's `linkTarget` is the absolute path the whole chain resolves to.
    func statPath(in container: String, path: String) async throws -> ContainerPathStat?
    /// Runs a short-lived container as `spec` says and streams its output: creates it, attaches to its stdout and
    /// stderr (and stdin, when `stdin` is given: the bytes `stdin` writes, then end of file), starts it, waits for
    /// it to exit and removes it on every path (error, cancellation). Returns its exit code.
    ///
    /// Throws when it cannot be created or started, or when its output stream ends inside a frame.
    func runHelper(
        _ spec: ContainerCreateSpec,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int
    /// The image helper containers are made from, and why that one (see `HelperImage`); resolved once per engine.
    /// `build: false` (for `plan`) changes nothing: a built image that is missing is reported, not imported.
    func helperImage(build: Bool) async -> HelperImage
}

extension DockerEngine {
    public func statPath(in container: String, path: String) async throws -> ContainerPathStat? {
        throw StackVaultError(.dockerAPI, "\(endpointDescription) cannot look paths up in containers")
    }

    public func runHelper(
        _ spec: ContainerCreateSpec,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        throw StackVaultError(.dockerAPI, "\(endpointDescription) cannot run helper containers")
    }

    public func helperImage(build: Bool) async -> HelperImage {
        .unavailable(reason: "\(endpointDescription) cannot run helper containers")
    }
}

/// What a path in a container is (Docker's `X-Docker-Container-Path-Stat`, reduced).
public struct ContainerPathStat: Sendable, Equatable {
    public var isDirectory: Bool
    public var isSymlink: Bool
    /// For a symlink: the absolute path in the container that its chain of links resolves to.
    public var linkTarget: String?

    public init(isDirectory: Bool, isSymlink: Bool = false, linkTarget: String? = nil) {
        self.isDirectory = isDirectory
        self.isSymlink = isSymlink
        self.linkTarget = linkTarget
    }
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
    /// Containers whose volumes and bind mounts this one mounts at the same paths (`--volumes-from`); an entry may
    /// end in `:ro` or `:rw`.
    public var volumesFrom: [String]
    /// No network at all (`--network none`).
    public var networkDisabled: Bool
    /// `HostConfig.NetworkMode` (`host`, `container:<id>`); when set, it wins over ``networkDisabled``.
    public var networkMode: String? = nil
    /// Keeps stdin open although nothing is attached (`-i`), so a command that reads it blocks instead of ending.
    public var openStdin: Bool
    /// Volumes (by name) and bind mounts (by host path) to mount (`HostConfig.Mounts`): `type` `volume` or `bind`,
    /// `source` the volume name or host path, `destination` the path in the container.
    public var mounts: [ContainerMount]
    /// `KEY=value` entries added to the image's environment (`Env`).
    public var environment: [String] = []
    /// Memory limit in bytes (`HostConfig.Memory`); nil: none.
    public var memoryLimitBytes: Int64? = nil
    /// Container paths that get a fresh anonymous volume each (`HostConfig.Mounts` of type `volume`, no source);
    /// removed with the container.
    public var anonymousVolumes: [String] = []
    /// Linux capabilities removed (`--cap-drop`, e.g. `ALL`) and then added back (`--cap-add`).
    public var capDrop: [String]
    public var capAdd: [String]
    /// No log driver (`--log-driver none`): a helper's output is a data stream, not something to keep on disk.
    public var noLogs: Bool

    public init(
        name: String? = nil,
        image: String,
        entrypoint: [String],
        command: [String] = [],
        user: String? = nil,
        labels: [String: String] = [:],
        volumesFrom: [String] = [],
        networkDisabled: Bool = true,
        openStdin: Bool = false,
        mounts: [ContainerMount] = [],
        capDrop: [String] = [],
        capAdd: [String] = [],
        noLogs: Bool = false
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
        self.mounts = mounts
        self.capDrop = capDrop
        self.capAdd = capAdd
        self.noLogs = noLogs
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

    /// What names the mount to Docker when another container mounts it too: the volume's name for a volume, the
    /// host path for a bind mount (`HostConfig.Mounts[].Source`); nil for others.
    public var reference: String? {
        switch type {
        case "volume": name
        case "bind": source
        default: nil
        }
    }

    /// True for a volume Docker named itself (64 hex digits): an anonymous volume, removed with its container when
    /// Docker removes it with its volumes (as Swarm does with the containers of the tasks it removes).
    public var isAnonymousVolume: Bool {
        guard type == "volume", let name, name.utf8.count == 64 else { return false }
        return name.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// True for a named volume or a bind mount: what outlives a Swarm task's container, which Swarm removes (with its
    /// own layer and anonymous volumes) when the service is scaled down.
    public var outlivesSwarmTask: Bool {
        reference != nil && !isAnonymousVolume
    }

    /// The mount `path` is on: the one with the longest destination equal to or above it; nil when none is.
    public static func covering(_ path: String, in mounts: [ContainerMount]) -> ContainerMount? {
        mounts.filter { $0.destination == path || isPath(path, below: $0.destination) }
            .max { $0.destination.count < $1.destination.count }
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
    /// The id of the image the container runs (`Image`, `sha256:...`), which names it even when `image` (the
    /// reference it was created from, e.g. `name:tag@sha256:digest` in a Swarm task) does not resolve locally.
    public var imageID: String?
    /// `HostConfig.NetworkMode`: `container:<id>` when it shares another container's network namespace.
    public var networkMode: String?
    /// The files Docker bind-mounts into the container itself at every start and does not list in `Mounts`
    /// (``dockerManagedFiles``, inspect's `HostsPath`, `HostnamePath`, `ResolvConfPath`).
    public var dockerFiles: [String]
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`.
    public static let dockerManagedFiles = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]

    public init(
        id: String,
        name: String,
        image: String,
        isRunning: Bool,
        labels: [String: String],
        environment: [String: String],
        mounts: [ContainerMount] = [],
        imageID: String? = nil,
        networkMode: String? = nil,
        dockerFiles: [String] = []
    ) {
        self.networkMode = networkMode
        self.dockerFiles = dockerFiles
        self.id = id
        self.name = name
        self.image = image
        self.isRunning = isRunning
        self.labels = labels
        self.environment = environment
        self.mounts = mounts
        self.imageID = imageID
    }

    public var composeProject: String? { labels["com.docker.compose.project"] }

    /// The mount points strictly below `path` (mounts and ``dockerFiles``), shortest first, each with what it is
    /// for messages (`the volume shop_data`, `the bind mount /srv/conf`, `Docker's own /etc/hosts`).
    public func mountPoints(below path: String) -> [(path: String, what: String)] {
        Self.mountPoints(below: path, mounts: mounts, dockerFiles: dockerFiles)
    }

    /// ``mountPoints(below:)`` of a container with these `mounts` and ``dockerFiles``.
    public static func mountPoints(below path: String, mounts: [ContainerMount], dockerFiles: [String])
        -> [(path: String, what: String)]
    {
        let isBelow = ContainerMount.isPath(_:below:)
        let mounted = mounts.filter { isBelow($0.destination, path) }.map { mount in
            (path: mount.destination, what: mount.type == "volume" && mount.name != nil
                ? "the volume \(mount.name!)" : mount.type == "bind" ? "a bind mount" : "a \(mount.type) mount")
        }
        let docker = dockerFiles.filter { isBelow($0, path) }.map {
            (path: $0, what: "a file Docker mounts into every container itself")
        }
        return (mounted + docker).sorted { $0.path.count < $1.path.count }
    }
    public var composeService: String? { labels["com.docker.compose.service"] }
}

extension ContainerDetails {
    /// `com.docker.stack.namespace`: the stack of a Swarm task deployed with `docker stack deploy`.
    public static let stackNamespaceLabel = "com.docker.stack.namespace"
    /// `com.docker.swarm.service.id` / `.name`: on every container of a Swarm task.
    public static let swarmServiceIDLabel = "com.docker.swarm.service.id"
    public static let swarmServiceNameLabel = "com.docker.swarm.service.name"

    /// The Swarm service id when the container is a Swarm task.
    public var swarmServiceID: String? { labels[Self.swarmServiceIDLabel] }

    /// The stack the container belongs to: its Compose project; for a Swarm task its stack
    /// (`com.docker.stack.namespace`), or for a service made with `docker service create`, the service's name.
    /// Nil for a standalone container.
    public var stackName: String? {
        if let composeProject { return composeProject }
        guard let service = labels[Self.swarmServiceNameLabel] else { return nil }
        return labels[Self.stackNamespaceLabel] ?? service
    }

    /// The service within `stackName`: the Compose service; for a Swarm task its service name without the
    /// `<stack>_` prefix `docker stack deploy` puts before it (`app_db` in stack `app` is `db`, as in the Compose
    /// file). Nil for a standalone container.
    public var serviceName: String? {
        if let composeService { return composeService }
        guard let service = labels[Self.swarmServiceNameLabel] else { return nil }
        if let stack = labels[Self.stackNamespaceLabel], service.hasPrefix(stack + "_"), service.count > stack.count + 1
        {
            return String(service.dropFirst(stack.count + 1))
        }
        return service
    }

    /// The task's slot (`<service>.<slot>.<task id>` in `com.docker.swarm.task.name`); nil for others.
    public var swarmSlot: Int? {
        guard let name = labels["com.docker.swarm.task.name"] else { return nil }
        let parts = name.split(separator: ".")
        return parts.count >= 3 ? Int(parts[parts.count - 2]) : nil
    }
}
