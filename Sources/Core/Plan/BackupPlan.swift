/// What StackVault would back up on a host: stacks, their services, and what happens to each.
public struct BackupPlan: Sendable, Encodable, Equatable {
    public var stacks: [StackPlan]
    /// The image directory copies run their helper containers from, and why (see `HelperImage`); nil when no
    /// directory is copied.
    public var helperImage: String?
    /// What was found but is not backed up here, and why (a labelled Swarm service with no running task on this
    /// node); not errors.
    public var notes: [String] = []

    public init(stacks: [StackPlan], helperImage: String? = nil) {
        self.stacks = stacks
        self.helperImage = helperImage
    }

    public var hasErrors: Bool { stacks.contains { $0.hasErrors } }

    public func stack(named name: String) -> StackPlan? { stacks.first { $0.name == name } }
}

/// A Compose project (or a standalone container) with at least one container labelled `backup.enable=true`.
public struct StackPlan: Sendable, Encodable, Equatable {
    public var name: String
    public var services: [ServicePlan]
    /// Every container stopped while the directories are copied, labelled or not, with why (`StopSet`).
    public var stops: [PlannedStop]
    /// Warnings about containers that are not services of the stack (`backup.stop=false`).
    public var stopWarnings: [String]

    public init(name: String, services: [ServicePlan], stops: [PlannedStop]? = nil, stopWarnings: [String] = []) {
        self.name = name
        self.services = services
        self.stops = stops ?? services.filter(\.stop).map(PlannedStop.init(service:))
        self.stopWarnings = stopWarnings
    }

    public var hasErrors: Bool { services.contains { !$0.errors.isEmpty } }
    public var warnings: [String] {
        services.flatMap { s in s.warnings.map { "\(s.service): \($0)" } } + stopWarnings
    }

    private enum CodingKeys: String, CodingKey { case name, services, stops, warnings }

    public func encode(to encoder: any Encoder) throws {
        var out = encoder.container(keyedBy: CodingKeys.self)
        try out.encode(name, forKey: .name)
        try out.encode(services, forKey: .services)
        try out.encode(stops, forKey: .stops)
        try out.encode(stopWarnings, forKey: .warnings)
    }
}

/// One container of a stack and what will be done to it.
///
/// Encoded (`plan --json`) with its components as `strategies`: the label-derived `ComponentSpec`s.
public struct ServicePlan: Sendable, Encodable, Equatable {
    /// The Compose service name, or the container name for a standalone container. It names the service's
    /// folder in the archive.
    public var service: String
    public var container: String
    public var containerID: String
    public var image: String
    /// The image's id (`sha256:...`), empty when unknown; recorded in the manifest, not shown by `plan`.
    public var imageID: String
    /// Whether the container is running now.
    public var running: Bool
    /// The components to back up, in order, each with the strategy that writes it (resolved once, by the planner).
    public var components: [PlannedComponent]
    /// True when the container will be stopped while its directories are copied.
    public var stop: Bool
    public var warnings: [String]
    /// Problems that make this service's (and so its stack's) backup fail; each names its culprit.
    public var errors: [String]
    /// For a Swarm task: its service, scaled to 0 instead of stopping the container when `stop` is true.
    public var swarmService: SwarmServicePlan?
    /// Where each `backup.*` label came from: `container`, `service` (the Swarm service spec, `deploy.labels`) or
    /// `container, overrides service`.
    public var labelSources: [String: String]

    public init(
        service: String,
        container: String,
        containerID: String,
        image: String,
        running: Bool,
        components: [PlannedComponent],
        stop: Bool,
        warnings: [String],
        errors: [String],
        swarmService: SwarmServicePlan? = nil,
        labelSources: [String: String] = [:],
        imageID: String = ""
    ) {
        self.service = service
        self.container = container
        self.imageID = imageID
        self.containerID = containerID
        self.image = image
        self.running = running
        self.components = components
        self.stop = stop
        self.warnings = warnings
        self.errors = errors
        self.swarmService = swarmService
        self.labelSources = labelSources
    }

    /// The components as their labels describe them (what `plan --json` prints under `strategies`).
    public var strategies: [ComponentSpec] { components.map(\.spec) }

    /// The components whose strategy needs the container in `state` (`.running`: dumps; `.stopped`: copies).
    public func components(needing state: ContainerRequirement) -> [PlannedComponent] {
        components.filter { $0.requirement == state }
    }

    private enum CodingKeys: String, CodingKey {
        case service, container, containerID, image, running, strategies, stop, warnings, errors, swarmService
        case labelSources
    }

    public func encode(to encoder: any Encoder) throws {
        var out = encoder.container(keyedBy: CodingKeys.self)
        try out.encode(service, forKey: .service)
        try out.encode(container, forKey: .container)
        try out.encode(containerID, forKey: .containerID)
        try out.encode(image, forKey: .image)
        try out.encode(running, forKey: .running)
        try out.encode(strategies, forKey: .strategies)
        try out.encode(stop, forKey: .stop)
        try out.encode(warnings, forKey: .warnings)
        try out.encode(errors, forKey: .errors)
        try out.encodeIfPresent(swarmService, forKey: .swarmService)
        try out.encode(labelSources, forKey: .labelSources)
    }
}

/// The Swarm service of a `ServicePlan` (`plan --json`: `swarmService`).
public struct SwarmServicePlan: Sendable, Encodable, Equatable {
    /// The service id and full name (`<stack>_<service>`).
    public var id: String
    public var name: String
    /// `replicated` or `global` (or another mode's key); `unknown` when this node cannot inspect services (worker).
    public var mode: String
    /// The replica count to scale back to; nil unless replicated.
    public var replicas: Int?
    /// The running task containers of the service on this node; the first one is the one backed up.
    public var tasksOnNode: [String]

    public init(id: String, name: String, mode: String, replicas: Int?, tasksOnNode: [String]) {
        self.id = id
        self.name = name
        self.mode = mode
        self.replicas = replicas
        self.tasksOnNode = tasksOnNode
    }
}

/// One component of a plan: what a label asked for (`spec`), and the strategy that backs it up, resolved once
/// when the plan is made. Nothing after planning looks a strategy up by its type name.
///
/// The same value goes from the plan to the archive: `indexEntry` is the component's line in the index written
/// first, and `ArchiveWriter` completes that line into the component's manifest entry with what was written.
public struct PlannedComponent: Sendable, Equatable {
    public let spec: ComponentSpec
    public let strategy: any BackupStrategy
    /// Whether the container runs or is stopped while the component is read (the strategy's declaration).
    public let requirement: ContainerRequirement
    /// How the component is stored: dumps are one `.file`, directories a `.tree`.
    public let kind: ComponentRecord.Kind

    public init(spec: ComponentSpec, strategy: any BackupStrategy) {
        self.spec = spec
        self.strategy = strategy
        self.requirement = strategy.requirement
        self.kind = strategy.requirement == .stopped ? .tree : .file
    }

    /// For log lines and errors: `volume-path data (/data)` or `pg_dumpall`.
    public var summary: String {
        if let name = spec.name, let path = spec.path { return "\(spec.type) \(name) (\(path))" }
        return spec.type
    }

    /// The component's line in the archive index (`stackvault-index.json`), before any byte of it is written,
    /// with what the manifest will record of its origin (the container it is read from, its name and path).
    public func indexEntry(service: String, container: String, image: String? = nil, imageID: String? = nil)
        -> ArchiveIndex.IndexComponent
    {
        ArchiveIndex.IndexComponent(
            service: service, type: spec.type, archivePath: spec.archivePath, kind: kind, container: container,
            name: spec.name, sourcePath: spec.path, resolvedPath: spec.resolvedPath, image: image, imageID: imageID)
    }

    public static func == (lhs: PlannedComponent, rhs: PlannedComponent) -> Bool {
        lhs.spec == rhs.spec && lhs.strategy.type == rhs.strategy.type
    }
}
