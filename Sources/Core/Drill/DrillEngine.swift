public import Foundation
public import Logging

/// What a restore drill found, per component: what was checked and what differed (`stackvault drill --json`).
public struct DrillReport: Codable, Sendable {
    /// One component of the archive.
    public struct Check: Codable, Sendable {
        public var service: String
        public var archivePath: String
        public var type: String
        public var passed: Bool
        /// What was checked, one short sentence each ("replayed with errors fatal", "12 tables: row counts equal").
        public var checked: [String]
        /// What failed or differed, each naming its culprit; empty when `passed`.
        public var problems: [String]
    }

    public var archive: String
    public var stack: String
    public var host: String
    public var startedAt: Date
    /// Wall time of the whole drill, in seconds.
    public var seconds: Double
    /// True when every component passed.
    public var passed: Bool
    public var checks: [Check]
}

/// Settings of a drill.
public struct DrillOptions: Sendable {
    /// Memory limit of each drill container, in bytes.
    public var memoryLimitBytes: Int64
    /// How long a database server in a drill container may take to initialise and serve.
    public var readinessTimeout: Duration
    /// Directories larger than this (bytes, as archived) are not drilled; the report says so. nil: no limit.
    public var maxDirectoryBytes: Int64?
    /// Where the re-read of a restored directory is written while its digest is computed (a temporary file,
    /// removed at once).
    public var workDirectory: String
    /// Images to drill with instead of the archived ones, by service (a restore drills with its target's images).
    public var images: [String: String] = [:]

    public init(memoryLimitBytes: Int64 = 2 << 30, readinessTimeout: Duration = .seconds(300),
                maxDirectoryBytes: Int64? = nil, workDirectory: String = NSTemporaryDirectory())
    {
        self.memoryLimitBytes = memoryLimitBytes
        self.readinessTimeout = readinessTimeout
        self.maxDirectoryBytes = maxDirectoryBytes
        self.workDirectory = workDirectory
    }
}

/// A restore drill: proves that a verified archive restores, without touching the live stack.
///
/// For each service of the archive a throwaway container is created from the image the manifest recorded (it
/// must exist on this host), with fresh anonymous volumes at the archived directories, no network, a memory
/// limit, the labels `stackvault.drill=<archive>` and `stackvault.drill.service=<service>`, and credentials made
/// for the drill (``DrillStrategy/drillEnvironment(password:)``). Database servers are started and awaited; the
/// archive is then restored into these containers by ``RestoreEngine``, exactly as `restore --map` would (dumps
/// replayed with errors fatal, directories replaced). Checks: every database and table the dump listed exists
/// with the recorded row count (``DumpContents``), and every directory, read back, has the manifest's tree
/// digest, size and entry count. Every drill container and its volumes are removed on every path, cancellation
/// (SIGTERM) included.
public struct DrillEngine: Sendable {
    public let docker: any DockerEngine
    public let strategies: StrategyRegistry
    public let stopTimeoutSeconds: Int
    public let logger: Logger
    public let options: DrillOptions

    /// The label every drill container carries (value: the archive's name).
    public static let label = "stackvault.drill"

    public init(docker: any DockerEngine, strategies: StrategyRegistry, stopTimeoutSeconds: Int, logger: Logger,
                options: DrillOptions = DrillOptions())
    {
        self.docker = docker
        self.strategies = strategies
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.logger = logger
        self.options = options
    }

    /// Drills `manifest`'s archive, read from `source` (already verified). Throws only when Docker cannot be
    /// used; every failed check is in the report.
    public func drill(_ manifest: Manifest, name: String, origin: String, source: any RestoreSource) async throws
        -> DrillReport
    {
        let clock = ContinuousClock()
        let started = clock.now
        let startedAt = Date()
        let run = DrillRun(engine: self, manifest: manifest, name: name)
        var checks: [DrillReport.Check]
        do {
            checks = try await run.perform(origin: origin, source: source)
            await run.removeContainers()
        } catch {
            await run.removeContainers()
            throw error
        }
        checks.sort { a, b in
            (manifest.components.firstIndex { $0.archivePath == a.archivePath } ?? 0)
                < (manifest.components.firstIndex { $0.archivePath == b.archivePath } ?? 0)
        }
        return DrillReport(archive: name, stack: manifest.stack, host: manifest.host, startedAt: startedAt,
                           seconds: (clock.now - started).seconds, passed: checks.allSatisfy(\.passed),
                           checks: checks)
    }
}

/// One drill's state: the containers it made (removed at the end), and the checks.
private final class DrillRun: @unchecked Sendable {
    let engine: DrillEngine
    let manifest: Manifest
    let name: String
    let id = String(UUID().uuidString.lowercased().prefix(8))
    /// Containers made for the drill, by service.
    var containers: [String: ContainerDetails] = [:]
    var checks: [DrillReport.Check] = []

    init(engine: DrillEngine, manifest: Manifest, name: String) {
        self.engine = engine
        self.manifest = manifest
        self.name = name
    }

    var docker: any DockerEngine { engine.docker }
    var logger: Logger { engine.logger }

    func fail(_ component: Manifest.ManifestComponent, _ problem: String, checked: [String] = []) {
        checks.append(.init(service: component.service, archivePath: component.archivePath, type: component.type,
                            passed: false, checked: checked, problems: [problem]))
    }

    func perform(origin: String, source: any RestoreSource) async throws -> [DrillReport.Check] {
        var drillable: [Manifest.ManifestComponent] = []
        var services: [String] = []
        for component in manifest.components where !services.contains(component.service) {
            services.append(component.service)
        }
        for service in services {
            let components = manifest.components.filter { $0.service == service }
            var kept: [Manifest.ManifestComponent] = []
            for component in components {
                if component.kind == .tree, let limit = engine.options.maxDirectoryBytes, component.sizeBytes > limit {
                    checks.append(.init(service: service, archivePath: component.archivePath, type: component.type,
                        passed: true, checked: ["not drilled: \(ByteCount(component.sizeBytes)) is over "
                            + "DRILL_MAX_DIRECTORY_SIZE (\(ByteCount(limit)))"], problems: []))
                } else {
                    kept.append(component)
                }
            }
            if kept.isEmpty { continue }
            do {
                try await prepare(service: service, components: kept)
                drillable += kept
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                for component in kept { fail(component, "\(error)") }
            }
        }
        if drillable.isEmpty { return checks }
        try Task.checkCancellation()

        // Restore into the drill containers, as `restore --map service=container` does.
        var scoped = manifest
        scoped.components = drillable
        let restore = RestoreEngine(docker: docker, strategies: engine.strategies,
                                    stopTimeoutSeconds: engine.stopTimeoutSeconds, logger: logger)
        // Only the services whose container is ready: one that failed to start (killed for memory, never ready) is
        // reported as such above, and must not be asked of the restore plan.
        let ready = Set(drillable.map(\.service))
        let map = containers.filter { ready.contains($0.key) }.mapValues(\.name)
        let plan = try await restore.plan(
            manifest: scoped, origin: origin,
            options: RestoreOptions(services: Array(map.keys), intoStack: "stackvault-drill-\(id)", containerMap: map))
        let results = try await restore.run(plan, source: source)
        try Task.checkCancellation()
        for component in drillable {
            let result = results.first { $0.archivePath == component.archivePath }
            guard let result, result.outcome == .restored else {
                let why = result?.error ?? "not restored (an earlier step failed)"
                fail(component, "the restore failed: \(why)")
                continue
            }
            guard let container = containers[component.service] else { continue }
            if component.kind == .file {
                await checkDump(component, in: container)
            } else {
                await checkTree(component, in: container)
            }
        }
        return checks
    }

    /// Creates the service's drill container and, when it holds a database, starts it and waits until it serves.
    func prepare(service: String, components: [Manifest.ManifestComponent]) async throws {
        let archived = components.lazy.compactMap { $0.imageID ?? $0.image }.first
        guard let image = engine.options.images[service] ?? archived else {
            throw StackVaultError(.restoreFailed, "the archive records no image for service \(service) (it was "
                + "written by an earlier StackVault): back the stack up again to drill it")
        }
        let named = engine.options.images[service] ?? components.lazy.compactMap(\.image).first ?? image
        guard try await docker.imageExists(image) else {
            throw StackVaultError(.restoreFailed, "the image of service \(service), \(named) (\(image)), no longer "
                + "exists on this host: pull or build it again (or drill a newer archive)")
        }
        let dumps = components.compactMap { component -> (any DrillStrategy)? in
            component.kind == .file ? engine.strategies.strategy(forType: component.type) as? any DrillStrategy : nil
        }
        if dumps.count < components.filter({ $0.kind == .file }).count {
            throw StackVaultError(.restoreFailed, "service \(service) holds a dump that StackVault cannot drill")
        }
        let password = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let safeService = String(service.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        let spec = ContainerCreateSpec(
            name: "stackvault-drill-\(id)-\(safeService)", image: image, entrypoint: [],
            labels: [DrillEngine.label: name, "\(DrillEngine.label).service": service]
                .merging(HolderIdentity.current().labels(prefix: StackLocker.makerLabel)) { $1 },
            networkDisabled: true)
        var full = spec
        full.environment = dumps.flatMap { $0.drillEnvironment(password: password) }
        full.memoryLimitBytes = engine.options.memoryLimitBytes
        // At the directory each copy read (the resolved one for a label path that was a symbolic link).
        full.anonymousVolumes = Array(Set(components.filter { $0.kind == .tree }
            .compactMap { $0.resolvedPath ?? $0.sourcePath })).sorted()
        let id = try await docker.createContainer(full)
        var container = try await docker.inspectContainer(id)
        containers[service] = container
        logger.info("drill: service \(service) in container \(container.name) from \(named)")
        guard !dumps.isEmpty else { return }
        try await docker.startContainer(id)
        container = try await docker.inspectContainer(id)
        containers[service] = container
        for strategy in dumps {
            try await strategy.waitUntilReady(container, docker: docker, timeout: engine.options.readinessTimeout)
        }
    }

    func checkDump(_ component: Manifest.ManifestComponent, in container: ContainerDetails) async {
        var checked = ["replayed with errors fatal"]
        guard let expected = component.contents else {
            checked.append("no row counts to compare (the archive was written by an earlier StackVault)")
            checks.append(.init(service: component.service, archivePath: component.archivePath,
                                type: component.type, passed: true, checked: checked, problems: []))
            return
        }
        guard let strategy = engine.strategies.strategy(forType: component.type) as? any DrillStrategy else {
            return fail(component, "no drill support for \(component.type)", checked: checked)
        }
        do {
            let found = try await strategy.replayedContents(of: expected, in: container, docker: docker)
            var problems: [String] = []
            for database in expected.databases where !found.databases.contains(database) {
                problems.append("database \(database) is missing after the replay")
            }
            for table in expected.tables {
                guard let after = found.tables.first(where: {
                    $0.database == table.database && $0.schema == table.schema && $0.name == table.name
                }) else {
                    problems.append("table \(table.qualifiedName) is missing after the replay")
                    continue
                }
                if after.rows != table.rows, strategy.comparesRows(of: table) {
                    problems.append("table \(table.qualifiedName): \(table.rows) rows in the dump, \(after.rows) "
                        + "after the replay")
                }
            }
            checked.append("\(expected.databases.count) database(s) exist")
            checked.append("\(expected.tables.count) table(s), \(expected.totalRows) row(s): counts compared")
            checks.append(.init(service: component.service, archivePath: component.archivePath,
                                type: component.type, passed: problems.isEmpty, checked: checked,
                                problems: problems))
        } catch {
            fail(component, "counting the replayed rows failed: \(error)", checked: checked)
        }
    }

    /// Reads the restored directory back exactly as a backup reads it (the strategy's own `backup`, through a
    /// helper container when it can have one), and compares its digest, size and entries with the manifest's.
    func checkTree(_ component: Manifest.ManifestComponent, in container: ContainerDetails) async {
        guard let path = component.resolvedPath ?? component.sourcePath else {
            return fail(component, "the manifest records no source path for \(component.archivePath)")
        }
        guard let strategy = engine.strategies.strategy(forType: component.type) else {
            return fail(component, "no strategy for \(component.type) to read \(path) back with")
        }
        let file = (engine.options.workDirectory as NSString)
            .appendingPathComponent(".stackvault-drill-\(id)-\(checks.count).tar.zst")
        defer { unlink(file) }
        do {
            let writer = try ArchiveWriter(outputPath: file,
                                           compressor: try ZstdCompressor(settings: CompressionSettings(level: 1)))
            defer { writer.abort() }
            try writer.writeIndex(ArchiveIndex(stack: manifest.stack, components: [
                ArchiveIndex.IndexComponent(service: component.service, type: component.type,
                                            archivePath: component.archivePath, kind: .tree),
            ]))
            let spec = ComponentSpec(type: component.type, name: component.name, path: path,
                                     archivePath: component.archivePath)
            _ = try await strategy.backup(spec, container: container, context: BackupContext(
                docker: docker, logger: logger, stack: "stackvault-drill-\(id)", service: component.service),
                into: writer)
            let report = try await writer.finish(Manifest.Header(
                toolVersion: StackVault.version, host: manifest.host, stack: manifest.stack,
                archiveName: "drill", compression: "zstd", startedAt: Date(), warnings: []))
            guard let back = report.components.first else {
                return fail(component, "reading \(path) back from the drill container gave nothing")
            }
            var problems: [String] = []
            if back.actualSHA256 != component.sha256 {
                problems.append("\(path): the tree digest after the restore differs from the manifest's "
                    + "(\(back.actualEntries) entries and \(back.actualSizeBytes) bytes read back, "
                    + "\(component.entries) entries and \(component.sizeBytes) bytes archived)")
            }
            checks.append(.init(service: component.service, archivePath: component.archivePath,
                                type: component.type, passed: problems.isEmpty,
                                checked: ["restored into \(path)", "tree digest, \(component.entries) entries, "
                                    + "\(ByteCount(component.sizeBytes)) compared"], problems: problems))
        } catch {
            fail(component, "reading \(path) back from the drill container failed: \(error)")
        }
    }

    /// Removes every drill container with its anonymous volumes; not cancellable (it runs detached).
    func removeContainers() async {
        let made = Array(containers.values)
        let docker = self.docker
        let logger = self.logger
        await Task.detached {
            for container in made {
                do {
                    try await docker.removeContainer(container.id, force: true)
                } catch {
                    logger.error("""
                        drill: could not remove container \(container.name): \(error); remove it with \
                        docker rm -f -v \(container.name)
                        """)
                }
            }
        }.value
    }
}
