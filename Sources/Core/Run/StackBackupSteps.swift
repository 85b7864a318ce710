import Foundation
import Logging

/// One stack's backup in progress: its steps in order, what they measured, and the cleanups they registered.
///
/// What SIGTERM (task cancellation) does depends on the step it lands in; the step throws and `unwind` runs:
/// 1. `checkPlan`: nothing was touched.
/// 2. `openArchive`: registers "remove the partial archive".
/// 3. `dump`: containers keep running; the partial archive is removed.
/// 4. `stopAndCopy`: `ContainerStopGuard` starts the stopped containers again before the step throws; then the
///    partial archive is removed.
/// 5. `sealAndVerify`: the partial archive is removed; once sealed, the cleanup becomes "keep the verified archive
///    as `<name>.unsent`".
/// 6. `store`: the verified archive is kept as `.unsent` (the storage backend aborts its own upload).
/// 7. `prune`: never fails the backup; the sealed archive is already stored.
/// Not `Sendable`: it lives in the one task that runs `StackBackup.backup`.
final class StackBackupSteps {
    private let settings: StackBackup
    private let stack: StackPlan
    private let log: Logger
    private var cleanup = CleanupStack()
    private(set) var measures = StackMeasures()
    private var writer: ArchiveWriter?

    init(settings: StackBackup, stack: StackPlan, logger: Logger) {
        self.settings = settings
        self.stack = stack
        self.log = logger
    }

    private var docker: any DockerEngine { settings.docker }
    private var configuration: BackupConfiguration { settings.configuration }

    /// The steps, in order.
    func run() async throws -> StoredObject {
        try checkPlan()
        let archive = try await openArchive()
        try await dump(into: archive)
        try await stopAndCopy(into: archive)
        try await sealAndVerify(archive)
        let stored = try await store(archive)
        await prune(protecting: stored.name)
        return stored
    }

    /// Runs the registered cleanups (newest first); returns their notes for the failure message.
    func unwind() -> [String] {
        if let writer {
            measures.bytesRead = writer.uncompressedBytesWritten
            measures.bytesWritten = writer.compressedBytesWritten
        }
        return cleanup.unwind(logger: log)
    }

    /// The archive being written: where, under which name, since when.
    struct OpenArchive {
        var writer: ArchiveWriter
        var name: String
        var directory: String
        var temporaryPath: String
        var startedAt: Date
    }

    // MARK: 1. Plan

    /// Refuses a stack whose labels have problems, before anything is touched.
    private func checkPlan() throws {
        let problems = stack.services.flatMap { s in s.errors.map { "service \(s.service): \($0)" } }
        guard problems.isEmpty else {
            throw StackFailure(message: "not backed up because of label problems: " + problems.joined(separator: "; "))
        }
        for warning in stack.warnings { log.warning("\(warning)") }
    }

    // MARK: 2. Open the archive

    /// Checks free space, creates the partial archive and writes its index. Cleanup: remove the partial archive.
    /// Inside a lock, the partial archive is recorded in the lock's journal first (whoever breaks the lock of a
    /// dead run removes it), and this stack's partial archives older than the lease (dead runs' whose lock is
    /// gone) are removed.
    private func openArchive() async throws -> OpenArchive {
        let directory = settings.storage.localDirectory ?? configuration.workDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if let held = HeldLock.current {
            PartialArchives.removeStale(in: directory, stack: stack.name, olderThan: held.ttl.seconds, logger: log)
        }
        try checkFreeSpace(in: directory)
        let startedAt = Date()
        let name = ArchiveName.make(stack: stack.name, date: startedAt, encrypted: !configuration.recipients.isEmpty)
        let temporaryPath = "\(directory)/.\(name).partial"
        try await HeldLock.current?.recordPartial(temporaryPath)
        let writer = try ArchiveWriter(outputPath: temporaryPath, compressor: settings.compressor,
                                       recipients: configuration.recipients)
        self.writer = writer
        cleanup.push("remove the partial archive") {
            writer.abort()
            return nil
        }
        try writer.writeIndex(ArchiveIndex(
            formatVersion: Manifest.currentFormatVersion, stack: stack.name,
            components: stack.services.flatMap { service in
                service.components.map {
                    $0.indexEntry(service: service.service, container: service.container, image: service.image,
                                  imageID: service.imageID.isEmpty ? nil : service.imageID)
                }
            }))
        return OpenArchive(writer: writer, name: name, directory: directory, temporaryPath: temporaryPath,
                           startedAt: startedAt)
    }

    // MARK: 3. Dump

    /// Logical dumps, from running databases; these containers are never stopped.
    private func dump(into archive: OpenArchive) async throws {
        for service in stack.services {
            for component in service.components(needing: .running) {
                try await back(up: component, of: service, into: archive.writer)
            }
        }
    }

    // MARK: 4. Stop and copy

    /// Directories, read while their containers are stopped, all together, for one point in time. Cleanup is
    /// scoped: the containers run again before this step returns or throws.
    private func stopAndCopy(into archive: OpenArchive) async throws {
        let services = stack.services.filter { !$0.components(needing: .stopped).isEmpty }
        guard !services.isEmpty else { return }
        // The stop set (labelled containers and those sharing what is copied; never a Swarm task, see `StopSet`).
        let toStop = stack.stops
        measures.containersStopped = toStop.count
        // A helper image that must first be built and imported is made before anything stops, not during the
        // downtime (see `HelperImage`).
        _ = await docker.helperImage(build: true)
        let estimates = await estimateSizes(of: services)
        if Task.isCancelled {
            throw StackVaultError(.cancelled, "stopped (SIGTERM/SIGINT) before any container of stack \(stack.name) "
                + "was stopped")
        }
        let stopGuard = ContainerStopGuard(
            docker: docker, stopTimeoutSeconds: configuration.stopTimeoutSeconds, logger: log)
        // A Swarm task is never stopped (Swarm would start a replacement): its service is scaled to 0 and back, and
        // its volumes are read through a reader container (see `SwarmScaleGuard`).
        let toScale = services.filter(\.stop).compactMap { service in
            service.swarmService.map { ScaledService(id: $0.id, name: $0.name, taskContainerID: service.containerID) }
        }
        let scaleGuard = SwarmScaleGuard(docker: docker, host: configuration.hostName, logger: log)
        let started = ContinuousClock.now
        do {
            _ = try await stopGuard.run(
                toStop.map(\.stoppedContainer), stack: stack.name,
                purpose: "backup", recordDowntime: { measures.downtime = $0 }
            ) {
                try await scaleGuard.run(toScale, stack: stack.name, purpose: "backup") { readers in
                    for service in services {
                        let reader = service.swarmService.flatMap { readers[$0.id] }
                        for component in service.components(needing: .stopped) {
                            try await self.back(up: component, of: service, into: archive.writer, from: reader,
                                                estimate: estimates[component.spec.archivePath])
                        }
                    }
                }
            }
            if !toScale.isEmpty { measures.downtime = (ContinuousClock.now - started).seconds }
        } catch let failure as ContainersLeftStopped {
            throw StackFailure(message: failure.description)
        }
    }

    // MARK: 5. Seal and verify

    /// Finishes the archive: the writer builds the manifest from the index and what was written, and verifies
    /// the archive on the way (reads it back as it grows, throws if it is not intact). Cleanup becomes: keep the
    /// verified archive as `<name>.unsent`.
    private func sealAndVerify(_ archive: OpenArchive) async throws {
        let writer = archive.writer
        let report = try await writer.finish(Manifest.Header(
            toolVersion: configuration.toolVersion, host: configuration.hostName, stack: stack.name,
            archiveName: archive.name, compression: type(of: settings.compressor).name,
            startedAt: archive.startedAt, warnings: stack.warnings))
        let count = report.manifest?.components.count ?? 0
        measures.bytesRead = writer.uncompressedBytesWritten
        measures.bytesWritten = writer.compressedBytesWritten
        self.writer = nil
        log.info("archive verified: \(count) component(s), \(ByteCount(writer.compressedBytesWritten))")
        cleanup.pop("remove the partial archive")
        let (temporaryPath, kept) = (archive.temporaryPath, "\(archive.directory)/\(archive.name).unsent")
        // Nothing is lost when storing fails: the verified archive stays on local disk under a name that says so.
        cleanup.push("keep the verified archive as .unsent") {
            rename(temporaryPath, kept) == 0 ? "; the verified archive was kept at \(kept)" : nil
        }
    }

    // MARK: 6. Store

    /// Hands the sealed archive to the storage backend, then removes the local copy.
    private func store(_ archive: OpenArchive) async throws -> StoredObject {
        let stored: StoredObject
        do {
            stored = try await settings.storage.store(localPath: archive.temporaryPath, as: archive.name)
        } catch {
            throw StackFailure(message: "storing the archive in \(settings.storage.description) failed: \(error)")
        }
        cleanup.pop("keep the verified archive as .unsent")
        _ = try? FileManager.default.removeItem(atPath: archive.temporaryPath)
        return stored
    }

    // MARK: 7. Prune

    /// Prunes the stack's older archives by the configured policy, and counts the ones left (`measures`) from the
    /// same listing; without a policy, one listing of the stack's names counts them. A failure here is logged and
    /// never fails the backup that just succeeded.
    private func prune(protecting name: String) async {
        guard !configuration.retention.isEmpty else {
            do {
                measures.archivesInTarget = try await ArchiveCatalog.load(from: settings.storage, stack: stack.name).count
            } catch {
                log.warning("counting the archives of stack \(stack.name) failed (the backup itself succeeded): \(error)")
            }
            return
        }
        do {
            let outcomes = try await Pruner(storage: settings.storage, policy: configuration.retention, logger: log)
                .prune(stacks: [stack.name], dryRun: false, protecting: [name])
            let decisions = outcomes.flatMap(\.decisions)
            let removed = decisions.filter { !$0.keep }.count
            // An archive whose deletion failed is still there.
            measures.archivesInTarget = decisions.count - removed + outcomes.reduce(0) { $0 + $1.failures.count }
            log.info("retention: kept \(decisions.count - removed), removed \(removed) archive(s)")
        } catch {
            log.warning("retention for stack \(stack.name) failed (the backup itself succeeded): \(error)")
        }
    }

    // MARK: Helpers

    /// Each directory's size, measured while its container still runs (`BackupStrategy.estimateSize`), by archive
    /// path: the estimated totals of the copies' progress lines. Nothing is measured when progress lines are off.
    private func estimateSizes(of services: [ServicePlan]) async -> [String: Int64] {
        guard ProgressReporter.settings.interval != nil else { return [:] }
        var estimates: [String: Int64] = [:]
        for service in services {
            guard let container = try? await docker.inspectContainer(service.containerID) else { continue }
            let context = BackupContext(docker: docker, logger: log, stack: stack.name, service: service.service)
            for component in service.components(needing: .stopped) where !Task.isCancelled {
                estimates[component.spec.archivePath] = await component.strategy.estimateSize(
                    component.spec, container: container, context: context)
            }
        }
        return estimates
    }

    /// Runs one component's strategy (the one the plan resolved); the writer keeps what it wrote for the manifest.
    private func back(
        up component: PlannedComponent,
        of service: ServicePlan,
        into writer: ArchiveWriter,
        from reader: ContainerDetails? = nil,
        estimate: Int64? = nil
    ) async throws {
        let container = if let reader { reader } else { try await docker.inspectContainer(service.containerID) }
        log.info("\(service.service): \(component.summary) from container \(container.name)")
        let started = ContinuousClock.now
        let context = BackupContext(docker: docker, logger: log, stack: stack.name, service: service.service)
        let subject = (component.spec.name.map { "\(component.spec.type) \($0)" } ?? component.spec.type)
            + " (service \(service.service))"
        let progress = ProgressReporter(
            operation: component.requirement == .stopped ? "copy" : "dump", subject: subject,
            total: estimate.map { ProgressTotal(bytes: $0, estimated: true) }, logger: log
        ).start()
        writer.progress = progress
        defer {
            progress.finish()
            writer.progress = nil
        }
        let record: ComponentRecord
        do {
            record = try await component.strategy.backup(component.spec, container: container, context: context,
                                                         into: writer)
        } catch let error as StackVaultError {
            guard component.requirement == .stopped, let path = component.spec.path else { throw error }
            throw await explainBrokenCopy(error, path: path, container: container)
        } catch {
            throw StackVaultError(.archive, "\(component.summary) of service \(service.service) "
                + "(container \(container.name)) failed: \(error)", cause: nil)
        }
        let elapsed = String(format: "%.1f s", (ContinuousClock.now - started).seconds)
        log.info("\(service.service): \(component.summary) done, \(ByteCount(record.sizeBytes)) in \(elapsed)")
    }

    /// A copy whose tar stream broke off or ended early: a file changed size while it was read. Names the
    /// running containers that mount the path (labelled `backup.stop=false`, or started meanwhile).
    private func explainBrokenCopy(_ error: StackVaultError, path: String, container: ContainerDetails) async
        -> StackVaultError
    {
        let text = "\(error)"
        guard text.contains("broke off") || text.contains("ended inside the entry") else { return error }
        var others: [ContainerDetails] = []
        for summary in (try? await docker.listContainers(labelFilters: [])) ?? [] where summary.state == "running" {
            if let details = try? await docker.inspectContainer(summary.id) { others.append(details) }
        }
        let writers = StopSet.runningWriters(of: path, in: container, among: others)
        let cause = writers.isEmpty
            ? "most likely a file changed while it was read (no other running container mounts \(path) now)"
            : "a file changed while it was read: \(writers.joined(separator: ", ")) mount\(writers.count == 1 ? "s" : "") "
                + "\(path) of \(container.name) and \(writers.count == 1 ? "was" : "were") running (labelled "
                + "\(StopSet.keepRunningLabel)=false, or started during the copy)"
        return StackVaultError(error.code, "\(error.message); \(cause)")
    }

    private func checkFreeSpace(in directory: String) throws {
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
