public import Foundation

/// What the user asked `restore` to do besides the archive: which services, and into which containers.
public struct RestoreOptions: Sendable, Equatable {
    /// Restore only these services (the archive's service names); empty = all.
    public var services: [String]
    /// Restore into this Compose project (or standalone container) instead of the archive's own stack.
    public var intoStack: String?
    /// Explicit target containers (name or id) by the archive's service name; they win over `intoStack`.
    public var containerMap: [String: String]

    public init(services: [String] = [], intoStack: String? = nil, containerMap: [String: String] = [:]) {
        self.services = services
        self.intoStack = intoStack
        self.containerMap = containerMap
    }

    /// Parses `--map service=container` values.
    public static func parseMap(_ values: [String]) throws -> [String: String] {
        var map: [String: String] = [:]
        for value in values {
            let parts = value.split(separator: "=", maxSplits: 1).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw StackVaultError(.invalidConfiguration, "--map '\(value)': expected SERVICE=CONTAINER")
            }
            guard map[parts[0]] == nil else {
                throw StackVaultError(.invalidConfiguration, "--map names the service '\(parts[0])' twice")
            }
            map[parts[0]] = parts[1]
        }
        return map
    }
}

/// One component to restore, the strategy that restores it (resolved once from the manifest's type name, when
/// the restore is planned), and where it goes.
public struct RestoreStep: Sendable, Encodable {
    public var component: Manifest.ManifestComponent
    public var strategy: any RestoreStrategy
    /// The archive's service.
    public var service: String
    public var container: String
    public var containerID: String
    /// Whether the container runs or is stopped while the step runs.
    public var requirement: ContainerRequirement
    /// Whether the container runs now (a stopped one is left stopped after a file restore).
    public var containerRunning: Bool
    /// What the strategy will do, including what happens to existing data.
    public var action: String
    /// For a Swarm task: its service, scaled to 0 (instead of stopping the container) while a directory is
    /// replaced, and back to its replica count afterwards.
    public var swarmService: ScaledService?

    private enum CodingKeys: String, CodingKey {
        case component, service, container, containerID, requirement, containerRunning, action, swarmService
    }
}

/// Everything `restore` will do, decided before anything is touched; `--dry-run` prints it.
public struct RestorePlan: Sendable, Encodable {
    public var archive: String
    /// Where the archive comes from (target URL and name).
    public var origin: String
    public var sourceStack: String
    public var targetStack: String
    /// When the backup started, and on which host.
    public var backedUpAt: Date
    public var backedUpOn: String
    /// In execution order: replays into running containers first, then directories of stopped containers.
    public var steps: [RestoreStep]
    /// Other running containers stopped while the directories are replaced, labelled or not, with why: those that
    /// mount a replaced directory, and those sharing the network namespace of a stopped one (`StopSet`, as a
    /// backup's copy does). Filled by `RestoreEngine.plan`, which sees every container of the host.
    public var alsoStopped: [PlannedStop] = []
    /// What `plan` would warn about too: a sharing container left running by `backup.stop=false` or as a Swarm task.
    public var warnings: [String] = []

    /// Running containers that are stopped during the restore and started again afterwards.
    public var containersToStop: [String] {
        var seen = Set<String>()
        return (steps.filter { $0.requirement == .stopped && $0.containerRunning && $0.swarmService == nil }
            .map(\.container) + alsoStopped.map(\.container)).filter { seen.insert($0).inserted }
    }

    /// Swarm services that are scaled to 0 during the restore and back afterwards (full names).
    public var servicesToScale: [String] {
        var seen = Set<String>()
        return steps.filter { $0.requirement == .stopped }.compactMap(\.swarmService?.name)
            .filter { seen.insert($0).inserted }
    }

    /// The text `--dry-run` prints and the confirmation shows.
    public func rendered() -> String {
        var out = "Restore \(archive)\n"
        out += "  from \(origin)\n"
        out += "  backup of stack \(sourceStack), taken \(Self.format(backedUpAt)) on \(backedUpOn)\n"
        out += "  into stack \(targetStack)\n"
        for (number, step) in steps.enumerated() {
            let state: String
            switch (step.requirement, step.containerRunning) {
            case (.running, _): state = "running, keeps running"
            case (.stopped, _) where step.swarmService != nil:
                state = "Swarm service \(step.swarmService!.name) scaled to 0 meanwhile, scaled back afterwards"
            case (.stopped, true): state = "stopped meanwhile, started again afterwards"
            case (.stopped, false): state = "not running, stays stopped"
            }
            out += "\n  \(number + 1). service \(step.service) -> container \(step.container) (\(state))\n"
            out += Self.wrap(step.action, indent: "     ")
        }
        let stopped = containersToStop
        out += "\n"
        if !stopped.isEmpty {
            out += "Stopped during the restore and started again: \(stopped.joined(separator: ", ")).\n"
        }
        for stop in alsoStopped {
            out += Self.wrap("\(stop.container) is stopped too: it \(stop.reason).", indent: "  ")
        }
        for warning in warnings {
            out += Self.wrap("warning: \(warning)", indent: "  ")
        }
        if !servicesToScale.isEmpty {
            out += "Scaled to 0 during the restore and back: \(servicesToScale.joined(separator: ", ")).\n"
        }
        out += "Nothing else on this host is changed.\n"
        return out
    }

    /// `2026-11-27 13:00:00 Europe/Berlin`: `date` in the zone of `TZ` (UTC when unset), the zone named; the one
    /// way every command shows a time to people (see `DisplayTime`).
    public static func format(_ date: Date) -> String {
        DisplayTime.named(date)
    }

    /// Wraps `text` at 110 columns, every line indented.
    static func wrap(_ text: String, indent: String) -> String {
        var out = ""
        var line = indent
        for word in text.split(separator: " ") {
            if line.count > indent.count && line.count + 1 + word.count > 110 {
                out += line + "\n"
                line = indent
            }
            line += (line.count > indent.count ? " " : "") + word
        }
        return out + line + "\n"
    }
}

/// Decides a `RestorePlan` from a verified manifest and the containers found on the host. Pure: it reads nothing
/// and changes nothing.
public enum RestorePlanner {
    public static func plan(
        manifest: Manifest,
        origin: String,
        options: RestoreOptions,
        strategies: StrategyRegistry,
        containers: [ContainerDetails]
    ) throws -> RestorePlan {
        let services = manifest.components.reduce(into: [String]()) { list, component in
            if !list.contains(component.service) { list.append(component.service) }
        }
        let unknown = options.services.filter { !services.contains($0) }
            + options.containerMap.keys.sorted().filter { !services.contains($0) }
        guard unknown.isEmpty else {
            throw StackVaultError(
                .invalidConfiguration,
                "the archive \(manifest.archiveName) has no service \(unknown.joined(separator: ", ")) "
                    + "(its services: \(services.joined(separator: ", ")))")
        }
        let targetStack = options.intoStack ?? manifest.stack
        var steps: [RestoreStep] = []
        for component in manifest.components
        where options.services.isEmpty || options.services.contains(component.service) {
            guard let known = strategies.strategy(forType: component.type) else {
                throw StackVaultError(
                    .invalidConfiguration,
                    "the component \(component.archivePath) was written by the strategy '\(component.type)', which "
                        + "this stackvault does not know (use a newer stackvault)")
            }
            guard let strategy = known as? any RestoreStrategy else {
                throw StackVaultError(
                    .invalidConfiguration,
                    "the \(component.type) strategy cannot restore \(component.archivePath); leave the service out "
                        + "(--service) and restore it by hand from the archive (tar --zstd -xpf)")
            }
            let container = try resolve(service: component.service, sourceStack: manifest.stack,
                                        targetStack: targetStack, map: options.containerMap, candidates: containers)
            do {
                try strategy.checkRestore(component, into: container)
            } catch {
                throw StackVaultError(
                    .invalidConfiguration,
                    "cannot restore \(component.archivePath) into container \(container.name): \(error)")
            }
            var swarmService: ScaledService?
            if let serviceID = container.swarmServiceID {
                swarmService = ScaledService(
                    id: serviceID, name: container.labels[ContainerDetails.swarmServiceNameLabel] ?? serviceID,
                    taskContainerID: container.id)
                if strategy.restoreRequirement == .stopped, let path = component.sourcePath,
                    let problem = swarmVolumeProblem(path: path, container: container)
                {
                    throw StackVaultError(.invalidConfiguration,
                                          "cannot restore \(component.archivePath) into Swarm service "
                                              + "\(swarmService!.name): \(problem)")
                }
            }
            steps.append(RestoreStep(
                component: component, strategy: strategy, service: component.service, container: container.name,
                containerID: container.id, requirement: strategy.restoreRequirement,
                containerRunning: container.isRunning,
                action: strategy.describeRestore(component, into: container), swarmService: swarmService))
        }
        guard !steps.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "the archive \(manifest.archiveName) has nothing to restore")
        }
        for step in steps where step.requirement == .running && !step.containerRunning {
            throw StackVaultError(
                .invalidConfiguration,
                "container \(step.container) (service \(step.service)) is not running, and restoring "
                    + "\(step.component.archivePath) replays it through the running database: start it first")
        }
        let byContainer = Dictionary(grouping: steps, by: \.containerID)
        for (_, group) in byContainer where Set(group.map(\.requirement)).count > 1 {
            throw StackVaultError(
                .invalidConfiguration,
                "container \(group[0].container) would have to run (for "
                    + "\(group.first { $0.requirement == .running }!.component.archivePath)) and be stopped (for "
                    + "\(group.first { $0.requirement == .stopped }!.component.archivePath)) at once; restore those "
                    + "services separately with --service")
        }
        return RestorePlan(
            archive: manifest.archiveName, origin: origin, sourceStack: manifest.stack, targetStack: targetStack,
            backedUpAt: manifest.startedAt, backedUpOn: manifest.host,
            steps: steps.filter { $0.requirement == .running } + steps.filter { $0.requirement == .stopped })
    }

    /// Why a directory of a Swarm task cannot be replaced while its service is scaled to 0: Swarm removes the task
    /// container with its own layer and anonymous volumes, so only named volumes and bind mounts outlive it.
    static func swarmVolumeProblem(path: String, container: ContainerDetails) -> String? {
        guard ContainerMount.covering(path, in: container.mounts)?.outlivesSwarmTask == true else {
            return "\(path) is not on a named volume or bind mount of task \(container.name), and Swarm removes the "
                + "task's container with its own layer and anonymous volumes when the service is scaled to 0"
        }
        return nil
    }

    /// The container that receives `service`:
    /// 1. the one `--map` names for it (by name, id or id prefix);
    /// 2. else in the Compose project (or Swarm stack) `targetStack`: the container named like the service (replicas
    ///    are archived under their container names), else the only container of that service, or for a Swarm
    ///    service the running task of the lowest slot;
    /// 3. else, for the archive of a standalone container (its stack and service are the container's name), the
    ///    standalone container named `targetStack`.
    public static func resolve(
        service: String,
        sourceStack: String,
        targetStack: String,
        map: [String: String],
        candidates: [ContainerDetails]
    ) throws -> ContainerDetails {
        if let reference = map[service] {
            let matches = candidates.filter {
                $0.name == reference || $0.id == reference || (reference.count >= 12 && $0.id.hasPrefix(reference))
            }
            guard let match = matches.first else {
                throw StackVaultError(.invalidConfiguration,
                                      "--map \(service)=\(reference): no container is named \(reference)")
            }
            return match
        }
        let project = candidates.filter { $0.stackName == targetStack }
        if let named = project.first(where: { $0.name == service }) { return named }
        let ofService = project.filter { $0.serviceName == service }
        if ofService.count == 1 { return ofService[0] }
        // The running tasks of one Swarm service on this node: the archive holds one copy, restored through the
        // first task by slot (its service is scaled to 0 for directories, so every task sees the result).
        if let serviceID = ofService.first?.swarmServiceID, ofService.allSatisfy({ $0.swarmServiceID == serviceID }) {
            return ofService.min { ($0.swarmSlot ?? 0, $0.name) < ($1.swarmSlot ?? 0, $1.name) }!
        }
        if ofService.count > 1 {
            throw StackVaultError(
                .invalidConfiguration,
                "service \(service) of stack \(targetStack) has \(ofService.count) containers "
                    + "(\(ofService.map(\.name).sorted().joined(separator: ", "))): choose one with "
                    + "--map \(service)=CONTAINER")
        }
        if service == sourceStack,
            let standalone = candidates.first(where: { $0.name == targetStack && $0.stackName == nil })
        {
            return standalone
        }
        throw StackVaultError(
            .invalidConfiguration,
            "no container of service \(service) in stack \(targetStack)"
                + (project.isEmpty ? " (no container belongs to a Compose project of that name)" : "")
                + ": start the stack, or name the container with --map \(service)=CONTAINER")
    }
}
