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

    /// Discovers every container labelled `backup.enable=true`, running or stopped, grouped into stacks.
    /// Running containers without the label are inspected too: those that share a copied directory are stopped
    /// with it (`StopSet`).
    public func makePlan() async throws -> BackupPlan {
        let summaries = try await docker.listContainers(labelFilters: [])
        var details: [ContainerDetails] = []
        for summary in summaries where Self.isEnabled(summary.labels[Self.enableLabel]) || summary.state == "running" {
            do {
                details.append(try await docker.inspectContainer(summary.id))
            } catch let error as StackVaultError where error.code == .dockerAPI
                && !Self.isEnabled(summary.labels[Self.enableLabel])
            {
                continue  // removed since it was listed
            }
        }
        return plan(for: details, ownContainer: HolderIdentity.ownContainerID())
    }

    /// `true` (any case) enables; anything else does not.
    static func isEnabled(_ value: String?) -> Bool {
        value?.trimmingCharacters(in: .whitespaces).lowercased() == "true"
    }

    /// The plan for already-inspected containers: the labelled ones are backed up, any of them may be stopped
    /// (`StopSet`).
    public func plan(for containers: [ContainerDetails], ownContainer: String? = nil)
        -> BackupPlan
    {
        var byStack: [String: [ContainerDetails]] = [:]
        for container in containers where Self.isEnabled(container.labels[Self.enableLabel]) {
            byStack[container.composeProject ?? container.name, default: []].append(container)
        }
        let stacks = byStack.keys.sorted().map { name in
            let members = byStack[name]!.sorted {
                ($0.composeService ?? $0.name, $0.name) < ($1.composeService ?? $1.name, $1.name)
            }
            let serviceCounts = Dictionary(members.map { ($0.composeService ?? $0.name, 1) }, uniquingKeysWith: +)
            let services = members.map { container -> ServicePlan in
                let service = container.composeService ?? container.name
                // Replicas of one service would share a folder: give each its container's name instead.
                let folder = serviceCounts[service, default: 0] > 1 ? container.name : service
                return planService(folder: folder, container: container)
            }
            let plain = StackPlan(name: name, services: services)
            let (stops, warnings) = StopSet.plan(plain, containers: containers, own: ownContainer)
            return StackPlan(name: name, services: services, stops: stops, stopWarnings: warnings)
        }
        return BackupPlan(stacks: stacks)
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
                    let problem = Self.tmpfsProblem(components, label: label, service: folder, container: container)
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
            errors: errors
        )
    }

    /// Why the paths of `components`, copied while the container is stopped, cannot be backed up because of a
    /// tmpfs mount; nil when no tmpfs is in the way.
    ///
    /// Stopping a container unmounts its tmpfs mounts and their content is gone (docs.docker.com, "tmpfs mounts").
    /// A path on a tmpfs (or below one) would be archived empty; a tmpfs *below* the path would be left out of the
    /// archive without a word (the copy would hold only the empty mount point). Both are refused, so the archive
    /// always holds what was there; a restore refuses both layouts too (`DirectoryReplacement`).
    static func tmpfsProblem(_ components: [ComponentSpec], label: BackupLabel, service: String,
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
        }
        return nil
    }

    private var knownKeys: String {
        strategies.strategies.map { $0.matchesKeyPrefix ? "\($0.labelKey)<name>" : $0.labelKey }
            .joined(separator: ", ")
    }
}
