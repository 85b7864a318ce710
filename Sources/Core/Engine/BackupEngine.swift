public import Logging
public import Foundation
import Synchronization

/// Settings of a backup run.
public struct BackupConfiguration: Sendable {
    /// Where archives are assembled before they are stored, when the target is not a local directory.
    public var workDirectory: String
    /// A stack is refused when less than this is free where its archive is written.
    public var minimumFreeBytes: Int64
    /// Seconds Docker gives a container to stop before it kills it.
    public var stopTimeoutSeconds: Int
    public var hostName: String
    public var toolVersion: String
    /// Applied to a stack's archives after each successful backup of it; empty = keep everything.
    public var retention: RetentionPolicy
    /// Whom archives are encrypted to (age, `AGE_RECIPIENTS*` / `AGE_PASSPHRASE*`); empty = not encrypted.
    public var recipients: [any AgeRecipient] = []

    public init(
        workDirectory: String,
        minimumFreeBytes: Int64 = 1 << 30,
        stopTimeoutSeconds: Int = 30,
        hostName: String = ProcessInfo.processInfo.hostName,
        toolVersion: String = StackVault.version,
        retention: RetentionPolicy = RetentionPolicy()
    ) {
        self.workDirectory = workDirectory
        self.minimumFreeBytes = minimumFreeBytes
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.hostName = hostName
        self.toolVersion = toolVersion
        self.retention = retention
    }
}

/// Version information of the tool.
public enum StackVault {
    public static let version = "0.1.0"
}

/// Backs up stacks one at a time: dumps from running databases, then directories read while their containers
/// are stopped (and started again right after the last read, whatever happens), then the archive is finished,
/// verified and stored.
public struct BackupEngine: Sendable {
    public let docker: any DockerEngine
    public let strategies: StrategyRegistry
    public let storage: any StorageBackend
    public let compressor: any Compressor
    public let configuration: BackupConfiguration
    public let logger: Logger

    public init(
        docker: any DockerEngine,
        strategies: StrategyRegistry,
        storage: any StorageBackend,
        compressor: any Compressor,
        configuration: BackupConfiguration,
        logger: Logger
    ) {
        self.docker = docker
        self.strategies = strategies
        self.storage = storage
        self.compressor = compressor
        self.configuration = configuration
        self.logger = logger
    }

    /// Backs up every stack of `plan`, one after the other; one stack's failure never stops the others.
    public func run(_ plan: BackupPlan) async -> [StackResult] {
        var results: [StackResult] = []
        for stack in plan.stacks {
            if Task.isCancelled {
                results.append(StackResult(stack: stack.name, services: stack.services.count, archive: nil,
                                           sizeBytes: 0, durationSeconds: 0, downtimeSeconds: 0, warnings: [],
                                           error: "not started: the run was cancelled"))
                continue
            }
            results.append(await backup(stack))
        }
        return results
    }

    /// Backs up one stack and reports the outcome (never throws).
    public func backup(_ stack: StackPlan) async -> StackResult {
        let started = ContinuousClock.now
        var log = logger
        log[metadataKey: "stack"] = "\(stack.name)"
        log.info("backing up stack \(stack.name) (\(stack.services.count) service(s))")
        do {
            let (stored, measures) = try await backupThrowing(stack, logger: log)
            let downtime = measures.downtime
            let duration = (ContinuousClock.now - started).seconds
            log.info("\("stack \(stack.name) done: \(stored.name), \(ByteCount(stored.sizeBytes)), ")\(String(format: "%.1f s, downtime %.1f s", duration, downtime))")
            return StackResult(stack: stack.name, services: stack.services.count, archive: stored.name,
                               sizeBytes: stored.sizeBytes, durationSeconds: duration, downtimeSeconds: downtime,
                               warnings: stack.warnings, error: nil, bytesRead: measures.bytesRead,
                               bytesWritten: measures.bytesWritten, containersStopped: measures.containersStopped)
        } catch let failure as StackFailure {
            let duration = (ContinuousClock.now - started).seconds
            let measures = failure.measures
            log.error("stack \(stack.name) failed: \(failure.message)")
            return StackResult(stack: stack.name, services: stack.services.count, archive: failure.storedArchive,
                               sizeBytes: 0, durationSeconds: duration, downtimeSeconds: measures.downtime,
                               warnings: stack.warnings, error: failure.message, bytesRead: measures.bytesRead,
                               bytesWritten: measures.bytesWritten, containersStopped: measures.containersStopped)
        } catch {
            let duration = (ContinuousClock.now - started).seconds
            log.error("stack \(stack.name) failed: \(error)")
            return StackResult(stack: stack.name, services: stack.services.count, archive: nil, sizeBytes: 0,
                               durationSeconds: duration, downtimeSeconds: 0, warnings: stack.warnings,
                               error: "\(error)")
        }
    }

    private func backupThrowing(_ stack: StackPlan, logger log: Logger) async throws -> (StoredObject, StackMeasures) {
        let problems = stack.services.flatMap { s in s.errors.map { "service \(s.service): \($0)" } }
        guard problems.isEmpty else {
            throw StackFailure(message: "not backed up because of label problems: " + problems.joined(separator: "; "))
        }
        for warning in stack.warnings { log.warning("\(warning)") }

        let directory = storage.localDirectory ?? configuration.workDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try checkFreeSpace(in: directory, stack: stack.name)

        let startedAt = Date()
        let name = ArchiveName.make(stack: stack.name, date: startedAt, encrypted: !configuration.recipients.isEmpty)
        let temporaryPath = "\(directory)/.\(name).partial"
        let writer = try ArchiveWriter(outputPath: temporaryPath, compressor: compressor,
                                       recipients: configuration.recipients)
        let progress = ProgressLogger(logger: log, label: stack.name)
        writer.onProgress = { bytes in progress.report(bytes) }
        var measures = StackMeasures()
        do {
            try writer.writeIndex(ArchiveIndex(
                formatVersion: Manifest.currentFormatVersion, stack: stack.name,
                components: stack.services.flatMap { service in
                    service.strategies.map {
                        ArchiveIndex.IndexComponent(service: service.service, type: $0.type, archivePath: $0.archivePath,
                                       kind: kind(of: $0))
                    }
                }))
            var records: [Manifest.ManifestComponent] = []

            // 1. Logical dumps, from running databases; these containers are never stopped.
            for service in stack.services {
                for component in service.strategies where requirement(of: component) == .running {
                    records.append(try await run(component, of: service, stack: stack, writer: writer, logger: log))
                }
            }

            // 2. Directories, read while their containers are stopped, all together, for one point in time.
            let directoryServices = stack.services.filter { s in
                s.strategies.contains { requirement(of: $0) == .stopped }
            }
            if !directoryServices.isEmpty {
                let toStop = directoryServices.filter(\.stop)
                measures.containersStopped = toStop.count
                let (copied, stackDowntime) = try await withContainersStopped(toStop, stack: stack.name, logger: log) {
                    var copied: [Manifest.ManifestComponent] = []
                    for service in directoryServices {
                        for component in service.strategies where requirement(of: component) == .stopped {
                            copied.append(try await run(component, of: service, stack: stack, writer: writer,
                                                        logger: log))
                        }
                    }
                    return copied
                }
                records += copied
                measures.downtime = stackDowntime
            }

            // 3. Finish, verify, store. Containers are already running again.
            let manifest = Manifest(
                formatVersion: Manifest.currentFormatVersion, tool: "stackvault",
                toolVersion: configuration.toolVersion, host: configuration.hostName, stack: stack.name,
                archiveName: name, compression: type(of: compressor).name,
                startedAt: startedAt, finishedAt: Date(), components: records,
                warnings: stack.warnings + writer.warnings)
            // Verified on the way: the writer reads the archive back as it grows (throws if it is not intact).
            try await writer.finish(manifest: manifest)
            measures.bytesRead = writer.uncompressedBytesWritten
            measures.bytesWritten = writer.compressedBytesWritten
            progress.finish()
            log.info("archive verified: \(records.count) component(s), \(ByteCount(writer.compressedBytesWritten))")
        } catch {
            measures.bytesRead = writer.uncompressedBytesWritten
            measures.bytesWritten = writer.compressedBytesWritten
            if let stopFailure = error as? StackFailure { measures.downtime = stopFailure.measures.downtime }
            writer.abort()
            throw StackFailure(message: "\(error)", measures: measures)
        }

        do {
            let stored = try await storage.store(localPath: temporaryPath, as: name)
            _ = try? FileManager.default.removeItem(atPath: temporaryPath)
            await applyRetention(stack: stack.name, protecting: stored.name, logger: log)
            return (stored, measures)
        } catch {
            // Nothing is lost: the verified archive stays on local disk under a name that says so.
            let kept = "\(directory)/\(name).unsent"
            let keptNote = rename(temporaryPath, kept) == 0 ? "; the verified archive was kept at \(kept)" : ""
            throw StackFailure(message: "storing the archive in \(storage.description) failed: \(error)\(keptNote)",
                               measures: measures)
        }
    }

    /// Prunes the stack's older archives by the configured policy. A failure here is logged and never fails the
    /// backup that just succeeded.
    private func applyRetention(stack: String, protecting name: String, logger log: Logger) async {
        guard !configuration.retention.isEmpty else { return }
        do {
            let outcomes = try await Pruner(storage: storage, policy: configuration.retention, logger: log)
                .prune(stacks: [stack], dryRun: false, protecting: [name])
            let removed = outcomes.flatMap(\.decisions).filter { !$0.keep }.count
            log.info("retention: kept \(outcomes.flatMap(\.decisions).count - removed), removed \(removed) archive(s)")
        } catch {
            log.warning("retention for stack \(stack) failed (the backup itself succeeded): \(error)")
        }
    }

    private func run(
        _ component: ComponentSpec,
        of service: ServicePlan,
        stack: StackPlan,
        writer: ArchiveWriter,
        logger log: Logger
    ) async throws -> Manifest.ManifestComponent {
        guard let strategy = strategies.strategy(forType: component.type) else {
            throw StackVaultError(.invalidConfiguration, "no strategy '\(component.type)' is registered")
        }
        let container = try await docker.inspectContainer(service.containerID)
        log.info("\(service.service): \(describe(component)) from container \(container.name)")
        let started = ContinuousClock.now
        let context = BackupContext(docker: docker, logger: log, stack: stack.name, service: service.service)
        let record: ComponentRecord
        do {
            record = try await strategy.backup(component, container: container, context: context, into: writer)
        } catch let error as StackVaultError {
            throw error
        } catch {
            throw StackVaultError(.archive, "\(describe(component)) of service \(service.service) "
                + "(container \(container.name)) failed: \(error)", cause: nil)
        }
        let elapsed = String(format: "%.1f s", (ContinuousClock.now - started).seconds)
        log.info("\(service.service): \(describe(component)) done, \(ByteCount(record.sizeBytes)) in \(elapsed)")
        return Manifest.ManifestComponent(
            service: service.service, container: container.name, type: component.type, name: component.name,
            sourcePath: component.path, archivePath: record.archivePath, kind: record.kind,
            sizeBytes: record.sizeBytes, entries: record.entries, sha256: record.sha256)
    }

    /// Stops `services`' containers together, runs `body`, and starts them again on every path: success, error,
    /// cancellation (see `ContainerStopGuard`). Returns the body's result and the downtime.
    func withContainersStopped<T: Sendable>(
        _ services: [ServicePlan],
        stack: String,
        logger log: Logger,
        body: () async throws -> T
    ) async throws -> (T, Double) {
        let stopGuard = ContainerStopGuard(
            docker: docker, stopTimeoutSeconds: configuration.stopTimeoutSeconds, logger: log)
        do {
            return try await stopGuard.run(
                services.map { StoppedContainer(id: $0.containerID, name: $0.container) }, stack: stack,
                purpose: "backup", body: body)
        } catch let failure as ContainersLeftStopped {
            throw StackFailure(message: failure.description, measures: StackMeasures(downtime: failure.downtime))
        }
    }

    private func requirement(of component: ComponentSpec) -> ContainerRequirement {
        strategies.strategy(forType: component.type)?.requirement ?? .stopped
    }

    private func kind(of component: ComponentSpec) -> ComponentRecord.Kind {
        requirement(of: component) == .stopped ? .tree : .file
    }

    private func describe(_ component: ComponentSpec) -> String {
        if let name = component.name, let path = component.path { return "\(component.type) \(name) (\(path))" }
        return component.type
    }

    private func checkFreeSpace(in directory: String, stack: String) throws {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return }
        let free = Int64(info.f_bavail) * Int64(info.f_frsize)
        guard free >= configuration.minimumFreeBytes else {
            throw StackVaultError(.insufficientSpace,
                "only \(ByteCount(free)) free in \(directory), less than the required "
                    + "\(ByteCount(configuration.minimumFreeBytes)); free some space or lower MIN_FREE_SPACE")
        }
    }
}

/// What one stack's backup measured: for the summary, the state file and the metrics.
struct StackMeasures: Sendable {
    /// Seconds from the first stop to the last start of the stopped containers.
    var downtime = 0.0
    /// The archive's tar stream (dumps, directories, headers) before compression.
    var bytesRead: Int64 = 0
    /// The compressed archive.
    var bytesWritten: Int64 = 0
    var containersStopped = 0
}

/// A stack failed; carries what the summary needs.
struct StackFailure: Error, CustomStringConvertible {
    var message: String
    var measures = StackMeasures()
    var storedArchive: String? = nil
    var description: String { message }
}

extension Result {
    var failureDescription: String? {
        if case .failure(let error) = self { return "\(error)" }
        return nil
    }
}

extension Duration {
    /// The duration in seconds (fractions included).
    package var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
