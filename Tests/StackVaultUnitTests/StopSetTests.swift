import Foundation
import Logging
@testable import StackVaultCore
import StackVaultStrategies
import StackVaultTestKit
import StackVaultStorage
import Synchronization
import Testing

/// Every running container that shares a copied directory is stopped with it (labelled or not), containers sharing
/// a stopped one's network namespace are stopped before it and started after it, `backup.stop=false` is warned.
@Suite struct StopSetTests {
    let registry = try! BuiltinStrategies.registry()

    static let volume = ContainerMount(type: "volume", destination: "/data", name: "shop_data",
                                       source: "/var/lib/docker/volumes/shop_data/_data")

    func plan(_ containers: [ContainerDetails]) async throws -> StackPlan {
        let plan = try await Planner(docker: FakeDockerEngine(containers: containers), strategies: registry).makePlan()
        return try #require(plan.stack(named: "shop"))
    }

    static var web: ContainerDetails {
        .fake(name: "shop-web-1", project: "shop", service: "web",
              labels: ["backup.enable": "true", "backup.volume-path.data": "/data/uploads"], mounts: [volume])
    }

    @Test func anUnlabelledWriterOnTheSameVolumeIsStoppedWithTheLabelledService() async throws {
        let stack = try await plan([
            Self.web,
            .fake(name: "writer", mounts: [ContainerMount(type: "volume", destination: "/w", name: "shop_data",
                                                          source: Self.volume.source)]),
            // A bind of a directory inside the copied one (a child), and one of a sibling (not shared).
            .fake(name: "child", mounts: [ContainerMount(type: "bind", destination: "/x",
                                                         source: Self.volume.source! + "/uploads/x")]),
            .fake(name: "sibling", mounts: [ContainerMount(type: "bind", destination: "/x",
                                                           source: Self.volume.source! + "/other")]),
            .fake(name: "stopped", running: false, mounts: [Self.volume]),
        ])
        #expect(stack.stops.map(\.container) == ["shop-web-1", "writer", "child"])
        #expect(stack.stops[1].reason == "mounts volume shop_data, copied for service web")
        #expect(stack.stops[0].service == "web" && stack.stops[1].service == nil)
    }

    @Test func backupStopFalseKeepsAContainerRunningWithAWarning() async throws {
        let stack = try await plan([
            Self.web,
            .fake(name: "keeper", labels: ["backup.stop": "false"], mounts: [Self.volume]),
        ])
        #expect(stack.stops.map(\.container) == ["shop-web-1"])
        #expect(stack.warnings.contains { $0.contains("keeper") && $0.contains("backup.stop=false")
            && $0.contains("may make the copy inconsistent") }, "\(stack.warnings)")
    }

    @Test func aContainerSharingTheNetworkNamespaceIsStoppedFirstAndStartedLast() async throws {
        var sidecar = ContainerDetails.fake(name: "proxy")
        sidecar.networkMode = "container:id-shop-web-1"
        let stack = try await plan([Self.web, sidecar])
        #expect(stack.stops.map(\.container) == ["shop-web-1", "proxy"])
        #expect(stack.stops[1].provider == "id-shop-web-1")

        let docker = FakeDockerEngine(containers: [Self.web, sidecar])
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 1, logger: Logger(label: "test"),
                                           stopMarginSeconds: 1, pollInterval: .milliseconds(10))
        _ = try await stopGuard.run(stack.stops.map(\.stoppedContainer), stack: "shop", purpose: "backup") {}
        let order = docker.calls.filter { $0.hasPrefix("stop") || $0.hasPrefix("start") }
        #expect(order.firstIndex { $0.contains("stop") && $0.hasSuffix(":proxy") }!
            < order.firstIndex { $0.contains("stop") && $0.hasSuffix(":shop-web-1") }!, "\(order)")
        #expect(order.lastIndex { $0.contains("start") && $0.hasSuffix(":shop-web-1") }!
            < order.lastIndex { $0.contains("start") && $0.hasSuffix(":proxy") }!, "\(order)")
    }

    @Test func whenADependentCannotBeStoppedItsProviderIsLeftRunningAndUntouched() async throws {
        var sidecar = ContainerDetails.fake(name: "proxy")
        sidecar.networkMode = "container:id-shop-web-1"
        let stack = try await plan([Self.web, sidecar])
        let docker = FakeDockerEngine(containers: [Self.web, sidecar])
        docker.fail("stop", on: "proxy", message: "Docker could not stop it")
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 1, logger: Logger(label: "test"),
                                           stopMarginSeconds: 0, pollInterval: .milliseconds(10))
        await #expect(throws: (any Error).self) {
            _ = try await stopGuard.run(stack.stops.map(\.stoppedContainer), stack: "shop", purpose: "backup") {}
        }
        #expect(!docker.calls.contains { $0.hasSuffix(":shop-web-1") }, "\(docker.calls)")
        #expect(docker.isRunning("shop-web-1") && docker.isRunning("proxy"))
    }

    @Test func aPathInTheContainersOwnLayerSharesNothing() async throws {
        let stack = try await plan([
            .fake(name: "shop-web-1", project: "shop", service: "web",
                  labels: ["backup.enable": "true", "backup.volume-path.data": "/srv"], mounts: [Self.volume]),
            .fake(name: "writer", mounts: [Self.volume]),
        ])
        #expect(stack.stops.map(\.container) == ["shop-web-1"])
    }
}

/// A copy that breaks off names the running containers that mount the copied path.
@Suite struct BrokenCopyMessageTests {
    @Test func aCopyThatEndsInsideAFileNamesTheRunningWritersOfThePath() async throws {
        let volume = StopSetTests.volume
        let docker = FakeDockerEngine(containers: [
            .fake(name: "app_files_1", project: "app", service: "files",
                  labels: ["backup.enable": "true", "backup.volume-path.data": "/data"], mounts: [volume]),
            .fake(name: "app_writer_1", labels: ["backup.stop": "false"], mounts: [volume]),
        ])
        let tar = try StackBackupTests.sampleTar()
        docker.setArchive(Array(tar.prefix(60_000)), for: "app_files_1", path: "/data")
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("sv-broken-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: target) }
        let backup = StackBackup(
            docker: docker, storage: LocalDirectoryBackend(directory: target.path),
            compressor: try ZstdCompressor(settings: .init(level: 1, threads: 1)),
            configuration: BackupConfiguration(workDirectory: target.path, minimumFreeBytes: 0, hostName: "h"),
            logger: Logger(label: "test"))
        let plan = try await Planner(docker: docker, strategies: try BuiltinStrategies.registry()).makePlan()
        let result = await backup.backup(try #require(plan.stack(named: "app")))
        #expect(!result.succeeded)
        let error = result.error ?? ""
        #expect(error.contains("a file changed while it was read: app_writer_1 mounts /data of app_files_1 and was "
            + "running"), "\(error)")
        #expect(docker.isRunning("app_files_1"))
    }
}
