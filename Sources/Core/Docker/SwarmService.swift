/// This engine's place in a Docker Swarm (`GET /info` `Swarm`).
public struct SwarmNode: Sendable, Equatable {
    /// `LocalNodeState`: `inactive`, `pending`, `active`, `error`, `locked`.
    public var state: String
    /// `ControlAvailable`: true on a manager, whose API can list, inspect and update services.
    public var isManager: Bool
    /// `NodeID`; empty outside a swarm.
    public var nodeID: String

    public init(state: String, isManager: Bool, nodeID: String) {
        self.state = state
        self.isManager = isManager
        self.nodeID = nodeID
    }

    public static let inactive = SwarmNode(state: "inactive", isManager: false, nodeID: "")

    public var isActive: Bool { state == "active" }
}

/// A Swarm service (`GET /services/{id}`), reduced to what StackVault needs.
public struct SwarmService: Sendable, Equatable {
    /// How many tasks the service runs (`Spec.Mode`).
    public enum Mode: Sendable, Equatable {
        /// `Replicated.Replicas`.
        case replicated(Int)
        /// One task on every node (`Global`); cannot be scaled.
        case global
        /// Another mode (`ReplicatedJob`, `GlobalJob`, ...), by its key.
        case other(String)
    }

    public var id: String
    /// `Spec.Name`: `<stack>_<service>` for a service of `docker stack deploy`.
    public var name: String
    /// `Spec.Labels`: the service's own labels, `deploy.labels` in a Compose file (`--label` of
    /// `docker service create`). Task containers do not carry them.
    public var labels: [String: String]
    public var mode: Mode

    public init(id: String, name: String, labels: [String: String], mode: Mode) {
        self.id = id
        self.name = name
        self.labels = labels
        self.mode = mode
    }

    /// The replica count a crashed StackVault recorded before scaling the service to 0 (`stackvault.scaled-from`).
    public static let scaledFromLabel = "stackvault.scaled-from"
    /// The host (`STACKVAULT_HOST` or the engine's name) of the StackVault that scaled it down.
    public static let scaledByLabel = "stackvault.scaled-by"

    /// The replica count to scale back to: the one a scale-down recorded (`stackvault.scaled-from`, when a run was
    /// killed or another host's run has it at 0 now), else the spec's; nil unless replicated.
    public var replicasToRestore: Int? {
        guard case .replicated(let count) = mode else { return nil }
        return labels[Self.scaledFromLabel].flatMap { Int($0) } ?? count
    }
}

/// One task of a Swarm service (`GET /tasks`).
public struct SwarmTask: Sendable, Equatable {
    public var id: String
    /// `Slot` (replicated services); nil for global ones.
    public var slot: Int?
    public var nodeID: String
    /// `DesiredState`: `running`, `shutdown`, `remove`, ...
    public var desiredState: String
    /// `Status.State`: `new`, ..., `starting`, `running`, `complete`, `shutdown`, `failed`, `rejected`, ...
    public var state: String
    /// `Status.ContainerStatus.ContainerID`, once a container exists.
    public var containerID: String?
    /// `Status.Err`: why Swarm could not run the task (`No such image: app:1`), when it says.
    public var error: String?

    public init(id: String, slot: Int?, nodeID: String, desiredState: String, state: String,
                containerID: String? = nil, error: String? = nil) {
        self.id = id
        self.slot = slot
        self.nodeID = nodeID
        self.desiredState = desiredState
        self.state = state
        self.containerID = containerID
        self.error = error
    }

    /// States in which a task may still have a running process (docs.docker.com, "Swarm task states").
    public var mayRun: Bool {
        ["new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"].contains(state)
    }
}

/// Engines that know nothing of Swarm (test fakes written before it): a node outside any swarm.
extension DockerEngine {
    public func swarmNode() async throws -> SwarmNode { .inactive }

    public func listServices(labelFilters: [String]) async throws -> [SwarmService] { [] }

    public func inspectService(_ idOrName: String) async throws -> SwarmService {
        throw StackVaultError(.dockerAPI, "Docker could not inspect service \(idOrName): this engine is not in a swarm")
    }

    public func listTasks(serviceID: String) async throws -> [SwarmTask] { [] }

    public func scaleService(_ id: String, replicas: Int, labels: [String: String?]) async throws {
        throw StackVaultError(.dockerAPI, "Docker could not scale service \(id): this engine is not in a swarm")
    }
}
