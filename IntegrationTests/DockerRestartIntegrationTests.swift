import Foundation
import StackVaultCore
import Testing

/// dockerd restarted (an upgrade, a crash, `systemctl restart docker`) while a backup has the stack's containers
/// stopped for the copy: the run fails cleanly (it ends, says why, presents no archive), and the containers run
/// again afterwards: the stop journal in the lock container survives the restart, and the next StackVault starts
/// them. This test stops the test bed's dockerd and starts it again with `scripts/testbed/start-docker.sh`; every
/// integration test runs one at a time, so nothing else is running then.
extension Integration {
    @Suite struct DockerRestartTests {
        @Test func dockerdRestartedWhileContainersAreStoppedLeavesThemRunningAfterwards() async throws {
            try TestBed.requireDocker()
            let project = "svtest-dockerd-\(UUID().uuidString.prefix(6).lowercased())"
            let names = ["\(project)-app", "\(project)-worker"]
            let lockName = StackLocker.lockName(for: project)
            defer { _ = try? Shell.run(["docker", "rm", "-f", lockName] + names, check: false) }
            try KilledRunTests.startStack(project, names)
            for name in names { _ = try Docker.exec(name, "head -c 60000000 /dev/urandom > /data/big") }
            let directory = try TestBed.temporaryDirectory("dockerd-restart")
            defer { try? FileManager.default.removeItem(at: directory) }
            let targetURL = directory.appendingPathComponent("target")
            try FileManager.default.createDirectory(at: targetURL, withIntermediateDirectories: true)
            let target = "file://\(targetURL.path)"

            let run = try StopInterruptTests.Run(
                ["backup", "--stack", project, "--target", target, "--level", "19"],
                environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"],
                logPath: directory.appendingPathComponent("run.log").path)
            try run.waitForLog("volume-path data (/data) from container")
            for name in names {
                #expect(try KilledRunTests.state(name) == "exited", "\(name) is not stopped for the copy")
            }

            // dockerd goes away in the middle of the copy, and comes back only after the run has ended.
            let restart = try Self.stopDockerd()
            defer { _ = try? Self.startDockerd() }
            let ended = Date().addingTimeInterval(240)
            while run.process.isRunning, Date() < ended { try await Task.sleep(for: .milliseconds(200)) }
            let log = run.log
            #expect(!run.process.isRunning, "the run did not end without Docker:\n\(log.suffix(3000))")
            #expect(run.process.terminationStatus != 0, "the run succeeded without Docker:\n\(log.suffix(3000))")
            let archives = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".tar.zst") }
            #expect(archives.isEmpty, "an archive was presented as good: \(archives)")
            try Self.startDockerd()
            print("[dockerd-restart] dockerd was down for \(String(format: "%.1f", Date().timeIntervalSince(restart))) s; "
                  + "the run said: \(log.split(separator: "\n").last ?? "")")

            // The containers run again: by the run itself, or (Docker was gone until it ended) by the next one.
            let down = try names.filter { try KilledRunTests.state($0) != "running" }
            let next = try StackVaultCLI.run(["backup", "--stack", project, "--target", target],
                                             environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"])
            let output = next.stdout + next.stderr
            #expect(next.ok, "\(output.suffix(4000))")
            if !down.isEmpty {
                #expect(output.contains("died while its containers were stopped"), "\(output.suffix(4000))")
            }
            for name in names {
                #expect(try Docker.isRunning(name), "\(name) is left stopped\n\(output.suffix(3000))")
            }
            #expect(!(try KilledRunTests.lockExists(lockName)), "the lock container is left")
            let left = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".partial") }
            #expect(left.isEmpty, "partial archives left: \(left)")
            #expect(TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".tar.zst") }.count == 1)
            print("[dockerd-restart] \(down.count) container(s) were still down after the restart; the next backup "
                  + "started them and succeeded")
        }

        /// Stops the test bed's dockerd (SIGTERM, as `systemctl stop docker` does) and waits until it has exited.
        static func stopDockerd() throws -> Date {
            let pid = try String(contentsOfFile: "/var/run/docker.pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard let number = Int32(pid), kill(number, SIGTERM) == 0 else {
                throw TestFailure("cannot stop dockerd (pid \(pid)): this test needs root, as CI has")
            }
            let deadline = Date().addingTimeInterval(60)
            while kill(number, 0) == 0, Date() < deadline { usleep(200_000) }
            guard kill(number, 0) != 0 else { throw TestFailure("dockerd \(pid) did not exit within 60 s") }
            return Date()
        }

        /// Starts dockerd again as the test bed does; idempotent.
        static func startDockerd() throws {
            let script = TestBed.repositoryRoot.appendingPathComponent("scripts/testbed/start-docker.sh").path
            let result = try Shell.run(["bash", script], check: false)
            guard result.ok else { throw TestFailure("dockerd did not start again:\n\(result.stderr.suffix(3000))") }
        }
    }
}
