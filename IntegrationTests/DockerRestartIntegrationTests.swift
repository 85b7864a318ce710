import Foundation
import StackVaultCore
import Testing

/// dockerd goes away while a backup has the stack's containers stopped for the copy: stopped and started again
/// after the run has ended (an upgrade, `systemctl restart docker`), or killed and started again at once (a crash
/// that systemd restarts). The run fails cleanly (it ends, says why, presents no archive); afterwards the
/// containers run again: started by the run itself when Docker is back within `LOCK_TTL`, else by the next
/// StackVault from the stop journal that the lock container keeps across the restart; no lock, helper container or
/// partial archive is left.
///
/// Runs on a private dockerd (`PrivateDockerd`), so that restarting it disturbs nothing else.
extension Integration {
    @Suite struct DockerRestartTests {
        enum Outage: String, CaseIterable, Sendable {
            /// SIGTERM, and the daemon comes back only after the run has ended.
            case stoppedUntilTheRunEnds
            /// SIGKILL, and the daemon comes back 2 s later, while the run may still be unwinding.
            case crashedAndRestartedAtOnce
        }

        @Test(arguments: Outage.allCases)
        func dockerdGoneWhileContainersAreStoppedLeavesThemRunningAfterwards(_ outage: Outage) async throws {
            try TestBed.requireDocker()
            let dockerd = try PrivateDockerd()
            defer { dockerd.remove() }
            try dockerd.start()
            try dockerd.load(TestBed.busyboxImage)
            let project = "svtest-dockerd-\(UUID().uuidString.prefix(6).lowercased())"
            let names = ["\(project)-app", "\(project)-worker"]
            for (index, name) in names.enumerated() {
                try dockerd.docker(["run", "-d", "--init", "--name", name,
                                    "--label", "com.docker.compose.project=\(project)",
                                    "--label", "com.docker.compose.service=\(index == 0 ? "app" : "worker")",
                                    "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                                    "-v", "\(name)-data:/data"]
                                   + (index == 0 ? ["--restart", "unless-stopped"] : [])
                                   + [TestBed.busyboxImage, "sh", "-c",
                                      "echo hello > /data/hello.txt && head -c 60000000 /dev/urandom > /data/big "
                                        + "&& exec sleep 1000000"])
            }
            let directory = try TestBed.temporaryDirectory("dockerd-\(outage.rawValue)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let targetURL = directory.appendingPathComponent("target")
            try FileManager.default.createDirectory(at: targetURL, withIntermediateDirectories: true)
            let target = "file://\(targetURL.path)"
            // LOCK_TTL is also how long a run waits for Docker to come back: shorter than the outage in the first
            // case (the next StackVault starts them), longer in the second (the run itself does).
            let environment = ["DOCKER_HOST": dockerd.host, "STOP_TIMEOUT": "1", "LOG_FORMAT": "text",
                               "LOCK_TTL": outage == .stoppedUntilTheRunEnds ? "6" : "45"]
            // The containers have written their data; a first backup also imports the lock and helper images.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline,
                  try !dockerd.docker(["exec", names[1], "sh", "-c", "[ -s /data/big ] && sleep 1"], check: false).ok
            {
                try await Task.sleep(for: .milliseconds(200))
            }
            let first = try StackVaultCLI.run(["backup", "--stack", project, "--target", target],
                                              environment: environment)
            #expect(first.ok, "\(first.stdout)\n\(first.stderr)")

            let run = try StopInterruptTests.Run(
                ["backup", "--stack", project, "--target", target, "--level", "19"],
                environment: environment, logPath: directory.appendingPathComponent("run.log").path)
            try run.waitForLog("volume-path data (/data) from container")
            for name in names {
                #expect(try dockerd.state(name) == "exited", "\(name) is not stopped for the copy")
            }

            let gone = Date()
            switch outage {
            case .stoppedUntilTheRunEnds:
                try dockerd.stop(SIGTERM)
            case .crashedAndRestartedAtOnce:
                try dockerd.stop(SIGKILL)
                try await Task.sleep(for: .seconds(2))
                try dockerd.start()
            }
            let ended = Date().addingTimeInterval(240)
            while run.process.isRunning, Date() < ended { try await Task.sleep(for: .milliseconds(200)) }
            let log = run.log
            #expect(!run.process.isRunning, "the run did not end without Docker:\n\(log.suffix(3000))")
            if run.process.isRunning { _ = run.stop(SIGKILL, seconds: 5) }
            #expect(run.process.terminationStatus != 0, "the run succeeded without Docker:\n\(log.suffix(3000))")
            let archives = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".tar.zst") }
            #expect(archives.count == 1, "an archive of the broken run was presented as good: \(archives)")
            if outage == .stoppedUntilTheRunEnds {
                // It says why, and what to run by hand meanwhile.
                #expect(log.contains("has gone away"), "\(log.suffix(3000))")
                #expect(log.contains("Docker does not answer; waiting up to 6 s for it to come back"),
                        "\(log.suffix(3000))")
                #expect(log.contains("CONTAINERS LEFT STOPPED") && log.contains("docker start \(names[0])"),
                        "\(log.suffix(3000))")
                try dockerd.start()
            }
            let said = log.split(separator: "\n").filter { $0.contains("error") || $0.contains("critical") }
            print("[dockerd-\(outage.rawValue)] Docker was gone for \(String(format: "%.1f", Date().timeIntervalSince(gone))) s; "
                  + "the run said: \(said.suffix(2).joined(separator: " | "))")

            // The containers run again: by the run itself, or (Docker was gone until it ended) by the next one.
            let down = try names.filter { try dockerd.state($0) != "running" }
            if outage == .crashedAndRestartedAtOnce {
                let said = log.suffix(3000)
                #expect(down.isEmpty, "Docker was back within LOCK_TTL, but the run did not start \(down):\n\(said)")
            }
            let next = try StackVaultCLI.run(["backup", "--stack", project, "--target", target],
                                             environment: environment)
            let output = next.stdout + next.stderr
            #expect(next.ok, "\(output.suffix(4000))")
            if !down.isEmpty {
                #expect(output.contains("died while its containers were stopped"), "\(output.suffix(4000))")
            }
            for name in names {
                #expect(try dockerd.state(name) == "running", "\(name) is left stopped\n\(output.suffix(3000))")
                #expect(try dockerd.docker(["exec", name, "cat", "/data/hello.txt"]).stdout == "hello\n")
            }
            let lockName = StackLocker.lockName(for: project)
            #expect(try dockerd.state(lockName).isEmpty, "the lock container is left")
            let helpers = try dockerd.docker(["ps", "-aq", "--filter", "label=\(HelperImage.containerLabel)"]).stdout
            #expect(helpers.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "helper containers are left")
            let left = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".partial") }
            #expect(left.isEmpty, "partial archives left: \(left)")
            #expect(TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".tar.zst") }.count == 2)
            print("[dockerd-\(outage.rawValue)] \(down.count) container(s) were still down after Docker came back; "
                  + "the next backup " + (down.isEmpty ? "found them running" : "started them") + " and succeeded")
        }
    }
}
