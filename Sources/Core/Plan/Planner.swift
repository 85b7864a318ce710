import Foundation

/// Turns the labels of a Docker host's containers into a `BackupPlan`. Reads only; changes nothing.
public struct Planner: Sendable {
    public static let enableLabel = "backup.enable"
    public static let labelPrefix = "backup."

    public let docker: any DockerEngine
    public let strategies: StrategyRegistry

    public init(docker: any DockerEngine, strategies: StrategyRegistry) {
        self.docker = docker
        self.strategies = strategies
    }

    /// Discovers every container labelled `backup.enable=true`, running or stopped, grouped into stacks; on a Swarm
    /// manager also the running tasks on this node of services labelled so in their spec (`deploy.labels`). Running
    /// containers without the label are inspected too: those that share a copied directory are stopped with it
    /// (`StopSet`).
    public func makePlan() async throws -> BackupPlan {
        // Only a node with Swarm tasks asks for its swarm state: plain Compose hosts (also behind a socket proxy that
        // refuses GET /info) plan as before.
        let hasTasks = !(try await docker.listContainers(labelFilters: [ContainerDetails.swarmServiceIDLabel]).isEmpty)
        let node = hasTasks ? try await docker.swarmNode() : .inactive
        var ids: [String] = []
        var labelled: Set<String> = []
        var notes: [String] = []
        for summary in try await docker.listContainers(labelFilters: []) {
            let enabled = Self.isEnabled(summary.labels[Self.enableLabel])
            if enabled { labelled.insert(summary.id) }
            // A task's exited containers are Swarm's task history, not data: only running tasks count.
            let isTask = summary.labels[ContainerDetails.swarmServiceIDLabel] != nil
            if summary.state == "running" || (enabled && !isTask) { ids.append(summary.id) }
        }
        if node.isActive && node.isManager {
            for service in try await docker.listServices(labelFilters: [Self.enableLabel])
            where Self.isEnabled(service.labels[Self.enableLabel]) {
                let tasks = try await docker.listContainers(
                    labelFilters: ["\(ContainerDetails.swarmServiceIDLabel)=\(service.id)"])
                let running = tasks.filter { $0.state == "running" }
                ids += running.filter { !ids.contains($0.id) }.map(\.id)
                if running.isEmpty {
                    let replicas: String
                    switch service.mode {
                    case .replicated(let count): replicas = "\(count) replica(s)"
                    case .global: replicas = "global"
                    case .other(let mode): replicas = mode
                    }
                    notes.append("Swarm service \(service.name) is labelled \(Self.enableLabel)=true but has no running "
                        + "task on this node (\(replicas)): nothing of it is backed up here. Its tasks run on other "
                        + "nodes (whose StackVault backs them up), or it is scaled to 0 (no container holds its data "
                        + "then: scale it up, and the next run backs it up)")
                }
            }
        }
        var details: [ContainerDetails] = []
        var services: [String: SwarmService] = [:]
        for id in ids {
            let container: ContainerDetails
            do {
                container = try await docker.inspectContainer(id)
            } catch let error as StackVaultError where error.code == .dockerAPI {
                // Removed since it was listed (a stack taken down meanwhile): left out, so that the other stacks are
                // still planned. A labelled container that is still there but cannot be inspected fails the plan.
                if labelled.contains(id),
                   try await docker.listContainers(labelFilters: []).contains(where: { $0.id == id }) {
                    throw error
                }
                continue
            }
            if let serviceID = container.swarmServiceID, node.isManager, services[serviceID] == nil {
                do {
                    services[serviceID] = try await docker.inspectService(serviceID)
                } catch let error as StackVaultError where error.code == .dockerAPI {
                    // A stack torn down meanwhile: its service is gone and its task goes with it. Any other
                    // failure fails the plan.
                    let remaining = try await docker.listServices(labelFilters: [])
                    guard !remaining.contains(where: { $0.id == serviceID }) else { throw error }
                    continue
                }
            }
            details.append(container)
        }
        var plan = plan(for: details, swarm: SwarmView(node: node, services: services),
                        ownContainer: HolderIdentity.ownContainerID())
        plan.notes = notes
        return await checkDirectories(plan, containers: details)
    }

    /// What the planner knows of the swarm: this node, and the services of the tasks found (empty on a worker,
    /// whose API cannot inspect services).
    public struct SwarmView: Sendable {
        public var node: SwarmNode
        public var services: [String: SwarmService]

        public init(node: SwarmNode, services: [String: SwarmService]) {
            self.node = node
            self.services = services
        }

        public static let none = SwarmView(node: .inactive, services: [:])
    }

    /// `true` (any case) enables; anything else does not.
    static func isEnabled(_ value: String?) -> Bool {
        value?.trimmingCharacters(in: .whitespaces).lowercased() == "true"
    }

    /// The labels that count for `container`: its own, plus for a Swarm task its service's (`deploy.labels`); the
    /// container's value wins where both set a key (it is the more specific: Compose `labels:` of the service, or
    /// `--container-label`). Also says where each `backup.*` label came from, and warns of overridden values.
    static func effectiveLabels(of container: ContainerDetails, service: SwarmService?)
        -> (labels: [String: String], sources: [String: String], warnings: [String])
    {
        guard let service else {
            let keys = container.labels.keys.filter { $0.hasPrefix(labelPrefix) }
            return (container.labels, Dictionary(uniqueKeysWithValues: keys.map { ($0, "container") }), [])
        }
        var labels = container.labels
        var sources: [String: String] = [:]
        var warnings: [String] = []
        for (key, value) in service.labels where key.hasPrefix(labelPrefix) {
            if let own = container.labels[key] {
                sources[key] = "container, overrides service"
                if own != value {
                    warnings.append("label \(key) is \(own) on the container and \(value) in the service spec "
                        + "(deploy.labels) of \(service.name): the container's value is used")
                }
            } else {
                labels[key] = value
                sources[key] = "service"
            }
        }
        for key in container.labels.keys where key.hasPrefix(labelPrefix) && sources[key] == nil {
            sources[key] = "container"
        }
        return (labels, sources, warnings)
    }

    /// The plan for already-inspected containers (and, for Swarm tasks, what is known of their services): the
    /// labelled ones are backed up, any of them may be stopped (`StopSet`); `ownContainer` (this process's) never is.
    public func plan(for containers: [ContainerDetails], swarm: SwarmView = .none, ownContainer: String? = nil)
        -> BackupPlan
    {
        var byStack: [String: [ContainerDetails]] = [:]
        var merged: [String: (sources: [String: String], warnings: [String])] = [:]
        for var container in containers {
            let service = container.swarmServiceID.flatMap { swarm.services[$0] }
            let effective = Self.effectiveLabels(of: container, service: service)
            container.labels = effective.labels
            guard Self.isEnabled(container.labels[Self.enableLabel]) else { continue }
            if container.swarmServiceID != nil && !container.isRunning { continue }
            merged[container.id] = (effective.sources, effective.warnings)
            byStack[container.stackName ?? container.name, default: []].append(container)
        }
        let stacks = byStack.keys.sorted().map { name in
            // The tasks of one Swarm service are one service of the plan: its first running task, by slot.
            var members: [ContainerDetails] = []
            var tasks: [String: [ContainerDetails]] = [:]
            for container in byStack[name]! {
                if let serviceID = container.swarmServiceID {
                    if tasks[serviceID] == nil { members.append(container) }
                    tasks[serviceID, default: []].append(container)
                } else {
                    members.append(container)
                }
            }
            for (serviceID, list) in tasks {
                let sorted = list.sorted { ($0.swarmSlot ?? 0, $0.name) < ($1.swarmSlot ?? 0, $1.name) }
                tasks[serviceID] = sorted
                members = members.map { $0.swarmServiceID == serviceID ? sorted[0] : $0 }
            }
            members.sort {
                ($0.serviceName ?? $0.name, $0.name) < ($1.serviceName ?? $1.name, $1.name)
            }
            let serviceCounts = Dictionary(members.map { ($0.serviceName ?? $0.name, 1) }, uniquingKeysWith: +)
            let services = members.map { container -> ServicePlan in
                let service = container.serviceName ?? container.name
                // Replicas of one service would share a folder: give each its container's name instead.
                let folder = serviceCounts[service, default: 0] > 1 ? container.name : service
                var plan = planService(folder: folder, container: container)
                let origin = merged[container.id] ?? ([:], [])
                plan.labelSources = origin.sources
                plan.warnings = origin.warnings + plan.warnings
                if let serviceID = container.swarmServiceID {
                    planSwarm(&plan, container: container, tasks: tasks[serviceID] ?? [container],
                              service: swarm.services[serviceID], node: swarm.node)
                }
                return plan
            }
            let plain = StackPlan(name: name, services: services)
            let (stops, warnings) = StopSet.plan(plain, containers: containers, own: ownContainer)
            return StackPlan(name: name, services: services, stops: stops, stopWarnings: warnings)
        }
        return BackupPlan(stacks: stacks)
    }

    /// Adds what a Swarm task needs: its service, and why its directories cannot be copied where they cannot.
    ///
    /// Scaling a service to 0 makes Swarm remove its task containers with their anonymous volumes (checked on
    /// Docker 20.10: the containers are gone, not stopped), so directories are read from a short-lived container
    /// that mounts the task's named volumes and bind mounts; a directory on neither would be gone.
    private func planSwarm(_ plan: inout ServicePlan, container: ContainerDetails, tasks: [ContainerDetails],
                           service: SwarmService?, node: SwarmNode)
    {
        let name = container.labels[ContainerDetails.swarmServiceNameLabel] ?? plan.service
        let mode: String
        var replicas: Int?
        switch service?.mode {
        case .replicated:
            mode = "replicated"
            replicas = service?.replicasToRestore
        case .global: mode = "global"
        case .other(let key): mode = key
        case nil: mode = "unknown"
        }
        plan.swarmService = SwarmServicePlan(id: container.swarmServiceID ?? "", name: name, mode: mode,
                                             replicas: replicas, tasksOnNode: tasks.map(\.name))
        if let service, let from = service.labels[SwarmService.scaledFromLabel] {
            plan.warnings.append("\(name) is scaled to 0 by the StackVault of host "
                + "\(service.labels[SwarmService.scaledByLabel] ?? "?") (stackvault.scaled-from=\(from)): it goes back "
                + "to \(from) replicas after that run, or after a restart of that StackVault if it was killed")
        }
        if service == nil && !node.isManager {
            plan.warnings.append("this node is a Swarm worker, whose Docker API cannot read service specs: labels "
                + "under deploy.labels of \(name) are not seen here, only the task container's labels")
        }
        guard plan.stop else { return }
        let culprit = "service \(name) (stack \(container.stackName ?? name))"
        if !node.isManager {
            plan.errors.append("\(culprit) must be scaled to 0 while its directories are copied, which only a Swarm "
                + "manager can do, and this StackVault runs on a worker node: run StackVault on a manager node and "
                + "place the service there (deploy.placement.constraints: node.role == manager), or remove its "
                + "backup.volume-path labels and back up its data with a dump label")
            return
        }
        if case .global = service?.mode {
            plan.errors.append("\(culprit) is a global service, which Swarm cannot scale to 0 for the copy of its "
                + "directories: deploy it with mode: replicated, or remove its backup.volume-path labels")
            return
        }
        if replicas == nil {
            plan.errors.append("\(culprit) runs in mode \(mode), which StackVault cannot scale down and back: remove "
                + "its backup.volume-path labels")
            return
        }
        for path in plan.components(needing: .stopped).compactMap(\.spec.path)
        where ContainerMount.covering(path, in: container.mounts)?.outlivesSwarmTask != true {
            plan.errors.append("\(culprit): \(path) is not on a named volume or bind mount; scaling the service "
                + "to 0 (for the copy) makes Swarm remove the task container with its own layer and anonymous "
                + "volumes, so there would be nothing to copy: keep the data on a named volume")
        }
        let sources = { (task: ContainerDetails) in task.mounts.compactMap(\.reference).sorted() }
        for other in tasks.dropFirst() where sources(other) != sources(container) {
            plan.warnings.append("task \(other.name) of \(name) on this node has other volumes than \(container.name) "
                + "(\(sources(other).joined(separator: ", "))); only \(container.name)'s are copied")
        }
    }

    private func planService(folder: String, container: ContainerDetails) -> ServicePlan {
        var warnings: [String] = []
        var errors: [String] = []
        var results: [(strategy: any BackupStrategy, components: [ComponentSpec], error: String?)] = []

        for key in container.labels.keys.sorted() where key.hasPrefix(Self.labelPrefix) && key != Self.enableLabel {
            let label = BackupLabel(key: key, value: container.labels[key]!)
            guard let strategy = strategies.strategy(forLabelKey: key) else {
                warnings.append("unknown label '\(key)' is ignored (known: \(knownKeys))")
                continue
            }
            do {
                let components = try strategy.plan(label: label, service: folder, container: container)
                if strategy.requirement == .stopped,
                    let problem = Self.mountProblem(components, label: label, service: folder, container: container)
                {
                    results.append((strategy, [], problem))
                } else {
                    results.append((strategy, components, nil))
                }
            } catch {
                results.append((strategy, [], "\(error)"))
            }
        }

        // Copying live database files is unsafe and a stopped database cannot be dumped: when a container is
        // stopped for a directory backup, its logical dumps are skipped.
        let stopsContainer = results.contains { $0.strategy.requirement == .stopped && !$0.components.isEmpty }
        if stopsContainer {
            results.removeAll { result in
                guard result.strategy.requirement == .running else { return false }
                if !result.components.isEmpty || result.error != nil {
                    warnings.append("\(result.strategy.type) skipped: this container is stopped for its "
                        + "directory backup, and a stopped database cannot be dumped (copying live database files "
                        + "would be unsafe); its data is covered only by the directory copy")
                }
                return true
            }
        }
        errors += results.compactMap(\.error)
        let components = results.flatMap { result in
            result.components.map { PlannedComponent(spec: $0, strategy: result.strategy) }
        }
        if components.isEmpty && errors.isEmpty {
            warnings.append("backup.enable=true but no backup.* label says what to back up; nothing will be saved")
        }
        if !container.isRunning && components.contains(where: { $0.requirement == .running }) {
            errors.append("container \(container.name) is not running, so its database cannot be dumped; "
                + "start it or remove the dump label")
        }
        return ServicePlan(
            service: folder,
            container: container.name,
            containerID: container.id,
            image: container.image,
            running: container.isRunning,
            components: components,
            stop: stopsContainer && container.isRunning,
            warnings: warnings,
            errors: errors,
            imageID: container.imageID ?? ""
        )
    }

    /// Why the paths of `components`, copied while the container is stopped, cannot be backed up because of a
    /// mount; nil when no mount is in the way.
    ///
    /// Stopping a container unmounts its tmpfs mounts and their content is gone (docs.docker.com, "tmpfs mounts").
    /// A path on a tmpfs (or below one) would be archived empty; a tmpfs *below* the path would be left out of the
    /// archive without a word (the copy would hold only the empty mount point). Any other mount point below the
    /// path (a volume, a bind mount, Docker's own `/etc/hosts`) makes an archive that no restore can put back: the
    /// restore would have to remove the mount point (`DirectoryReplacement` refuses). All are refused here, so the
    /// archive always holds what was there and can be restored.
    static func mountProblem(_ components: [ComponentSpec], label: BackupLabel, service: String,
                             container: ContainerDetails) -> String?
    {
        let tmpfs = container.mounts.filter { $0.type == "tmpfs" }.map(\.destination)
        let isBelow = ContainerMount.isPath(_:below:)
        let culprit = "label \(label.key)=\(label.value) of service \(service) (container \(container.name))"
        for path in components.compactMap(\.path) {
            if let mount = tmpfs.filter({ path == $0 || isBelow(path, $0) }).max(by: { $0.count < $1.count }) {
                return "\(culprit): \(path) is on the tmpfs mount \(mount), which is emptied when the container "
                    + "stops, so it cannot be backed up this way (directories are copied while the container is "
                    + "stopped); keep the data on a volume or bind mount instead, or remove the label"
            }
            if let mount = tmpfs.filter({ isBelow($0, path) }).min() {
                return "\(culprit): \(path) contains the tmpfs mount \(mount), which is emptied when the container "
                    + "stops, so its content would be missing from the archive; label directories that hold no "
                    + "tmpfs, or move the tmpfs out of \(path)"
            }
            if let nested = container.mountPoints(below: path).first {
                let docker = container.dockerFiles.contains(nested.path)
                return "\(culprit): \(path) contains the mount point \(nested.path) (\(nested.what)), which a restore "
                    + "of \(path) could not replace (it would have to remove the mount point), so its archives could "
                    + "not be restored; label directories that contain no mount point"
                    + (docker ? " (keep the data in a directory of its own, ideally a volume)"
                        : " (a mounted directory can be labelled itself: backup.volume-path.<name>=\(nested.path))")
            }
        }
        return nil
    }

    private var knownKeys: String {
        strategies.strategies.map { $0.matchesKeyPrefix ? "\($0.labelKey)<name>" : $0.labelKey }
            .joined(separator: ", ")
    }
}
