import Foundation
public import Logging
import Synchronization

/// A Swarm service that is scaled to 0 while its directories are read or replaced.
public struct ScaledService: Sendable, Equatable, Encodable {
    public var id: String
    /// The full service name (`<stack>_<service>`), for messages and the `docker service scale` hint.
    public var name: String
    /// The id of the task container on this node whose volumes are read or replaced.
    public var taskContainerID: String

    public init(id: String, name: String, taskContainerID: String) {
        self.id = id
        self.name = name
        self.taskContainerID = taskContainerID
    }
}

/// Scales Swarm services to 0, runs work while their tasks are gone, and scales them back to their former replica
/// count on every path: success, error, cancellation (SIGTERM). The Swarm counterpart of `ContainerStopGuard`:
/// stopping a task's container would only make Swarm start a replacement task.
///
/// - Needs a manager node (`GET /info` `Swarm.ControlAvailable`); a worker is refused before anything changes.
/// - The scale-down update also sets the service labels `stackvault.scaled-from=<replicas>` and
///   `stackvault.scaled-by=<host>`; the scale-up removes them. A StackVault killed in between leaves them, and
///   `recoverInterrupted` (run by every backup run and restore) scales the service back.
/// - Scaling to 0 makes Swarm remove the task containers (and their anonymous volumes). The body gets, per service,
///   a created, never started "reader" container from the task's image that mounts the task's named volumes and bind
///   mounts at the same paths; the archive API reads and writes through it. Readers are removed afterwards.
/// - "Gone" means: no task of the service may still run (`Status.State`) and no container of it runs on this node;
///   "back" means: as many tasks as before are `running`. Both are polled, for at most `waitLimit`.
public struct SwarmScaleGuard: Sendable {
    public let docker: any DockerEngine
    /// This StackVault's host (`stackvault.scaled-by`).
    public let host: String
    public let logger: Logger
    public let waitLimit: Duration
    public let pollInterval: Duration

    /// Label on reader containers, with the service they read.
    public static let readerLabel = "stackvault.swarm-reader"

    public init(docker: any DockerEngine, host: String, logger: Logger, waitLimit: Duration = .seconds(300),
                pollInterval: Duration = .milliseconds(500))
    {
        self.docker = docker
        self.host = host
        self.logger = logger
        self.waitLimit = waitLimit
        self.pollInterval = pollInterval
    }

    /// Scales `services` to 0, runs `body` with a reader container per service id, and scales them back whatever
    /// happens. Throws `StackVaultError(.containerRestart)` (logged as critical, with the command to run) when a
    /// service could not be scaled back.
    public func run<T: Sendable>(
        _ services: [ScaledService],
        stack: String,
        purpose: String,
        body: ([String: ContainerDetails]) async throws -> T
    ) async throws -> T {
        guard !services.isEmpty else { return try await body([:]) }
        let node = try await docker.swarmNode()
        guard node.isManager else {
            throw StackVaultError(.dockerAPI, "the \(purpose) of stack \(stack) must scale the Swarm service(s) "
                + "\(services.map(\.name).joined(separator: ", ")) to 0, which only a manager can do, and this "
                + "StackVault runs on a worker node: run it on a manager node")
        }
        // Everything needed to read the volumes and to scale back is read before anything changes.
        var tasks: [String: ContainerDetails] = [:]
        var counts: [String: Int] = [:]
        for service in services {
            tasks[service.id] = try await docker.inspectContainer(service.taskContainerID)
            let spec = try await docker.inspectService(service.id)
            // A service another run has at 0 (its crash record) goes back to the count recorded there, not to 0.
            guard let count = spec.replicasToRestore else {
                throw StackVaultError(.dockerAPI, "service \(service.name) is not replicated, so it cannot be scaled "
                    + "to 0 and back")
            }
            counts[service.id] = count
        }
        let docker = self.docker
        let log = logger
        let replicas = counts
        let (waitLimit, pollInterval) = (self.waitLimit, self.pollInterval)
        let scaledDown = ScaledSet()
        let restore = RunOnce {
            await Self.scaleBack(services.filter { scaledDown.contains($0.id) }, replicas: replicas, docker: docker,
                                 logger: log, waitLimit: waitLimit, pollInterval: pollInterval)
        }
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await withTaskCancellationHandler {
                for service in services {
                    let count = replicas[service.id] ?? 1
                    log.info("scaling Swarm service \(service.name) from \(count) to 0 for the \(purpose)")
                    scaledDown.insert(service.id)
                    try await docker.scaleService(service.id, replicas: 0, labels: [
                        SwarmService.scaledFromLabel: "\(count)", SwarmService.scaledByLabel: host,
                    ])
                }
                for service in services {
                    try await waitUntilGone(service)
                }
                var readers: [String: ContainerDetails] = [:]
                // Removed on every path, in a detached task: a cancelled run must not cancel its own cleanup.
                func removeReaders() async {
                    let ids = readers.values.map(\.id)
                    await Task.detached { for id in ids { try? await docker.removeContainer(id, force: true) } }.value
                }
                do {
                    for service in services {
                        readers[service.id] = try await makeReader(for: tasks[service.id]!, service: service)
                    }
                    let result = try await body(readers)
                    await removeReaders()
                    return result
                } catch {
                    await removeReaders()
                    throw error
                }
            } onCancel: {
                restore.trigger()
            })
        } catch {
            outcome = .failure(error)
        }
        let failures = await restore.trigger().value
        guard failures.isEmpty else {
            // A service Swarm cannot start has its replica count back already: scaling by hand would change nothing.
            let commands: [String] = services.filter {
                failures[$0.id].map { !$0.contains("Swarm cannot start its tasks") } ?? false
            }.map { service in
                let count = replicas[service.id] ?? 1
                return "docker service scale \(service.name)=\(count)"
            }
            let problems = failures.values.sorted().joined(separator: "; ")
            let hint = commands.isEmpty ? "fix what keeps Swarm from starting their tasks"
                : "Scale them back by hand: " + commands.joined(separator: "; ")
            log.critical("SWARM SERVICES LEFT SCALED DOWN in stack \(stack): \(problems). \(hint)")
            let bodyFailure = outcome.failureDescription.map { "; and the \(purpose) failed: \($0)" } ?? ""
            throw StackVaultError(.containerRestart, "could not scale back: \(problems)\(bodyFailure)")
        }
        return try outcome.get()
    }

    /// A created (never started) container from the task's image with the task's named volumes and bind mounts at
    /// the same paths: Docker's archive API mounts them for a container that does not run.
    private func makeReader(for task: ContainerDetails, service: ScaledService) async throws -> ContainerDetails {
        let mounts = task.mounts.filter(\.outlivesSwarmTask)
        // By image id: a task's image reference may carry a digest that names no local image.
        let image = task.imageID ?? task.image
        let spec = ContainerCreateSpec(
            name: "stackvault-swarm-reader-\(UUID().uuidString.prefix(8).lowercased())", image: image,
            entrypoint: ["true"], labels: [Self.readerLabel: service.name], networkDisabled: true, mounts: mounts)
        let id: String
        do {
            id = try await docker.createContainer(spec)
        } catch {
            throw StackVaultError(.dockerAPI, "reading the volumes of Swarm service \(service.name) needs a container "
                + "from its image \(task.image) that mounts them; Docker could not create it", cause: error)
        }
        return ContainerDetails(id: id, name: spec.name ?? id, image: image, isRunning: false,
                                labels: task.labels, environment: task.environment, mounts: mounts, imageID: image)
    }

    /// Polls until no task of `service` may run and none of its containers runs on this node.
    private func waitUntilGone(_ service: ScaledService) async throws {
        let deadline = ContinuousClock.now + waitLimit
        while true {
            let tasks = try await docker.listTasks(serviceID: service.id)
            let local = try await docker.listContainers(
                labelFilters: ["\(ContainerDetails.swarmServiceIDLabel)=\(service.id)"])
            if !tasks.contains(where: \.mayRun) && !local.contains(where: { $0.state == "running" }) {
                logger.info("the tasks of \(service.name) are gone")
                return
            }
            // Someone else changed the service meanwhile (a `docker stack deploy` sets its replicas again and drops
            // StackVault's labels): its tasks will not go; say so now rather than after the wait limit.
            let now = try await docker.inspectService(service.id)
            if case .replicated(let replicas) = now.mode, replicas > 0 {
                throw StackVaultError(.dockerAPI, "Swarm service \(service.name) was changed by someone else while its "
                    + "tasks were stopping for the copy (it asks for \(replicas) replica(s) again"
                    + (now.labels[SwarmService.scaledFromLabel] == nil ? ", and StackVault's labels are gone: a "
                        + "`docker stack deploy` or `docker service update`?" : "")
                    + "); nothing of it was copied: run the backup again")
            }
            guard ContinuousClock.now < deadline else {
                throw StackVaultError(.dockerAPI, "the tasks of Swarm service \(service.name) were still running "
                    + "\(waitLimit) after it was scaled to 0 (see docker service ps \(service.name))")
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// Scales each service back to its former count, clearing the crash record, and waits until that many tasks
    /// run. Returns the failures by service id.
    static func scaleBack(_ services: [ScaledService], replicas: [String: Int], docker: any DockerEngine,
                          logger: Logger, waitLimit: Duration, pollInterval: Duration) async -> [String: String]
    {
        var failures: [String: String] = [:]
        for service in services {
            let count = replicas[service.id] ?? 1
            do {
                try await scale(service.id, name: service.name, to: count, docker: docker, logger: logger,
                                waitLimit: waitLimit, pollInterval: pollInterval)
            } catch {
                failures[service.id] = "\(service.name): \(error)"
            }
        }
        return failures
    }

    /// Scales one service to `count` (three tries), removes the crash-record labels, waits until `count` tasks run.
    static func scale(_ id: String, name: String, to count: Int, docker: any DockerEngine, logger: Logger,
                      waitLimit: Duration, pollInterval: Duration) async throws
    {
        // Tasks still stopping (a run cancelled while it waited for them to go) end first: new tasks started beside
        // them would run two copies on the same volumes for a while.
        let stopping = ContinuousClock.now + min(waitLimit, .seconds(60))
        while try await docker.listTasks(serviceID: id).contains(where: { $0.desiredState != "running" && $0.mayRun }),
              ContinuousClock.now < stopping {
            try? await Task.sleep(for: pollInterval)
        }
        let earlier = Set(try await docker.listTasks(serviceID: id).map(\.id))
        for attempt in 1...3 {
            do {
                try await docker.scaleService(id, replicas: count, labels: [
                    SwarmService.scaledFromLabel: nil, SwarmService.scaledByLabel: nil,
                ])
                break
            } catch where attempt < 3 {
                try? await Task.sleep(for: .seconds(attempt))
            }
        }
        // The scale to 0 and back are two updates of the service, so Swarm's rollback point (`docker service
        // rollback`, and an automatic rollback of a failed update) would be the spec at 0 replicas. A third update
        // with the same spec makes the rollback point the service as it runs again: a rollback then changes nothing.
        do {
            try await docker.scaleService(id, replicas: count, labels: [:])
        } catch {
            logger.warning("\("could not reset the rollback point of Swarm service \(name) (`docker service rollback` would scale it to 0): \(error)")")
        }
        let deadline = ContinuousClock.now + waitLimit
        while true {
            let all = try await docker.listTasks(serviceID: id)
            let running = all.filter { $0.desiredState == "running" && $0.state == "running" }.count
            if running >= count {
                logger.info("Swarm service \(name) runs \(count) task(s) again")
                return
            }
            // Swarm cannot start its tasks (an image that is gone, a constraint no node meets): say why now.
            let refused = all.filter { !earlier.contains($0.id) && ["rejected", "failed"].contains($0.state)
                && $0.error != nil }
            if running == 0, refused.count >= 3, let reason = refused.last?.error {
                throw StackVaultError(.containerRestart, "scaled back to \(count), but Swarm cannot start its tasks: "
                    + "\(reason) (\(refused.count) tasks \(refused.last!.state)); fix that, and Swarm starts them (see "
                    + "docker service ps --no-trunc \(name))")
            }
            guard ContinuousClock.now < deadline else {
                throw StackVaultError(.containerRestart, "scaled back to \(count), but only \(running) task(s) run "
                    + "after \(waitLimit) (see docker service ps \(name))")
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Scales back the services a StackVault of this host scaled to 0 and could not scale back (it was killed):
    /// those labelled `stackvault.scaled-by=<host>` (or without that label). Each is restored holding its stack's
    /// lock, so a run of this host still working on it is not disturbed. Services another host scaled down are
    /// only reported. Never throws: a node that is no manager has nothing to do; failures are logged.
    public static func recoverInterrupted(docker: any DockerEngine, host: String, locker: StackLocker?,
                                          logger: Logger, waitLimit: Duration = .seconds(300)) async
    {
        guard let node = try? await docker.swarmNode(), node.isManager else { return }
        let services: [SwarmService]
        do {
            services = try await docker.listServices(labelFilters: [SwarmService.scaledFromLabel])
        } catch {
            logger.warning("could not look for Swarm services left scaled down by an interrupted run: \(error)")
            return
        }
        for service in services {
            guard let count = Int(service.labels[SwarmService.scaledFromLabel] ?? "") else { continue }
            let owner = service.labels[SwarmService.scaledByLabel] ?? host
            guard owner == host else {
                let message = "Swarm service \(service.name) was scaled to 0 by the StackVault of host \(owner) "
                    + "(it was \(count)); that StackVault scales it back when it starts again, or run: "
                    + "docker service scale \(service.name)=\(count)"
                logger.warning("\(message)")
                continue
            }
            let stack = service.labels[ContainerDetails.stackNamespaceLabel] ?? service.name
            let work: @Sendable () async -> Void = {
                // The killed run's reader containers (created, never started) go too.
                let readers = (try? await docker.listContainers(labelFilters: ["\(readerLabel)=\(service.name)"])) ?? []
                for reader in readers { try? await docker.removeContainer(reader.id, force: true) }
                let message = "Swarm service \(service.name) was left scaled to 0 by an interrupted run of this "
                    + "host; scaling it back to \(count)"
                logger.warning("\(message)")
                do {
                    try await scale(service.id, name: service.name, to: count, docker: docker, logger: logger,
                                    waitLimit: waitLimit, pollInterval: .milliseconds(500))
                } catch {
                    let message = "SWARM SERVICE LEFT SCALED DOWN: \(service.name): \(error). Scale it back by "
                        + "hand: docker service scale \(service.name)=\(count)"
                    logger.critical("\(message)")
                }
            }
            guard let locker else {
                await work()
                continue
            }
            do {
                if case .busy = try await locker.withLock(on: stack, purpose: "scale-back", { await work() }) {
                    logger.info("Swarm service \(service.name) is scaled to 0 by a run holding stack \(stack)'s lock")
                }
            } catch {
                logger.warning("could not take the lock of stack \(stack) to scale \(service.name) back: \(error)")
            }
        }
    }
}

/// The ids of the services scaled down so far, shared with the detached scale-back.
private final class ScaledSet: Sendable {
    private let ids = Mutex<Set<String>>([])
    func insert(_ id: String) { ids.withLock { _ = $0.insert(id) } }
    func contains(_ id: String) -> Bool { ids.withLock { $0.contains(id) } }
}
