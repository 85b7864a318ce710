public import Logging
import Synchronization

/// A container that is stopped for a while and must run again afterwards.
public struct StoppedContainer: Sendable, Hashable {
    public var id: String
    /// The name, for messages and the `docker start` hint.
    public var name: String
    /// The id of the container whose network namespace this one shares (`NetworkMode: container:<id>`), when
    /// that one is stopped too: this one is stopped before it and started after it.
    public var provider: String?

    public init(id: String, name: String, provider: String? = nil) {
        self.id = id
        self.name = name
        self.provider = provider
    }

    /// `containers` in tiers to start one after the other: providers first, then the containers sharing their
    /// network namespace. Stopping goes through the tiers in reverse.
    static func startTiers(_ containers: [StoppedContainer]) -> [[StoppedContainer]] {
        let ids = Set(containers.map(\.id))
        let dependents = containers.filter { $0.provider.map(ids.contains) == true }
        let providers = containers.filter { c in !dependents.contains(c) }
        return [providers, dependents].filter { !$0.isEmpty }
    }
}

/// Containers could not be started again after `ContainerStopGuard` stopped them.
public struct ContainersLeftStopped: Error, CustomStringConvertible, Sendable {
    /// One entry per container: `name: error`.
    public var failures: [String]
    /// What the body failed with, if it failed too.
    public var bodyFailure: String?
    /// Seconds from the first stop to the last start attempt.
    public var downtime: Double
    /// What the stop was for (`backup`, `restore`), for the message.
    public var purpose: String

    public var description: String {
        "could not start again: \(failures.joined(separator: "; "))"
            + (bodyFailure.map { "; and the \(purpose) failed: \($0)" } ?? "")
    }
}

/// Stops containers together, runs work while they are stopped, and starts them again on every path: success,
/// error, cancellation (SIGTERM). Shared by the backup and the restore engines.
///
/// Inside `StackLocker.withLock` the containers are recorded in the lock's `StopJournal` before they are stopped
/// (and cleared once they run again), so a StackVault that takes the lock after this process died without
/// unwinding (SIGKILL, OOM kill, its container stopped, a reboot) starts them again.
///
/// Once a stop request has been sent, Docker goes on stopping the container (and kills it after the stop timeout)
/// whether or not the request is answered, cancelled or failed on our side. So a container is started again only
/// after inspect shows it has left the running state (polled every `pollInterval`, for at most the stop timeout
/// plus `stopMarginSeconds` from the stop request), and the start counts only once inspect shows it running.
public struct ContainerStopGuard: Sendable {
    public let docker: any DockerEngine
    /// Seconds Docker gives a container to stop before it kills it.
    public let stopTimeoutSeconds: Int
    public let logger: Logger
    /// Seconds beyond `stopTimeoutSeconds` to wait for a container Docker may still be stopping.
    public let stopMarginSeconds: Int
    /// The default `stopMarginSeconds`.
    public static let defaultStopMarginSeconds = 15
    /// How often inspect is polled while waiting for a container to leave the running state.
    public let pollInterval: Duration

    public init(docker: any DockerEngine, stopTimeoutSeconds: Int, logger: Logger,
                stopMarginSeconds: Int = Self.defaultStopMarginSeconds,
                pollInterval: Duration = .milliseconds(200)) {
        self.docker = docker
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.logger = logger
        self.stopMarginSeconds = stopMarginSeconds
        self.pollInterval = pollInterval
    }

    /// Stops `containers` together, runs `body`, and starts them again whatever happens. Returns the body's
    /// result and the downtime in seconds (from the stop request to the last start); `recordDowntime` gets the same
    /// seconds on every path, also when this throws.
    ///
    /// If a stop fails (or is cancelled), `body` does not run and every container is started again once Docker
    /// has stopped it. If a container is not running after three start tries, `ContainersLeftStopped` is thrown
    /// and logged as critical with the `docker start` command to run.
    public func run<T: Sendable>(
        _ containers: [StoppedContainer],
        stack: String,
        purpose: String,
        recordDowntime: (Double) -> Void = { _ in },
        body: () async throws -> T
    ) async throws -> (T, Double) {
        let log = logger
        guard !containers.isEmpty else { return (try await body(), 0) }
        // Recorded in the stack's lock first, so that whoever takes the lock after this process died (SIGKILL,
        // OOM, reboot) starts them again (`StackLocker.recover`). Unrecorded, nothing is stopped.
        let held = HeldLock.current
        if let held {
            do {
                try await held.recordStopping(containers)
            } catch {
                throw StackVaultError(.dockerAPI, "nothing was stopped: could not record in the lock of stack "
                    + "\(stack) which containers this \(purpose) stops: \(error)")
            }
        }
        let stopStarted = ContinuousClock.now
        let timeout = stopTimeoutSeconds
        let docker = self.docker
        log.info("stopping \(containers.map(\.name).joined(separator: ", "))")
        // Every container we asked to stop is started again, even when its stop call failed half-way.
        // Dependents first; a failed tier leaves the later ones running (and they are not started again).
        var stopErrors: [String] = []
        var asked: [StoppedContainer] = []
        for tier in StoppedContainer.startTiers(containers).reversed() where stopErrors.isEmpty {
            asked += tier
            stopErrors += await Self.stopAll(tier, docker: docker, timeout: timeout)
        }

        // The restart runs once, in an unstructured task (cancelling this run must not cancel it), as soon as
        // the body ends or, on cancellation (SIGTERM), at once: abandoned work need not finish unwinding first.
        let stoppedBy = stopStarted + .seconds(timeout + stopMarginSeconds)
        let interval = pollInterval
        let toStart = asked
        // Docker gone (dockerd restarting) is waited for as long as the lock's lease: after that another StackVault
        // may take the lock and start them from its journal.
        let dockerWait = held?.ttl ?? Self.defaultDockerWait
        let restart = RunOnce {
            (failures: await Self.startAll(toStart, docker: docker, stoppedBy: stoppedBy, pollInterval: interval,
                                           dockerWait: dockerWait, logger: log),
             at: ContinuousClock.now)
        }
        let outcome: Result<T, any Error>
        if stopErrors.isEmpty {
            do {
                outcome = .success(try await withTaskCancellationHandler {
                    try await body()
                } onCancel: {
                    restart.trigger()
                })
            } catch {
                outcome = .failure(error)
            }
        } else {
            outcome = .failure(StackVaultError(.dockerAPI, "could not stop " + stopErrors.joined(separator: "; ")))
        }
        let (restartFailures, restartedAt) = await restart.trigger().value
        let downtime = (restartedAt - stopStarted).seconds
        recordDowntime(downtime)
        if restartFailures.isEmpty {
            let names = containers.map(\.name).joined(separator: ", ")
            log.info("started \(names) again \(String(format: "(downtime %.1f s)", downtime))")
            do {
                try await held?.recordStarted()
            } catch {
                log.warning("could not record in the lock of stack \(stack) that \(names) run again: \(error)")
            }
        } else {
            let names = containers.map(\.name).joined(separator: " ")
            log.critical("CONTAINERS LEFT STOPPED in stack \(stack): \(restartFailures.joined(separator: "; ")). Start them by hand: docker start \(names)")
            throw ContainersLeftStopped(failures: restartFailures, bodyFailure: outcome.failureDescription,
                                        downtime: downtime, purpose: purpose)
        }
        return (try outcome.get(), downtime)
    }

    /// Sends the stop requests of `containers` at once; returns the failures.
    static func stopAll(_ containers: [StoppedContainer], docker: any DockerEngine, timeout: Int) async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for container in containers {
                group.addTask {
                    do {
                        try await docker.stopContainer(container.id, timeoutSeconds: timeout)
                        return nil
                    } catch {
                        return "\(container.name): \(error)"
                    }
                }
            }
            var errors: [String] = []
            for await error in group { if let error { errors.append(error) } }
            return errors
        }
    }

    /// How long a start waits for a Docker daemon that does not answer when no lock gives a lease.
    static let defaultDockerWait = Duration.seconds(60)

    /// Starts every container again, providers before the containers that share their network namespace, once
    /// Docker has stopped it (see the type's documentation), three tries each; a try counts when inspect shows
    /// the container running afterwards. While Docker does not answer (dockerd stopped or restarting), it is
    /// polled every second for up to `dockerWait`, and those polls are not tries. Returns the failures.
    static func startAll(
        _ containers: [StoppedContainer],
        docker: any DockerEngine,
        stoppedBy deadline: ContinuousClock.Instant,
        pollInterval: Duration,
        dockerWait: Duration = defaultDockerWait,
        logger: Logger
    ) async -> [String] {
        var failures: [String] = []
        for tier in StoppedContainer.startTiers(containers) {
            failures += await startTier(tier, docker: docker, stoppedBy: deadline, pollInterval: pollInterval,
                                        dockerWait: dockerWait, logger: logger)
        }
        return failures
    }

    private static func startTier(
        _ containers: [StoppedContainer],
        docker: any DockerEngine,
        stoppedBy deadline: ContinuousClock.Instant,
        pollInterval: Duration,
        dockerWait: Duration,
        logger: Logger
    ) async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for container in containers {
                group.addTask {
                    await waitUntilNotRunning(container, docker: docker, deadline: deadline,
                                              pollInterval: pollInterval, logger: logger)
                    var attempt = 1
                    // Set when a start first finds Docker gone: from then on, `dockerWait` for it to come back.
                    var dockerDeadline: ContinuousClock.Instant?
                    while true {
                        do {
                            try await docker.startContainer(container.id)
                            guard try await docker.inspectContainer(container.id).isRunning else {
                                throw StackVaultError(.containerRestart,
                                    "Docker started it, but it is not running (it exited at once; see docker logs \(container.name))")
                            }
                            if dockerDeadline != nil { logger.info("Docker answers again: started \(container.name)") }
                            return nil
                        } catch let error as StackVaultError
                            where error.code == .dockerUnreachable
                                && ContinuousClock.now < (dockerDeadline ?? .now + dockerWait)
                        {
                            if dockerDeadline == nil {
                                dockerDeadline = .now + dockerWait
                                let message = "Docker does not answer; waiting up to "
                                    + "\(Int(dockerWait.seconds.rounded())) s for it to come back to start "
                                    + "\(container.name) again"
                                logger.warning("\(message)")
                            }
                            try? await Task.sleep(for: .seconds(1))
                        } catch where attempt < 3 {
                            try? await Task.sleep(for: .seconds(attempt))
                            attempt += 1
                        } catch {
                            return "\(container.name): \(error)"
                        }
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
    }

    /// Polls inspect until `container` has left the running state, or `deadline` passes (then Docker never got, or
    /// never acted on, the stop request, and the container is left as it is). Starting a container Docker is still
    /// stopping would be a no-op, and the container would end up stopped for good.
    static func waitUntilNotRunning(
        _ container: StoppedContainer,
        docker: any DockerEngine,
        deadline: ContinuousClock.Instant,
        pollInterval: Duration,
        logger: Logger
    ) async {
        let started = ContinuousClock.now
        var logged = false
        // Looked at once at least, even when the deadline has passed (a recovery, a cancel after a long stop): a
        // container that has stopped is not reported as still running.
        var inspectError: (any Error)?
        while true {
            // An inspect failure (daemon busy or unreachable) is polled again, like a running container.
            do {
                if try await !docker.inspectContainer(container.id).isRunning {
                    if logged {
                        logger.info("\(container.name) has stopped \(String(format: "(waited %.1f s)", (ContinuousClock.now - started).seconds))")
                    }
                    return
                }
                inspectError = nil
            } catch {
                inspectError = error
            }
            guard ContinuousClock.now < deadline else { break }
            if !logged {
                logger.info("waiting for Docker to finish stopping \(container.name) before starting it again")
                logged = true
            }
            try? await Task.sleep(for: pollInterval)
        }
        let waited = String(format: "%.1f s", (ContinuousClock.now - started).seconds)
        if let inspectError {
            logger.warning("could not see whether \(container.name) has stopped (\(waited) after its stop request): \(inspectError)")
        } else {
            logger.warning("\(container.name) still runs \(waited) after its stop request; Docker did not stop it")
        }
    }
}

/// Runs an async operation at most once, in a detached task, from whichever caller triggers it first.
final class RunOnce<Value: Sendable>: Sendable {
    private let operation: @Sendable () async -> Value
    private let task = Mutex<Task<Value, Never>?>(nil)

    init(_ operation: @escaping @Sendable () async -> Value) {
        self.operation = operation
    }

    @discardableResult
    func trigger() -> Task<Value, Never> {
        task.withLock { task in
            if let task { return task }
            let started = Task.detached(operation: operation)
            task = started
            return started
        }
    }
}
