public import StackVaultCore
import Foundation
import Synchronization

/// An in-memory Docker engine for unit tests: containers with labels and environment, scripted exec output,
/// tar bytes for archive reads, and a log of the calls made (stop/start order, exec commands).
public final class FakeDockerEngine: DockerEngine {
    /// A scripted exec result.
    public struct ExecResult: Sendable {
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var exitCode: Int

        public init(stdout: String = "", stderr: String = "", exitCode: Int = 0) {
            self.stdout = Array(stdout.utf8)
            self.stderr = Array(stderr.utf8)
            self.exitCode = exitCode
        }
    }

    /// What happened, in order: `stop:<name>`, `start:<name>`, `exec:<name>`, `archive:<name>:<path>`,
    /// `put:<name>:<path>`, `create:<name>`, `remove:<name>`, `scale:<service>=<replicas>`.
    public var calls: [String] { state.withLock { $0.calls } }
    public var containers: [ContainerDetails] { state.withLock { $0.containers } }
    /// The tar streams written by `putArchive`, in order: container name, path, bytes.
    public var puts: [(container: String, path: String, tar: [UInt8])] { state.withLock { $0.puts } }
    /// The specs of the containers `createContainer` made, in order.
    public var created: [ContainerCreateSpec] { state.withLock { $0.created } }

    private struct State {
        var containers: [ContainerDetails] = []
        var execResults: [String: ExecResult] = [:]
        var archives: [String: [UInt8]] = [:]
        var failures: [String: String] = [:]
        var calls: [String] = []
        var puts: [(container: String, path: String, tar: [UInt8])] = []
        var created: [ContainerCreateSpec] = []
        var slowStops: [String: Duration] = [:]
        var exitsOnStart: Set<String> = []
        var missingImages: Set<String> = []
        var swarmNode = SwarmNode.inactive
        var services: [SwarmService] = []
        var taskTemplates: [String: ContainerDetails] = [:]
        var taskCounter = 0
        var removedWhenInspected: Set<String> = []
        var pathStats: [String: ContainerPathStat?] = [:]
    }

    private let state = Mutex(State())
    private let scaleHook = Mutex<(@Sendable (_ serviceID: String, _ replicas: Int) async -> Void)?>(nil)
    private let helperRunner = Mutex<HelperRunner?>(nil)

    /// What a helper container does in `runHelper`: gets its spec and its stdout and stderr, returns its exit code;
    /// runs on a thread of its own (it may block, e.g. on a socket).
    public typealias HelperRunner = @Sendable (ContainerCreateSpec, _ stdout: any ByteSink, _ stderr: any ByteSink)
        throws -> Int

    /// Makes `runHelper` run `body` (without it, `runHelper` throws as an engine that cannot run helpers). Each run
    /// is recorded as `helper:<name>` in `calls` and its spec in `created`.
    public func onRunHelper(_ body: @escaping HelperRunner) {
        helperRunner.withLock { $0 = body }
    }

    public func runHelper(
        _ spec: ContainerCreateSpec,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        guard let body = helperRunner.withLock({ $0 }) else {
            throw StackVaultError(.dockerAPI, "\(endpointDescription) cannot run helper containers")
        }
        state.withLock {
            $0.created.append(spec)
            $0.calls.append("helper:\(spec.name ?? "")")
        }
        let sinks = UnsafeSinks(stdout: stdout, stderr: stderr)
        return try await runBlocking { _ in try body(spec, sinks.stdout, sinks.stderr) }
    }

    /// Runs `hook` after each `scaleService` (what another actor does meanwhile: a redeploy, a task still stopping).
    public func afterScale(_ hook: @escaping @Sendable (_ serviceID: String, _ replicas: Int) async -> Void) {
        scaleHook.withLock { $0 = hook }
    }

    public init(containers: [ContainerDetails] = []) {
        state.withLock { $0.containers = containers }
    }

    public var endpointDescription: String { "fake://docker" }

    /// `statPath` of `path` in `container` answers `stat` (nil: the path does not exist). Unscripted paths are
    /// directories.
    public func setPathStat(_ stat: ContainerPathStat?, for container: String, path: String) {
        state.withLock { $0.pathStats["\(container):\(path)"] = .some(stat) }
    }

    public func statPath(in container: String, path: String) async throws -> ContainerPathStat? {
        let details = try find(container)
        if let scripted = state.withLock({ $0.pathStats["\(details.name):\(path)"] }) { return scripted }
        return ContainerPathStat(isDirectory: true)
    }

    public func add(_ container: ContainerDetails) {
        state.withLock { $0.containers.append(container) }
    }

    /// `imageExists` answers false for `reference`; every other image exists.
    public func removeImage(_ reference: String) {
        state.withLock { _ = $0.missingImages.insert(reference) }
    }

    public func imageExists(_ reference: String) async throws -> Bool {
        state.withLock { !$0.missingImages.contains(reference) }
    }

    /// The next execs in `container` return `result`.
    public func setExecResult(_ result: ExecResult, for container: String) {
        state.withLock { $0.execResults[container] = result }
    }

    /// Archive reads of `path` in `container` return these tar bytes.
    public func setArchive(_ tar: [UInt8], for container: String, path: String) {
        state.withLock { $0.archives["\(container):\(path)"] = tar }
    }

    /// Archive reads of `path` in any container that mounts the volume (or bind source) `volume` covering `path`
    /// return these tar bytes.
    public func setVolumeArchive(_ tar: [UInt8], volume: String, path: String) {
        state.withLock { $0.archives["volume:\(volume):\(path)"] = tar }
    }

    /// Makes an operation (`stop`, `start`, `exec`, `archive`) on `container` fail with `message`.
    public func fail(_ operation: String, on container: String, message: String) {
        state.withLock { $0.failures["\(operation):\(container)"] = message }
    }

    /// Makes stops of `container` behave like Docker stopping a container whose PID 1 ignores SIGTERM: the call
    /// returns only when cancelled (throwing `CancellationError`, as a transfer given up on our side), and the
    /// container leaves the running state `after` the call began, cancelled or not. A start before then is a
    /// no-op, as Docker's is on a running container.
    public func stopSlowly(_ container: String, after: Duration) {
        state.withLock { $0.slowStops[container] = after }
    }

    /// Starts of `container` succeed but it does not run (its process exits at once).
    public func exitOnStart(_ container: String) {
        state.withLock { _ = $0.exitsOnStart.insert(container) }
    }

    public func isRunning(_ name: String) -> Bool {
        state.withLock { s in s.containers.first { $0.name == name }?.isRunning ?? false }
    }

    private func find(_ idOrName: String) throws -> ContainerDetails {
        guard let container = state.withLock({ s in
            s.containers.first { $0.id == idOrName || $0.name == idOrName }
        }) else {
            throw StackVaultError(.dockerAPI, "Docker could not find container \(idOrName): No such container")
        }
        return container
    }

    private func record(_ operation: String, _ container: ContainerDetails, _ extra: String = "") throws {
        let failure = state.withLock { s -> String? in
            s.calls.append("\(operation):\(container.name)\(extra)")
            return s.failures["\(operation):\(container.name)"]
        }
        if let failure { throw StackVaultError(.dockerAPI, failure) }
    }

    public func listContainers(labelFilters: [String]) async throws -> [ContainerSummary] {
        state.withLock { s in
            s.containers.filter { container in
                labelFilters.allSatisfy { filter in
                    let parts = filter.split(separator: "=", maxSplits: 1).map(String.init)
                    guard let value = container.labels[parts[0]] else { return false }
                    return parts.count == 1 || value == parts[1]
                }
            }.map {
                ContainerSummary(id: $0.id, name: $0.name, image: $0.image,
                                 state: $0.isRunning ? "running" : "exited", labels: $0.labels)
            }
        }
    }

    public func inspectContainer(_ idOrName: String) async throws -> ContainerDetails {
        let container = try find(idOrName)
        let vanishes = state.withLock { s in
            guard s.removedWhenInspected.contains(container.name) else { return false }
            s.containers.removeAll { $0.id == container.id }
            return true
        }
        if vanishes {
            throw StackVaultError(.dockerAPI, "Docker could not inspect container \(idOrName): No such container")
        }
        return container
    }

    /// Makes the container `name` disappear when it is next inspected, as one removed between a listing and an
    /// inspect does (`docker compose down` of another stack while a plan is made).
    public func removeWhenInspected(_ name: String) {
        state.withLock { $0.removedWhenInspected.insert(name) }
    }

    public func exec(
        in container: String,
        command: [String],
        environment: [String],
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        let details = try find(container)
        try record("exec", details)
        guard details.isRunning else {
            throw StackVaultError(.dockerAPI, "Docker could not create an exec: container \(details.name) is not running")
        }
        let result = state.withLock { $0.execResults[details.name] } ?? ExecResult()
        try result.stdout.withUnsafeBytes { try stdout.write($0) }
        try result.stderr.withUnsafeBytes { try stderr.write($0) }
        return result.exitCode
    }

    public func getArchive(from container: String, path: String, into sink: any ByteSink) async throws {
        let details = try find(container)
        try record("archive", details, ":\(path)")
        // Else through the volume or bind mount the path is on (a reader container of a Swarm task's volumes).
        let key = ContainerMount.covering(path, in: details.mounts)?.reference.map { "volume:\($0):\(path)" }
        guard let tar = state.withLock({ s in s.archives["\(details.name):\(path)"] ?? key.flatMap { s.archives[$0] } })
        else {
            throw StackVaultError(.dockerAPI, "Docker could not read \(path): no such file or directory")
        }
        // Deliver in small uneven chunks, as a socket would.
        var offset = 0
        var chunk = 7
        while offset < tar.count {
            let end = min(tar.count, offset + chunk)
            try tar[offset..<end].withUnsafeBytes { try sink.write($0) }
            offset = end
            chunk = chunk * 3 % 65_521 + 1
        }
    }

    public func putArchive(to container: String, path: String, body: @escaping @Sendable (any ByteSink) throws -> Void)
        async throws
    {
        let details = try find(container)
        try record("put", details, ":\(path)")
        let collector = CollectingSink()
        try body(collector)
        state.withLock { $0.puts.append((details.name, path, collector.bytes)) }
    }

    /// Creates a running-capable container named `spec.name` (or `helper-N`); `start` makes it run.
    public func createContainer(_ spec: ContainerCreateSpec) async throws -> String {
        let name = state.withLock { s -> String in
            s.created.append(spec)
            return spec.name ?? "helper-\(s.created.count)"
        }
        let container = ContainerDetails(id: "id-\(name)", name: name, image: spec.image, isRunning: false,
                                         labels: spec.labels, environment: [:], mounts: spec.mounts)
        try record("create", container)
        add(container)
        return container.id
    }

    public func removeContainer(_ id: String, force: Bool) async throws {
        let details = try find(id)
        try record("remove", details)
        state.withLock { s in s.containers.removeAll { $0.id == details.id } }
    }

    public func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
        let details = try find(id)
        try record("stop", details)
        if let after = state.withLock({ $0.slowStops[details.name] }) {
            let id = details.id
            Task.detached {
                try? await Task.sleep(for: after)
                self.setRunning(id, false)
            }
            try await Task.sleep(for: .seconds(3600))
        }
        setRunning(details.id, false)
    }

    public func startContainer(_ id: String) async throws {
        let details = try find(id)
        try record("start", details)
        let exits = state.withLock { $0.exitsOnStart.contains(details.name) }
        setRunning(details.id, !exits)
    }

    private func setRunning(_ id: String, _ running: Bool) {
        state.withLock { s in
            if let index = s.containers.firstIndex(where: { $0.id == id }) { s.containers[index].isRunning = running }
        }
    }
}

// MARK: - Swarm

extension FakeDockerEngine {
    /// Makes this engine a swarm node (`isManager`: a manager, whose API answers for services).
    public func joinSwarm(manager: Bool = true) {
        state.withLock { $0.swarmNode = SwarmNode(state: "active", isManager: manager, nodeID: "node-1") }
    }

    /// Adds a Swarm service and, for a replicated one, its running task containers on this node, made from
    /// `template` (its labels, environment, mounts): named `<service>.<slot>.<task id>` with Swarm's labels, and
    /// `com.docker.stack.namespace` when `stack` is given. Scaling the service replaces them as Swarm does.
    public func addService(_ service: SwarmService, stack: String? = nil, template: ContainerDetails) {
        var service = service
        if let stack { service.labels[ContainerDetails.stackNamespaceLabel] = stack }
        var template = template
        if let stack { template.labels[ContainerDetails.stackNamespaceLabel] = stack }
        template.labels[ContainerDetails.swarmServiceIDLabel] = service.id
        template.labels[ContainerDetails.swarmServiceNameLabel] = service.name
        let count: Int
        switch service.mode {
        case .replicated(let replicas): count = replicas
        default: count = 1
        }
        state.withLock { s in
            s.services.append(service)
            s.taskTemplates[service.id] = template
        }
        startTasks(of: service, count: count)
    }

    /// Removes the service but leaves its task containers running, as Swarm does for a moment while it tears a
    /// stack down.
    public func removeServiceKeepingTasks(_ id: String) {
        state.withLock { s in s.services.removeAll { $0.id == id } }
    }

    /// The service as the fake holds it now.
    public func service(_ id: String) -> SwarmService? {
        state.withLock { s in s.services.first { $0.id == id || $0.name == id } }
    }

    private func startTasks(of service: SwarmService, count: Int) {
        state.withLock { s in
            guard let template = s.taskTemplates[service.id] else { return }
            for slot in 1...max(count, 1) where count > 0 {
                s.taskCounter += 1
                let task = "task\(s.taskCounter)"
                var container = template
                container.name = "\(service.name).\(slot).\(task)"
                container.id = "id-\(container.name)"
                container.isRunning = true
                container.labels["com.docker.swarm.task.id"] = task
                container.labels["com.docker.swarm.task.name"] = container.name
                s.containers.append(container)
            }
        }
    }

    public func swarmNode() async throws -> SwarmNode { state.withLock { $0.swarmNode } }

    private func requireManager() throws {
        guard state.withLock({ $0.swarmNode.isManager }) else {
            throw StackVaultError(.dockerAPI, "This node is not a swarm manager.")
        }
    }

    public func listServices(labelFilters: [String]) async throws -> [SwarmService] {
        try requireManager()
        return state.withLock { s in
            s.services.filter { service in
                labelFilters.allSatisfy { filter in
                    let parts = filter.split(separator: "=", maxSplits: 1).map(String.init)
                    guard let value = service.labels[parts[0]] else { return false }
                    return parts.count == 1 || value == parts[1]
                }
            }
        }
    }

    public func inspectService(_ idOrName: String) async throws -> SwarmService {
        try requireManager()
        guard let service = service(idOrName) else {
            throw StackVaultError(.dockerAPI, "Docker could not inspect service \(idOrName): service not found")
        }
        return service
    }

    public func listTasks(serviceID: String) async throws -> [SwarmTask] {
        try requireManager()
        return state.withLock { s in
            s.containers.filter { $0.swarmServiceID == serviceID }.map {
                SwarmTask(id: $0.labels["com.docker.swarm.task.id"] ?? "", slot: $0.swarmSlot, nodeID: "node-1",
                          desiredState: "running", state: $0.isRunning ? "running" : "shutdown", containerID: $0.id)
            }
        }
    }

    /// Records `scale:<service>=<replicas>`; scaling removes the service's task containers (as Swarm does) and
    /// starts `replicas` new ones.
    public func scaleService(_ id: String, replicas: Int, labels: [String: String?]) async throws {
        try requireManager()
        let service = try state.withLock { s -> SwarmService? in
            guard let index = s.services.firstIndex(where: { $0.id == id }) else {
                throw StackVaultError(.dockerAPI, "Docker could not scale service \(id): service not found")
            }
            guard case .replicated = s.services[index].mode else {
                throw StackVaultError(.dockerAPI, "service \(s.services[index].name) is not replicated")
            }
            s.calls.append("scale:\(s.services[index].name)=\(replicas)")
            let unchanged = s.services[index].mode == .replicated(replicas)
            s.services[index].mode = .replicated(replicas)
            for (key, value) in labels { s.services[index].labels[key] = value }
            // As Swarm: an update to the same replica count leaves running tasks alone (at 0, stopping ones end).
            if unchanged && replicas > 0 { return nil }
            s.containers.removeAll { $0.swarmServiceID == id }
            return s.services[index]
        }
        if let service { startTasks(of: service, count: replicas) }
        if let hook = scaleHook.withLock({ $0 }) { await hook(id, replicas) }
    }
}

extension ContainerDetails {
    /// A container for tests: `labels` and `environment` as given; compose labels from `project`/`service`.
    public static func fake(
        name: String,
        project: String? = nil,
        service: String? = nil,
        running: Bool = true,
        labels: [String: String] = [:],
        environment: [String: String] = [:],
        mounts: [ContainerMount] = []
    ) -> ContainerDetails {
        var all = labels
        if let project { all["com.docker.compose.project"] = project }
        if let service { all["com.docker.compose.service"] = service }
        return ContainerDetails(id: "id-\(name)", name: name, image: "fake/image", isRunning: running, labels: all,
                                environment: environment, mounts: mounts)
    }
}

/// A helper's sinks, handed to the thread that plays the helper (used by it alone).
private struct UnsafeSinks: @unchecked Sendable {
    let stdout: any ByteSink
    let stderr: any ByteSink
}
