public import Foundation
public import Logging

/// How one step of a restore went.
public struct RestoreStepResult: Sendable, Codable {
    public enum Outcome: String, Sendable, Codable {
        case restored
        case failed
        /// Not attempted because an earlier step failed or the run was cancelled.
        case skipped
    }

    public var service: String
    public var container: String
    public var archivePath: String
    public var outcome: Outcome
    public var seconds: Double
    public var error: String?
}

/// Puts a verified archive back: decides the plan from the host's containers and runs it.
///
/// Order and guarantees:
/// - nothing is planned before the archive passed `LocalArchive.check` (the caller's duty; `restore` commands
///   refuse a failed check before calling here), and nothing is touched before the whole plan is decided;
/// - replays into running containers (database dumps) run first, one at a time; then the containers whose
///   directories are replaced are stopped together, their directories replaced, and they are started again on
///   every path (success, error, SIGTERM) through `ContainerStopGuard`; containers that were not running stay
///   stopped;
/// - the first failing step stops the run; later steps are reported as skipped.
public struct RestoreEngine: Sendable {
    public let docker: any DockerEngine
    public let strategies: StrategyRegistry
    public let stopTimeoutSeconds: Int
    /// This host (`STACKVAULT_HOST` or the engine's name), recorded on Swarm services it scales to 0.
    public let host: String
    public let logger: Logger

    public init(docker: any DockerEngine, strategies: StrategyRegistry, stopTimeoutSeconds: Int,
                host: String = ProcessInfo.processInfo.hostName, logger: Logger) {
        self.docker = docker
        self.strategies = strategies
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.host = host
        self.logger = logger
    }

    /// Finds the candidate containers on the host and decides the plan. Reads only.
    public func plan(manifest: Manifest, origin: String, options: RestoreOptions) async throws -> RestorePlan {
        let target = options.intoStack ?? manifest.stack
        var candidates: [ContainerDetails] = []
        // A Compose project, a Swarm stack, or a Swarm service made with `docker service create`; of Swarm tasks
        // only the running ones (the others are Swarm's task history).
        let filters = ["com.docker.compose.project=\(target)", "\(ContainerDetails.stackNamespaceLabel)=\(target)",
                       "\(ContainerDetails.swarmServiceNameLabel)=\(target)"]
        for filter in filters {
            for summary in try await docker.listContainers(labelFilters: [filter])
            where !candidates.contains(where: { $0.id == summary.id }) {
                guard summary.labels[ContainerDetails.swarmServiceIDLabel] == nil || summary.state == "running" else {
                    continue
                }
                candidates.append(try await docker.inspectContainer(summary.id))
            }
        }
        var references = Array(options.containerMap.values)
        if candidates.isEmpty { references.append(target) }
        for reference in references where !candidates.contains(where: { $0.name == reference || $0.id == reference }) {
            do {
                candidates.append(try await docker.inspectContainer(reference))
            } catch let error as StackVaultError where error.code == .dockerAPI {
                continue  // not found: `RestorePlanner` names what is missing
            }
        }
        var plan = try RestorePlanner.plan(manifest: manifest, origin: origin, options: options,
                                           strategies: strategies, containers: candidates)
        try await addStopSet(to: &plan, candidates: candidates)
        return plan
    }

    /// The containers that share what the plan's directories replace, and their network-namespace dependents
    /// (`StopSet.sharing`, the rule of a backup's copy): stopped with the targets, started again after them.
    func addStopSet(to plan: inout RestorePlan, candidates: [ContainerDetails]) async throws {
        let fileSteps = plan.steps.filter { $0.requirement == .stopped }
        guard !fileSteps.isEmpty else { return }
        var running: [ContainerDetails] = []
        for summary in try await docker.listContainers(labelFilters: []) where summary.state == "running" {
            if let known = candidates.first(where: { $0.id == summary.id }) {
                running.append(known)
            } else if let details = try? await docker.inspectContainer(summary.id) {
                running.append(details)  // not found: removed since it was listed
            }
        }
        var touched: [(path: String, what: String, service: String)] = []
        var targets: [PlannedStop] = []
        for step in fileSteps {
            guard let container = candidates.first(where: { $0.id == step.containerID }),
                  let path = step.component.sourcePath else { continue }
            touched += StopSet.hostDirectories(of: path, in: container, service: step.service)
            if step.containerRunning && step.swarmService == nil
                && !targets.contains(where: { $0.containerID == step.containerID }) {
                targets.append(PlannedStop(container: step.container, containerID: step.containerID,
                                           service: step.service, reason: "restored"))
            }
        }
        let scaled = Set(fileSteps.compactMap { $0.swarmService?.id })
        let (stops, warnings) = StopSet.sharing(touched, stops: targets, containers: running,
                                                own: HolderIdentity.ownContainerID(), scaled: scaled,
                                                verb: "restored")
        plan.alsoStopped = stops.filter { stop in !targets.contains { $0.containerID == stop.containerID } }
        plan.warnings = warnings
    }

    /// Runs `plan` with components from `source`. Never throws for a failing step (see the results), only when
    /// containers could not be started again.
    public func run(_ plan: RestorePlan, source: any RestoreSource) async throws -> [RestoreStepResult] {
        var results: [RestoreStepResult] = []
        var failed = false

        for step in plan.steps where step.requirement == .running {
            results.append(await run(step, plan: plan, source: source, skip: failed))
            failed = failed || results.last!.outcome != .restored
        }
        let fileSteps = plan.steps.filter { $0.requirement == .stopped }
        guard !fileSteps.isEmpty else { return results }
        if failed || Task.isCancelled {
            return results + fileSteps.map { skipped($0) }
        }
        let toStop = plan.steps.filter { $0.requirement == .stopped && $0.containerRunning && $0.swarmService == nil }
            .reduce(into: [StoppedContainer]()) { list, step in
                if !list.contains(where: { $0.id == step.containerID }) {
                    list.append(StoppedContainer(id: step.containerID, name: step.container))
                }
            } + plan.alsoStopped.map(\.stoppedContainer)
        // Swarm services are scaled to 0 instead (a stopped task is replaced by Swarm); their directories are
        // replaced through a reader container that mounts the task's volumes (`SwarmScaleGuard`).
        let toScale = fileSteps.compactMap(\.swarmService).reduce(into: [ScaledService]()) { list, service in
            if !list.contains(where: { $0.id == service.id }) { list.append(service) }
        }
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: stopTimeoutSeconds, logger: logger)
        // A helper image still to be imported is made before anything stops (see `HelperImage`).
        if plan.steps.contains(where: { $0.requirement == .stopped }) { _ = await docker.helperImage(build: true) }
        let scaleGuard = SwarmScaleGuard(docker: docker, host: host, logger: logger)
        do {
            let (fileResults, _) = try await stopGuard.run(toStop, stack: plan.targetStack, purpose: "restore") {
                try await scaleGuard.run(toScale, stack: plan.targetStack, purpose: "restore") { readers in
                    var fileResults: [RestoreStepResult] = []
                    var failed = false
                    for step in fileSteps {
                        let reader = step.swarmService.flatMap { readers[$0.id] }
                        fileResults.append(await run(step, plan: plan, source: source, skip: failed, into: reader))
                        failed = failed || fileResults.last!.outcome != .restored
                    }
                    return fileResults
                }
            }
            results += fileResults
        } catch let error as ContainersLeftStopped {
            throw StackVaultError(.containerRestart, "\(error)")
        } catch let error as StackVaultError where error.code == .containerRestart {
            throw error
        } catch {
            // The stop itself failed: nothing was written.
            results += fileSteps.map {
                RestoreStepResult(service: $0.service, container: $0.container, archivePath: $0.component.archivePath,
                                  outcome: .failed, seconds: 0, error: "\(error)")
            }
        }
        return results
    }

    private func run(_ step: RestoreStep, plan: RestorePlan, source: any RestoreSource, skip: Bool,
                     into reader: ContainerDetails? = nil) async -> RestoreStepResult
    {
        if skip || Task.isCancelled { return skipped(step) }
        let started = ContinuousClock.now
        var log = logger
        log[metadataKey: "stack"] = "\(plan.targetStack)"
        log.info("\(step.service): restoring \(step.component.archivePath) into container \(step.container)")
        do {
            let container = if let reader { reader } else { try await docker.inspectContainer(step.containerID) }
            let component = step.component
            let progress = ProgressReporter(
                operation: "restore",
                subject: (component.name.map { "\(component.type) \($0)" } ?? component.type)
                    + " (service \(step.service))",
                total: ProgressTotal(bytes: component.sizeBytes, estimated: false), logger: log
            ).start()
            defer { progress.finish() }
            let context = RestoreContext(docker: docker, logger: log, stack: plan.targetStack, service: step.service,
                                         archive: source.reporting(to: progress))
            try await step.strategy.restore(step.component, into: container, context: context)
            let seconds = (ContinuousClock.now - started).seconds
            log.info("\(step.service): \(step.component.archivePath) restored in \(String(format: "%.1f s", seconds))")
            return RestoreStepResult(service: step.service, container: step.container,
                                     archivePath: step.component.archivePath, outcome: .restored, seconds: seconds,
                                     error: nil)
        } catch {
            log.error("\(step.service): restoring \(step.component.archivePath) failed: \(error)")
            return RestoreStepResult(service: step.service, container: step.container,
                                     archivePath: step.component.archivePath, outcome: .failed,
                                     seconds: (ContinuousClock.now - started).seconds, error: "\(error)")
        }
    }

    private func skipped(_ step: RestoreStep) -> RestoreStepResult {
        RestoreStepResult(service: step.service, container: step.container, archivePath: step.component.archivePath,
                          outcome: .skipped, seconds: 0, error: nil)
    }
}
