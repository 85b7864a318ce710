import Logging
import StackVaultCore
import StackVaultTestKit
import Synchronization
import Testing

@Suite struct ContainerStopGuardTests {
    /// Docker goes on stopping a container after StackVault gave up on the stop request (SIGTERM cancelled it): the
    /// guard starts the container only once it has left the running state, so it runs afterwards.
    @Test func aStopCancelledMidFlightStartsTheContainerOnceDockerHasStoppedIt() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "files", project: "app", service: "files")])
        docker.stopSlowly("files", after: .milliseconds(600))
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 1, logger: Logger(label: "test"),
                                           pollInterval: .milliseconds(20))
        let recorded = Mutex<Double?>(nil)
        let bodyRan = Mutex(false)
        let run = Task {
            try await stopGuard.run([StoppedContainer(id: "id-files", name: "files")], stack: "app",
                                    purpose: "backup", recordDowntime: { seconds in recorded.withLock { $0 = seconds } }
            ) { bodyRan.withLock { $0 = true } }
        }
        try await Task.sleep(for: .milliseconds(150))
        run.cancel()
        let result = await run.result
        #expect(throws: StackVaultError.self) { try result.get() }
        #expect(!bodyRan.withLock { $0 }, "the body ran although the stop did not finish")
        #expect(docker.isRunning("files"), "the container is not running when the guard returns")
        let downtime = try #require(recorded.withLock { $0 })
        #expect(downtime >= 0.55, "downtime \(downtime) s ends before Docker stopped the container")
        // Well past the moment Docker finished stopping it: still running, started once, after the stop.
        try await Task.sleep(for: .milliseconds(700))
        #expect(docker.isRunning("files"))
        #expect(docker.calls == ["stop:files", "start:files"])
    }

    /// A stop that succeeds: the container is started again after the body, and the downtime recorded is the one
    /// returned.
    @Test func aCompletedStopStartsTheContainerAfterTheBody() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "files", project: "app", service: "files")])
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 30, logger: Logger(label: "test"))
        let recorded = Mutex<Double?>(nil)
        let (value, downtime) = try await stopGuard.run(
            [StoppedContainer(id: "id-files", name: "files")], stack: "app", purpose: "backup",
            recordDowntime: { seconds in recorded.withLock { $0 = seconds } }
        ) { docker.isRunning("files") ? 0 : 7 }
        #expect(value == 7, "the body ran while the container was running")
        #expect(recorded.withLock { $0 } == downtime)
        #expect(docker.isRunning("files"))
        #expect(docker.calls == ["stop:files", "start:files"])
    }

    /// A container that exits at once when started is reported as left stopped, with the `docker start` hint.
    @Test func aContainerThatDoesNotRunAfterItsStartIsReportedLeftStopped() async throws {
        let docker = FakeDockerEngine(containers: [.fake(name: "files", project: "app", service: "files")])
        docker.exitOnStart("files")
        let stopGuard = ContainerStopGuard(docker: docker, stopTimeoutSeconds: 1, logger: Logger(label: "test"),
                                           pollInterval: .milliseconds(20))
        await #expect(throws: ContainersLeftStopped.self) {
            _ = try await stopGuard.run([StoppedContainer(id: "id-files", name: "files")], stack: "app",
                                        purpose: "backup") { () }
        }
    }
}
