/// One container a stack's backup stops while its directories are copied, and why.
public struct PlannedStop: Sendable, Encodable, Equatable {
    public var container: String
    public var containerID: String
    /// The labelled service it is, nil for a container that is stopped only because it shares what is copied.
    public var service: String?
    /// Why, for `plan`: `has volume-path data (/data)`, `mounts volume shop_data, copied for service web`.
    public var reason: String
    /// The id of a stopped container whose network namespace this one shares: stopped before it, started after.
    public var provider: String?

    public init(container: String, containerID: String, service: String?, reason: String, provider: String? = nil) {
        self.container = container
        self.containerID = containerID
        self.service = service
        self.reason = reason
        self.provider = provider
    }

    /// A labelled service stopped for its own directories.
    init(service: ServicePlan) {
        self.init(container: service.container, containerID: service.containerID, service: service.service,
                  reason: "has " + service.components(needing: .stopped).map(\.summary).joined(separator: ", "))
    }

    var stoppedContainer: StoppedContainer { StoppedContainer(id: containerID, name: container, provider: provider) }
}

/// Which containers must be still while a stack's directories are copied: the labelled containers with a
/// `volume-path`, every other running container that mounts the same host directory (the same named volume, the
/// same bind source, or a parent or child of it), and the containers that share the network namespace of one of
/// those (they lose their network when it stops, so they are stopped before it and started after it). A container
/// labelled `backup.stop=false` is left running, with a warning.
enum StopSet {
    static let keepRunningLabel = "backup.stop"

    /// The stops and warnings of `stack`, whose containers are among `containers` (every container on the host,
    /// inspected); `own` is the id of the container this process runs in, which is never stopped.
    static func plan(_ stack: StackPlan, containers: [ContainerDetails], own: String?)
        -> (stops: [PlannedStop], warnings: [String])
    {
        let byID = Dictionary(containers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var stops: [PlannedStop] = []
        // Host directories copied, with what to say about them.
        var copied: [(path: String, what: String, service: String)] = []
        for service in stack.services where service.stop {
            let paths = service.components(needing: .stopped).compactMap(\.spec.path)
            // A Swarm service is scaled to 0 instead (`SwarmScaleGuard`): its task is never stopped.
            if service.swarmService == nil { stops.append(PlannedStop(service: service)) }
            guard let container = byID[service.containerID] else { continue }
            for path in paths { copied += hostDirectories(of: path, in: container, service: service.service) }
        }
        guard !copied.isEmpty || !stops.isEmpty else { return ([], []) }
        // The tasks of a service that is scaled to 0 go with it.
        let scaled = Set(stack.services.filter(\.stop).compactMap { $0.swarmService?.id })
        return sharing(copied, stops: stops, containers: containers, own: own, scaled: scaled, verb: "copied")
    }

    /// `stops` (the containers whose directories are copied or replaced) and, added to them, every other running
    /// container among `containers` that mounts one of the host directories `touched` (not `own`, not a task of a
    /// service in `scaled`, not one labelled `backup.stop=false`, which gets a warning), then the containers that
    /// share the network namespace of a stopped one (stopped before it, started after it). `verb` says what
    /// happens to the directories in the reasons: `copied` (backup), `restored` (restore).
    static func sharing(_ touched: [(path: String, what: String, service: String)], stops initial: [PlannedStop],
                        containers: [ContainerDetails], own: String?, scaled: Set<String>, verb: String)
        -> (stops: [PlannedStop], warnings: [String])
    {
        var stops = initial
        var warnings: [String] = []
        let stopped = { (id: String) in stops.contains { $0.containerID == id } }
        for other in containers where other.isRunning && !stopped(other.id) && other.id != own
            && !(other.swarmServiceID.map(scaled.contains) ?? false)
        {
            guard let shared = touched.first(where: { mounts(other, $0.path) }) else { continue }
            let reason = "mounts \(shared.what), \(verb) for service \(shared.service)"
            if other.swarmServiceID != nil {
                // Stopping a task container makes Swarm start a replacement: never done.
                warnings.append("Swarm task \(other.name) \(reason), but a Swarm task is never stopped (Swarm would "
                    + "start a replacement): its writes may make the \(verb == "copied" ? "copy" : "restore") "
                    + "inconsistent; label its service for backup instead, so that it is scaled to 0 for the copy")
                continue
            }
            if other.labels[keepRunningLabel]?.lowercased() == "false" {
                warnings.append("container \(other.name) \(reason), but is labelled \(keepRunningLabel)=false: it "
                    + "keeps running, and its writes may make the \(verb == "copied" ? "copy" : "restore") "
                    + "inconsistent")
                continue
            }
            stops.append(PlannedStop(container: other.name, containerID: other.id, service: nil, reason: reason))
        }
        // Containers sharing the network namespace of a stopped one.
        for other in containers where other.isRunning && !stopped(other.id) && other.id != own
            && other.swarmServiceID == nil
        {
            guard let mode = other.networkMode, mode.hasPrefix("container:") else { continue }
            let reference = String(mode.dropFirst("container:".count))
            guard let provider = stops.first(where: { $0.containerID == reference || $0.container == reference
                || $0.containerID.hasPrefix(reference) })
            else { continue }
            stops.append(PlannedStop(container: other.name, containerID: other.id, service: nil,
                                     reason: "shares the network namespace of \(provider.container), which is stopped",
                                     provider: provider.containerID))
        }
        return (stops, warnings)
    }

    /// Whether `container` mounts the host directory `path`, a parent or a child of it (volume or bind).
    static func mounts(_ container: ContainerDetails, _ path: String) -> Bool {
        container.mounts.contains { mount in
            guard let source = mount.source, mount.type == "volume" || mount.type == "bind" else { return false }
            return source == path || ContainerMount.isPath(source, below: path) || ContainerMount.isPath(path, below: source)
        }
    }

    /// The running containers among `others` (not `container` itself) that mount what copying `path` of
    /// `container` reads: who may have changed a file while it was read.
    static func runningWriters(of path: String, in container: ContainerDetails, among others: [ContainerDetails])
        -> [String]
    {
        let directories = hostDirectories(of: path, in: container, service: "").map(\.path)
        return others.filter { other in
            other.isRunning && other.id != container.id && directories.contains { mounts(other, $0) }
        }.map(\.name)
    }

    /// The host directories that copying `path` of `container` reads: the part of the mount it lies on, and every
    /// mount below it; none for a path in the container's own layer.
    static func hostDirectories(of path: String, in container: ContainerDetails, service: String)
        -> [(path: String, what: String, service: String)]
    {
        var result: [(path: String, what: String, service: String)] = []
        let mounts = container.mounts.filter { ($0.type == "volume" || $0.type == "bind") && $0.source != nil }
        func describe(_ mount: ContainerMount) -> String {
            mount.type == "volume" ? "volume \(mount.name ?? mount.source!)" : "\(mount.source!) (bind mount)"
        }
        if let on = mounts.filter({ path == $0.destination || ContainerMount.isPath(path, below: $0.destination) })
            .max(by: { $0.destination.count < $1.destination.count })
        {
            let rest = path.dropFirst(on.destination.count)
            result.append((on.source! + rest, describe(on), service))
        }
        for below in mounts where ContainerMount.isPath(below.destination, below: path) {
            result.append((below.source!, describe(below), service))
        }
        return result
    }
}
