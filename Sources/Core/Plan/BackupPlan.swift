/// What StackVault would back up on a host: stacks, their services, and what happens to each.
public struct BackupPlan: Sendable, Codable, Equatable {
    public var stacks: [StackPlan]

    public init(stacks: [StackPlan]) { self.stacks = stacks }

    public var hasErrors: Bool { stacks.contains { $0.hasErrors } }

    public func stack(named name: String) -> StackPlan? { stacks.first { $0.name == name } }
}

/// A Compose project (or a standalone container) with at least one container labelled `backup.enable=true`.
public struct StackPlan: Sendable, Codable, Equatable {
    public var name: String
    public var services: [ServicePlan]

    public init(name: String, services: [ServicePlan]) {
        self.name = name
        self.services = services
    }

    public var hasErrors: Bool { services.contains { !$0.errors.isEmpty } }
    public var warnings: [String] { services.flatMap { s in s.warnings.map { "\(s.service): \($0)" } } }
}

/// One container of a stack and what will be done to it.
public struct ServicePlan: Sendable, Codable, Equatable {
    /// The Compose service name, or the container name for a standalone container. It names the service's
    /// folder in the archive.
    public var service: String
    public var container: String
    public var containerID: String
    public var image: String
    /// Whether the container is running now.
    public var running: Bool
    /// The components to back up, in order.
    public var strategies: [ComponentSpec]
    /// True when the container will be stopped while its directories are copied.
    public var stop: Bool
    public var warnings: [String]
    /// Problems that make this service's (and so its stack's) backup fail; each names its culprit.
    public var errors: [String]

    public init(
        service: String,
        container: String,
        containerID: String,
        image: String,
        running: Bool,
        strategies: [ComponentSpec],
        stop: Bool,
        warnings: [String],
        errors: [String]
    ) {
        self.service = service
        self.container = container
        self.containerID = containerID
        self.image = image
        self.running = running
        self.strategies = strategies
        self.stop = stop
        self.warnings = warnings
        self.errors = errors
    }
}
