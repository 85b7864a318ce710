import Foundation
import Logging
@testable import StackVaultCore
import StackVaultStorage
import StackVaultStrategies
import StackVaultTestKit
import Synchronization
import Testing

/// Swarm stacks against the fake engine: discovery, label merging, the plan's refusals, scaling instead of
/// stopping, and the crash record.
@Suite struct SwarmTests {
    let registry = try! BuiltinStrategies.registry()

    static func task(labels: [String: String] = [:], mounts: [ContainerMount] = [],
                     environment: [String: String] = [:]) -> ContainerDetails {
        ContainerDetails(id: "template", name: "template", image: "fake/image", isRunning: true, labels: labels,
                         environment: environment, mounts: mounts)
    }

    static let dataVolume = ContainerMount(type: "volume", destination: "/data", name: "app_files-data")

    /// A manager node with stack `app`: `db` (container labels), `files` (2 replicas, container labels, a named
    /// volume) and `tagged` (labels only in the service spec, as `deploy.labels`).
    static func engine(manager: Bool = true) -> FakeDockerEngine {
        let docker = FakeDockerEngine()
        docker.joinSwarm(manager: manager)
        docker.addService(SwarmService(id: "s-db", name: "app_db", labels: [:], mode: .replicated(1)), stack: "app",
                          template: task(labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                                         environment: ["POSTGRES_PASSWORD": "pw"]))
        docker.addService(SwarmService(id: "s-files", name: "app_files", labels: [:], mode: .replicated(2)),
                          stack: "app",
                          template: task(labels: ["backup.enable": "true", "backup.volume-path.data": "/data"],
                                         mounts: [dataVolume]))
        docker.addService(SwarmService(id: "s-tagged", name: "app_tagged",
                                       labels: ["backup.enable": "true", "backup.volume-path.srv": "/srv"],
                                       mode: .replicated(1)), stack: "app",
                          template: task(mounts: [ContainerMount(type: "volume", destination: "/srv",
                                                                 name: "app_tagged-data")]))
        return docker
    }

    func plan(_ docker: FakeDockerEngine) async throws -> BackupPlan {
        try await Planner(docker: docker, strategies: registry).makePlan()
    }

    @Test func aStackIsNamedByItsNamespaceAndServicesByTheirComposeNames() async throws {
        let plan = try await plan(Self.engine())
        #expect(plan.stacks.map(\.name) == ["app"])
        let app = try #require(plan.stack(named: "app"))
        #expect(app.services.map(\.service) == ["db", "files", "tagged"])
        let files = app.services[1]
        #expect(files.container == "app_files.1.task2", "the task of the lowest slot is the one backed up")
        #expect(files.swarmService == SwarmServicePlan(id: "s-files", name: "app_files", mode: "replicated",
                                                        replicas: 2,
                                                        tasksOnNode: ["app_files.1.task2", "app_files.2.task3"]))
        #expect(files.stop && files.errors.isEmpty)
        #expect(app.services[0].stop == false)
        #expect(files.strategies.map(\.archivePath) == ["files/volumes/data"])
        #expect(!plan.hasErrors, "\(app.services.flatMap(\.errors))")
    }

    @Test func labelsUnderDeployLabelsCountAndThePlanSaysWhereEachCameFrom() async throws {
        let plan = try await plan(Self.engine())
        let services = try #require(plan.stack(named: "app")).services
        let tagged = try #require(services.first { $0.service == "tagged" })
        #expect(tagged.strategies.map(\.archivePath) == ["tagged/volumes/srv"])
        #expect(tagged.labelSources == ["backup.enable": "service", "backup.volume-path.srv": "service"])
        let files = try #require(services.first { $0.service == "files" })
        #expect(files.labelSources == ["backup.enable": "container", "backup.volume-path.data": "container"])
    }

    @Test func theContainersLabelWinsOverTheServicesWithAWarning() {
        let container = ContainerDetails(id: "c", name: "c", image: "i", isRunning: true,
                                         labels: ["backup.volume-path.data": "/data"], environment: [:])
        let service = SwarmService(id: "s", name: "app_files",
                                   labels: ["backup.enable": "true", "backup.volume-path.data": "/other"],
                                   mode: .replicated(1))
        let merged = Planner.effectiveLabels(of: container, service: service)
        #expect(merged.labels["backup.volume-path.data"] == "/data")
        #expect(merged.labels["backup.enable"] == "true")
        #expect(merged.sources == ["backup.volume-path.data": "container, overrides service",
                                   "backup.enable": "service"])
        #expect(merged.warnings.count == 1 && merged.warnings[0].contains("/other"))
    }

    @Test func aServiceMadeWithDockerServiceCreateIsAStackOfItsOwnName() async throws {
        let docker = FakeDockerEngine()
        docker.joinSwarm()
        docker.addService(SwarmService(id: "s-web", name: "web", labels: [:], mode: .replicated(1)),
                          template: Self.task(labels: ["backup.enable": "true", "backup.volume-path.data": "/data"],
                                              mounts: [ContainerMount(type: "volume", destination: "/data",
                                                                      name: "web")]))
        let plan = try await plan(docker)
        #expect(plan.stacks.map(\.name) == ["web"])
        #expect(plan.stacks[0].services.map(\.service) == ["web"])
    }

    /// A stack torn down while the plan is made (its service gone, its tasks not yet) does not fail the plan of the
    /// other stacks: its tasks are left out.
    @Test func aTaskWhoseServiceIsGoneIsLeftOut() async throws {
        let docker = Self.engine()
        docker.addService(SwarmService(id: "s-gone", name: "old_web", labels: [:], mode: .replicated(1)),
                          stack: "old",
                          template: Self.task(labels: ["backup.enable": "true", "backup.volume-path.data": "/data"],
                                              mounts: [ContainerMount(type: "volume", destination: "/data",
                                                                      name: "old_web")]))
        docker.removeServiceKeepingTasks("s-gone")
        let plan = try await plan(docker)
        #expect(plan.stacks.map(\.name) == ["app"])
    }

    @Test func aWorkerRefusesServicesThatMustBeScaledAndSaysWhatToDo() async throws {
        let plan = try await plan(Self.engine(manager: false))
        let services = try #require(plan.stack(named: "app")).services
        // The worker cannot read service specs: deploy.labels are not seen (the plan says so), container labels are.
        #expect(services.map(\.service) == ["db", "files"])
        let files = services[1]
        #expect(files.errors.count == 1 && files.errors[0].contains("worker") && files.errors[0].contains("manager"))
        #expect(services[0].errors.isEmpty, "dumps run on a worker")
        #expect(services[0].warnings.contains { $0.contains("deploy.labels") })
    }

    @Test func globalServicesAndDataOutsideNamedVolumesAreRefused() async throws {
        let docker = FakeDockerEngine()
        docker.joinSwarm()
        docker.addService(SwarmService(id: "s-g", name: "app_g", labels: [:], mode: .global), stack: "app",
                          template: Self.task(labels: ["backup.enable": "true", "backup.volume-path.data": "/data"],
                                              mounts: [Self.dataVolume]))
        let anonymous = String(repeating: "ab", count: 32)
        docker.addService(SwarmService(id: "s-a", name: "app_anon", labels: [:], mode: .replicated(1)), stack: "app",
                          template: Self.task(labels: ["backup.enable": "true", "backup.volume-path.data": "/data",
                                                       "backup.volume-path.layer": "/var/lib/x"],
                                              mounts: [ContainerMount(type: "volume", destination: "/data",
                                                                      name: anonymous)]))
        let services = try #require(try await plan(docker).stack(named: "app")).services
        let global = try #require(services.first { $0.service == "g" })
        #expect(global.errors.count == 1 && global.errors[0].contains("global"))
        let anon = try #require(services.first { $0.service == "anon" })
        #expect(anon.errors.count == 2 && anon.errors.allSatisfy { $0.contains("named volume") }, "\(anon.errors)")
    }

    @Test func aBackupScalesTheServiceToZeroReadsItsVolumeAndScalesItBack() async throws {
        let docker = Self.engine()
        docker.setExecResult(.init(stdout: StackBackupTests.pgDump), for: "app_db.1.task1")
        let tar = try StackBackupTests.sampleTar()
        docker.setVolumeArchive(tar, volume: "app_files-data", path: "/data")
        docker.setVolumeArchive(tar, volume: "app_tagged-data", path: "/srv")
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("sv-swarm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: target) }
        let stackBackup = StackBackup(
            docker: docker, storage: LocalDirectoryBackend(directory: target.path),
            compressor: try ZstdCompressor(settings: .init(level: 1, threads: 1)),
            configuration: BackupConfiguration(workDirectory: target.path, minimumFreeBytes: 0, hostName: "testhost"),
            logger: Logger(label: "test"))
        let plan = try #require(try await plan(docker).stack(named: "app"))
        let result = await stackBackup.backup(plan)
        #expect(result.succeeded, "\(result.error ?? "")")
        let calls = docker.calls
        #expect(!calls.contains { $0.hasPrefix("stop:") || $0.hasPrefix("start:") }, "\(calls)")
        // Back up, each followed by an update to the same count: Swarm's rollback point is then the service as it
        // runs, not the spec at 0 replicas.
        #expect(calls.filter { $0.hasPrefix("scale:") } == [
            "scale:app_files=0", "scale:app_tagged=0", "scale:app_files=2", "scale:app_files=2",
            "scale:app_tagged=1", "scale:app_tagged=1",
        ])
        // Dump first, in the running task; the copies through reader containers, after both services are at 0.
        #expect(calls.first == "exec:app_db.1.task1")
        let readers = docker.created
        #expect(readers.map(\.mounts) == [[Self.dataVolume],
                                          [ContainerMount(type: "volume", destination: "/srv",
                                                          name: "app_tagged-data")]])
        #expect(readers.allSatisfy { $0.labels[SwarmScaleGuard.readerLabel] != nil })
        let firstCopy = try #require(calls.firstIndex { $0.hasPrefix("archive:") })
        #expect(calls.firstIndex(of: "scale:app_tagged=0")! < firstCopy)
        #expect(calls.filter { $0.hasPrefix("remove:stackvault-swarm-reader-") }.count == 2)
        // Back to the former count, the crash record gone, readers removed.
        #expect(docker.service("s-files")?.mode == .replicated(2))
        #expect(docker.service("s-files")?.labels[SwarmService.scaledFromLabel] == nil)
        #expect(docker.containers.filter { $0.swarmServiceID == "s-files" && $0.isRunning }.count == 2)
        #expect(!docker.containers.contains { $0.labels[SwarmScaleGuard.readerLabel] != nil })
    }

    @Test func theCrashRecordIsWrittenWithTheScaleDown() async throws {
        let docker = Self.engine()
        let scaleGuard = SwarmScaleGuard(docker: docker, host: "testhost", logger: Logger(label: "test"),
                                         pollInterval: .milliseconds(10))
        let task = try #require(docker.containers.first { $0.swarmServiceID == "s-files" })
        let seen = try await scaleGuard.run([ScaledService(id: "s-files", name: "app_files", taskContainerID: task.id)],
                                            stack: "app", purpose: "backup") { readers in
            let service = try #require(docker.service("s-files"))
            #expect(readers["s-files"]?.mounts == [Self.dataVolume])
            #expect(readers["s-files"]?.isRunning == false)
            return (service.mode, service.labels[SwarmService.scaledFromLabel],
                    service.labels[SwarmService.scaledByLabel])
        }
        #expect(seen.0 == .replicated(0) && seen.1 == "2" && seen.2 == "testhost")
        #expect(docker.service("s-files")?.mode == .replicated(2))
    }

    @Test func aFailingBodyStillScalesTheServiceBack() async throws {
        let docker = Self.engine()
        let scaleGuard = SwarmScaleGuard(docker: docker, host: "testhost", logger: Logger(label: "test"),
                                         pollInterval: .milliseconds(10))
        let task = try #require(docker.containers.first { $0.swarmServiceID == "s-files" })
        await #expect(throws: StackVaultError.self) {
            try await scaleGuard.run([ScaledService(id: "s-files", name: "app_files", taskContainerID: task.id)],
                                     stack: "app", purpose: "backup") { _ in
                throw StackVaultError(.archive, "disk on fire")
            }
        }
        #expect(docker.calls.filter { $0.hasPrefix("scale:") }
                == ["scale:app_files=0", "scale:app_files=2", "scale:app_files=2"])
        #expect(docker.service("s-files")?.labels[SwarmService.scaledFromLabel] == nil)
    }

    /// A service another run has at 0 (its tasks still stopping) goes back to the count that run recorded, not to 0.
    @Test func theRecordedCountWinsOverAServiceAlreadyAtZero() async throws {
        let docker = Self.engine()
        let task = try #require(docker.containers.first { $0.swarmServiceID == "s-files" })
        try await docker.scaleService("s-files", replicas: 0, labels: [SwarmService.scaledFromLabel: "2"])
        docker.add(task)  // still stopping
        let plan = try #require(try await plan(docker).stack(named: "app"))
        let files = try #require(plan.services.first { $0.service == "files" })
        #expect(files.swarmService?.replicas == 2)
        #expect(files.warnings.contains { $0.contains("stackvault.scaled-from=2") })
        let scaleGuard = SwarmScaleGuard(docker: docker, host: "testhost", logger: Logger(label: "test"),
                                         pollInterval: .milliseconds(10))
        try await scaleGuard.run([ScaledService(id: "s-files", name: "app_files", taskContainerID: task.id)],
                                 stack: "app", purpose: "backup") { _ in }
        #expect(docker.service("s-files")?.mode == .replicated(2))
    }

    /// A redeploy while the tasks stop (it asks for replicas again and drops the labels): the run fails at once,
    /// saying so, instead of waiting out the limit; nothing is copied.
    @Test func aRedeployWhileTheTasksStopFailsAtOnce() async throws {
        let docker = Self.engine()
        let task = try #require(docker.containers.first { $0.swarmServiceID == "s-files" })
        let scaleGuard = SwarmScaleGuard(docker: docker, host: "testhost", logger: Logger(label: "test"),
                                         pollInterval: .milliseconds(10))
        let redeployed = Mutex(false)
        docker.afterScale { id, replicas in
            guard replicas == 0, !redeployed.withLock({ let was = $0; $0 = true; return was }) else { return }
            // `docker stack deploy` again while the task still stops: 2 replicas, StackVault's labels gone.
            try? await docker.scaleService(id, replicas: 2, labels: [SwarmService.scaledFromLabel: nil,
                                                                     SwarmService.scaledByLabel: nil])
        }
        let started = ContinuousClock.now
        await #expect {
            try await scaleGuard.run([ScaledService(id: "s-files", name: "app_files", taskContainerID: task.id)],
                                     stack: "app", purpose: "backup") { _ in Issue.record("the body ran") }
        } throws: { error in
            "\(error)".contains("was changed by someone else") && "\(error)".contains("labels are gone")
        }
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(docker.service("s-files")?.mode == .replicated(2))
    }

    /// SIGTERM (cancellation) while the service is at 0: it is scaled back at once, and the run ends.
    @Test func cancellationScalesTheServiceBack() async throws {
        let docker = Self.engine()
        let scaleGuard = SwarmScaleGuard(docker: docker, host: "testhost", logger: Logger(label: "test"),
                                         pollInterval: .milliseconds(10))
        let task = try #require(docker.containers.first { $0.swarmServiceID == "s-files" })
        let run = Task {
            try await scaleGuard.run([ScaledService(id: "s-files", name: "app_files", taskContainerID: task.id)],
                                     stack: "app", purpose: "backup") { _ in try await Task.sleep(for: .seconds(3600)) }
        }
        while docker.service("s-files")?.mode != .replicated(0) { try await Task.sleep(for: .milliseconds(10)) }
        run.cancel()
        _ = await run.result
        #expect(docker.service("s-files")?.mode == .replicated(2))
        #expect(docker.service("s-files")?.labels[SwarmService.scaledFromLabel] == nil)
        #expect(!docker.containers.contains { $0.labels[SwarmScaleGuard.readerLabel] != nil })
    }

    /// `GET /services/{id}` bodies as Docker 20.10 sends them (reduced).
    @Test func servicesAreReadFromTheEngineAPI() throws {
        let replicated: [String: Any] = [
            "ID": "vl22", "Version": ["Index": 42],
            "Spec": ["Name": "app_files", "Labels": ["com.docker.stack.namespace": "app", "backup.enable": "true"],
                     "Mode": ["Replicated": ["Replicas": 2]]],
        ]
        let global: [String: Any] = ["ID": "g1", "Spec": ["Name": "agent", "Mode": ["Global": [String: Any]()]]]
        let files = try DockerClient.service(from: replicated)
        #expect(files == SwarmService(id: "vl22", name: "app_files",
                                      labels: ["com.docker.stack.namespace": "app", "backup.enable": "true"],
                                      mode: .replicated(2)))
        #expect(try DockerClient.service(from: global).mode == .global)
        #expect(try DockerClient.service(from: global).replicasToRestore == nil)
        #expect(throws: StackVaultError.self) { try DockerClient.service(from: ["Spec": [:]]) }
    }

    @Test func aServiceLeftAtZeroByThisHostIsScaledBackAndAnotherHostsIsOnlyReported() async throws {
        let docker = FakeDockerEngine()
        docker.joinSwarm()
        docker.addService(SwarmService(id: "s-mine", name: "app_mine", labels: [
            SwarmService.scaledFromLabel: "3", SwarmService.scaledByLabel: "testhost",
        ], mode: .replicated(0)), stack: "app", template: Self.task())
        docker.addService(SwarmService(id: "s-theirs", name: "app_theirs", labels: [
            SwarmService.scaledFromLabel: "1", SwarmService.scaledByLabel: "otherhost",
        ], mode: .replicated(0)), stack: "app", template: Self.task())
        await SwarmScaleGuard.recoverInterrupted(docker: docker, host: "testhost", locker: nil,
                                                 logger: Logger(label: "test"))
        #expect(docker.calls == ["scale:app_mine=3", "scale:app_mine=3"])
        #expect(docker.service("s-mine")?.mode == .replicated(3))
        #expect(docker.service("s-mine")?.labels[SwarmService.scaledFromLabel] == nil)
        #expect(docker.service("s-theirs")?.mode == .replicated(0))
    }

    @Test func restoreResolvesTheTaskOfTheLowestSlot() throws {
        let docker = Self.engine()
        let tasks = docker.containers.filter { $0.swarmServiceID == "s-files" }.reversed()
        let chosen = try RestorePlanner.resolve(service: "files", sourceStack: "app", targetStack: "app", map: [:],
                                                candidates: Array(tasks))
        #expect(chosen.name == "app_files.1.task2")
    }
}
