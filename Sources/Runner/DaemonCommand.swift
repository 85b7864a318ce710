import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import StackVaultCore
import StackVaultMetrics
import UnixSignals

/// `stackvault daemon`: the sidecar's long-running mode (the container's default command).
struct DaemonCommand: AsyncParsableCommand {
    static let defaultSchedule = "0 2 * * *"

    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Backs up on a cron schedule until SIGTERM/SIGINT, logging to stdout.",
        discussion: "Schedule: --schedule or $CRON_SCHEDULE (default \"0 2 * * *\") in $TZ (default UTC). "
            + "BACKUP_ON_START=true also runs once at start. A run never overlaps the previous one, and a stack "
            + "is never backed up by two StackVaults of one Docker host at once (a lock held through the Docker "
            + "API, lease LOCK_TTL seconds). State for `stackvault health` goes to $STATE_FILE (default "
            + "\(StateFile.defaultPath)). SIGTERM/SIGINT: no new runs; a run in progress is stopped, its containers "
            + "started again, then the process exits 0. METRICS_ADDR (such as :9090) serves Prometheus metrics on "
            + "/metrics and the health on /healthz. DRILL_SCHEDULE (cron, default off) runs a restore drill of each "
            + "stack's latest archive (see `stackvault drill`), one stack at a time under its lock; DRILL_ON_START "
            + "also drills at start; DRILL_MAX_AGE (seconds) makes health fail when a stack's last passing drill is "
            + "older. STACKS (names separated by commas or spaces) or --stack limits it to some stacks. SIGUSR1 "
            + "(docker kill -s USR1 <sidecar>) or `stackvault run-now` runs a backup now, recorded like a scheduled "
            + "one. "
            + "Exit code 2 when the configuration is invalid."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Cron expression (default: $CRON_SCHEDULE or \"0 2 * * *\").")
    var schedule: String?

    @Option(name: .long, help: "Back up only this stack (repeatable; default: $STACKS, else every labelled stack).")
    var stack: [String] = []

    @Flag(help: "Run once at start too (default: $BACKUP_ON_START).")
    var backupOnStart = false

    @Option(help: "The state file (default: $STATE_FILE or \(StateFile.defaultPath)).")
    var stateFile: String?

    func run() async throws {
        // SIGUSR1/SIGUSR2 end a process by default: ignored until `DaemonService` handles them (run requests).
        signal(SIGUSR1, SIG_IGN)
        signal(SIGUSR2, SIG_IGN)
        let environment: Environment
        let daemon: BackupDaemon
        let cron: CronSchedule
        let stateStore: DaemonStateStore
        let ttl: Int
        let onStart: Bool
        let hostName: String
        let locker: StackLocker
        let selection: StackSelection
        var metricsServer: MetricsServer?
        var drills: DrillService?
        do {
            environment = try Environment(options: options, logs: .standardOutput)
            let variables = environment.variables
            selection = try StackSelection.resolve(options: stack, environment: variables)
            cron = try Self.schedule(expression: schedule, timeZone: nil, environment: variables)
            guard cron.next(after: Date()) != nil else {
                throw StackVaultError(.invalidConfiguration, "the schedule \"\(cron.expression)\" never fires")
            }
            onStart = try backupOnStart || Self.flag("BACKUP_ON_START", in: variables)
            ttl = Int(try environment.lockTTL().components.seconds)
            let metricsAddress = try MetricsAddress(environment: variables)
            let stackBackup = try await environment.makeStackBackup(target: options.target)
            let host = stackBackup.configuration.hostName
            let metrics = BackupMetrics(host: host)
            locker = StackLocker(store: DockerLockStore(client: environment.docker), ttl: .seconds(ttl),
                                 logger: environment.logger, docker: environment.docker,
                                 onRecovered: { metrics.recordRecovered(stack: $0, containers: $1) })
            let runner = BackupRun(docker: environment.docker, strategies: environment.strategies,
                                   stackBackup: stackBackup, locker: locker, stackFilter: selection.stacks,
                                   notifier: try Notifier(environment: variables, logger: environment.logger),
                                   busyStack: .skip, logger: environment.logger)
            let file = stateFile.map(StateFile.init(path:)) ?? StateFile(environment: variables)
            hostName = host
            var initial = Self.initialState(cron, file: file, host: host)
            initial.selectedStacks = selection.isAll ? nil : selection.stacks
            // Known from the first write on (the scheduler sets it again once it runs).
            initial.nextRunDue = cron.next(after: Date())
            stateStore = DaemonStateStore(state: initial, file: file, logger: environment.logger)
            try await stateStore.save()
            // Every DRILL_* value is checked at start, drills scheduled or not (a typo must not pass unnoticed).
            let maxAge = try variables["DRILL_MAX_AGE"]
                .flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
                .map { try EnvironmentValue.integer("DRILL_MAX_AGE", $0, range: 60...Int.max, unit: "seconds") ?? 0 }
            _ = try environment.drillOptions(workDir: nil)
            let drillOnStart = try Self.flag("DRILL_ON_START", in: variables)
            let drillSchedule = try Self.drillSchedule(environment: variables)
            if drillSchedule == nil && (drillOnStart || maxAge != nil) {
                throw StackVaultError(.invalidConfiguration, "DRILL_ON_START and DRILL_MAX_AGE need DRILL_SCHEDULE "
                    + "(the cron schedule of restore drills, such as \"0 4 * * 0\"): set it, or unset them")
            }
            if let drillSchedule {
                await stateStore.update {
                    $0.drillSchedule = drillSchedule.expression.source
                    $0.drillMaxAgeSeconds = maxAge.map(Double.init)
                }
                drills = DrillService(
                    schedule: drillSchedule, onStart: drillOnStart,
                    environment: environment, target: options.target, workDir: nil, host: host,
                    stacks: selection.stacks,
                    // An identity of its own: with the daemon's, a drill and a backup of one stack would each take
                    // the other's lock for a stale one.
                    locker: locker.withOwnIdentity(), state: stateStore, metrics: metrics,
                    notifier: try Notifier(environment: variables, logger: environment.logger),
                    logger: environment.logger)
            }
            let recordRun: @Sendable (RunRecord) async -> Void = { metrics.record($0) }
            daemon = BackupDaemon(schedule: cron, runner: runner, state: stateStore, backupOnStart: onStart,
                                  logger: environment.logger, onRunEnded: metricsAddress == nil ? nil : recordRun)
            if let metricsAddress {
                let store = stateStore
                let endpoint = MetricsEndpoint(
                    metrics: metrics, health: { HealthCheck.evaluate(await store.state, now: Date()) },
                    nextRun: { await store.state.nextRunDue })
                metricsServer = try await MetricsServer.bind(metricsAddress, endpoint: endpoint,
                                                             logger: environment.logger)
            }
        } catch {
            printError(Self.describe(error))
            throw ExitStatus.unreachable
        }

        let logger = environment.logger
        let next = cron.next(after: Date()).map { cron.describe(Int64($0.timeIntervalSince1970)).iso8601 } ?? "never"
        let startLine = "StackVault \(StackVault.version) daemon started: schedule \"\(cron.expression)\" in "
            + "\(cron.timeZone.identifier), next run \(next)\(onStart ? ", and one now (BACKUP_ON_START)" : ""); "
            + "\(selection.description); "
            + "state file \(stateStore.file.path); lock lease \(ttl) s; "
            + "Docker \(environment.docker.endpointDescription)"
            + (metricsServer.map { "; metrics on http://\($0.boundAddress)/metrics" } ?? "")
        logger.info("\(startLine)")
        // Runs first in the daemon's service, where SIGTERM already means a graceful shutdown (before the service
        // group runs, SIGTERM would kill the process half-way through a recovery).
        let docker = environment.docker
        let startup: @Sendable () async -> Void = {
            do {
                _ = try await docker.apiVersion()
                // Before anything else: what a dead StackVault (this container's previous life included) had stopped
                // runs again, and its stale locks are gone.
                let failures = await locker.recoverAbandonedLocks()
                await stateStore.update { $0.containersLeftStopped = failures.isEmpty ? nil : failures }
                _ = await locker.removeOrphanedContainers(docker: docker)
                // A Swarm service left at 0 by this host's killed StackVault runs again now, not at the next run.
                await SwarmScaleGuard.recoverInterrupted(docker: docker, host: hostName, locker: locker,
                                                         logger: logger)
            } catch {
                logger.error("\(error) -- runs will fail until Docker answers")
            }
        }

        let service = DaemonService(daemon: daemon, inbox: RunRequestInbox(stateFile: stateStore.file),
                                    pidFile: DaemonPIDFile(stateFile: stateStore.file), logger: logger,
                                    startup: startup)
        // Shutdown goes in reverse order: the daemon ends its run first, the metrics endpoint serves until then.
        // An identity of its own: the daemon's would make the lock of the daemon's own run in progress look stale
        // ("this process took it and did not release it").
        let sweep = LockSweepService(locker: locker.withOwnIdentity(), state: stateStore, interval: .seconds(ttl))
        let services: [ServiceGroupConfiguration.ServiceConfiguration] =
            (metricsServer.map { [.init(service: $0)] } ?? []) + (drills.map { [.init(service: $0)] } ?? [])
            + [.init(service: sweep)]
        var configuration = ServiceGroupConfiguration(
            services: services + [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A run's cleanup (start containers, remove temporary files, abort uploads) normally takes seconds; these
        // bound the exit even when Docker hangs. A container Docker is still stopping is started again only once it
        // has stopped, up to STOP_TIMEOUT plus a margin after its stop request: the bound leaves room for that.
        let stopTimeout = environment.variables["STOP_TIMEOUT"].flatMap { Int($0) } ?? 30
        configuration.maximumGracefulShutdownDuration =
            .seconds(max(90, stopTimeout + ContainerStopGuard.defaultStopMarginSeconds + 30))
        configuration.maximumCancellationDuration = .seconds(20)
        try await ServiceGroup(configuration: configuration).run()
        logger.info("daemon stopped")
    }

    /// The state to start with: the previous daemon's last run is kept (health must not forget a failure); a run
    /// the previous daemon did not finish is recorded as interrupted.
    /// `host` is the host whose archives the daemon writes (`STACKVAULT_HOST` or the Docker engine's name).
    static func initialState(_ schedule: CronSchedule, file: StateFile, host: String) -> DaemonState {
        let now = Date()
        var state = DaemonState(schedule: schedule.expression.source, timeZone: schedule.timeZone.identifier,
                                host: host, pid: getpid(), daemonStartedAt: now)
        if let previous = try? file.read() {
            state.lastRun = previous.lastRun
            state.lastSuccessAt = previous.lastSuccessAt
            state.drills = previous.drills
            state.unresolvedFailures = previous.unresolvedFailures
            if let unfinished = previous.currentRun {
                state.lastRun = RunRecord(
                    trigger: unfinished.trigger, due: unfinished.due, startedAt: unfinished.startedAt, finishedAt: now,
                    outcome: .interrupted, error: "the daemon (pid \(previous.pid)) ended during this run",
                    stacks: [])
            }
        }
        return state
    }

    /// The schedule from an argument, else `CRON_SCHEDULE`, else the default; the zone from an argument, else `TZ`.
    static func schedule(expression: String?, timeZone: String?, environment: [String: String]) throws
        -> CronSchedule
    {
        let text = [expression, environment["CRON_SCHEDULE"]].compactMap { $0 }
            .first { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? defaultSchedule
        let zone = try timeZone.map { try ScheduleTimeZone(identifier: $0) }
            ?? ScheduleTimeZone(environment: environment)
        return try CronSchedule(text, timeZone: zone)
    }

    /// `DRILL_SCHEDULE` (cron, in `TZ`), or nil when it is unset or `off`: no drills.
    static func drillSchedule(environment: [String: String]) throws -> CronSchedule? {
        let text = (environment["DRILL_SCHEDULE"] ?? "").trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.lowercased() != "off" else { return nil }
        let schedule = try CronSchedule(text, timeZone: try ScheduleTimeZone(environment: environment))
        guard schedule.next(after: Date()) != nil else {
            throw StackVaultError(.invalidConfiguration, "DRILL_SCHEDULE \"\(text)\" never fires")
        }
        return schedule
    }

    /// A cron error with the expression and a caret under the field at fault.
    static func describe(_ error: any Error) -> String {
        if let error = error as? CronExpressionError { return "\(error)\n\(error.pointer)" }
        return "\(error)"
    }

    static func flag(_ name: String, in variables: [String: String]) throws -> Bool {
        let value = (variables[name] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        switch value {
        case "", "false", "0", "no", "off": return false
        case "true", "1", "yes", "on": return true
        default:
            throw StackVaultError(.invalidConfiguration, "\(name)='\(variables[name] ?? "")' must be true or false")
        }
    }
}

/// Runs the daemon inside the service group: on SIGTERM/SIGINT it stops scheduling and cancels the run in
/// progress, whose cleanup (containers started again, temporary files removed, uploads aborted) completes before
/// `run` returns. SIGUSR1 asks for a run of the whole selection now, SIGUSR2 for the runs `stackvault run-now` left
/// in `inbox`; `pidFile` names this process while it handles them.
struct DaemonService: Service {
    let daemon: BackupDaemon
    let inbox: RunRequestInbox
    let pidFile: DaemonPIDFile
    let logger: Logger
    /// What runs before the schedule starts: what a dead StackVault stopped runs again, its stale locks and
    /// containers go (see `DaemonCommand`).
    var startup: @Sendable () async -> Void = {}

    func run() async throws {
        await startup()
        let logger = self.logger
        let signals = await UnixSignalsSequence(trapping: .sigusr1, .sigusr2)
        // Requests from before this daemon started have no one waiting for them any more (run-now gives up when the
        // daemon it signalled ends).
        for request in inbox.takeAll().requests {
            let message = "discarding the run request \(request.id) of \(DisplayTime.named(request.requestedAt)): "
                + "it was left for a daemon that has ended; run `stackvault run-now` again"
            logger.warning("\(message)")
        }
        let pid = getpid()
        do {
            try pidFile.write(pid: pid)
        } catch {
            logger.error("\(error) -- `stackvault run-now` cannot find this daemon; SIGUSR1 still works")
        }
        defer { pidFile.remove(ifNaming: pid) }
        do {
            try await withGracefulShutdownHandler {
                try await cancelWhenGracefulShutdown {
                    try await withThrowingDiscardingTaskGroup { group in
                        group.addTask {
                            for await signal in signals { await daemon.submit(requests(for: signal)) }
                        }
                        try await daemon.run()
                    }
                }
            } onGracefulShutdown: {
                logger.info("shutting down: no new runs; a run in progress is stopped and its containers started again")
            }
        } catch is CancellationError {
            // The normal end: shutdown.
        }
    }

    /// The requests a signal brings: those waiting in the inbox, and for SIGUSR1 one for the whole selection.
    func requests(for signal: UnixSignal) -> [RunRequest] {
        let (waiting, unreadable) = inbox.takeAll()
        for problem in unreadable {
            logger.warning("removed a file that is not a run request from \(inbox.directory): \(problem)")
        }
        guard signal == .sigusr1 else {
            if waiting.isEmpty { logger.info("SIGUSR2: no run request waiting in \(inbox.directory)") }
            return waiting
        }
        let now = Date()
        return waiting + [RunRequest(id: "signal-\(Int64(now.timeIntervalSince1970 * 1000))", stacks: [],
                                     requestedAt: now, source: "SIGUSR1")]
    }
}
