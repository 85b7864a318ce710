import Foundation
import StackVaultCore
import Testing

/// A `stackvault backup` killed with SIGKILL while its containers are stopped for the copy (what an OOM kill, a
/// missed stop grace period or a host crash do): nothing of it unwinds. The next StackVault that takes the stack's
/// lock (`backup`, `restore`) or the daemon at start finds the dead run's stop journal in the lock, starts the
/// containers again, and removes the partial archive and the lock.
extension Integration {
    @Suite(.serialized) struct KilledRunTests {
        enum Next: String, CaseIterable, Sendable { case backup, daemon, restore }

        @Test(arguments: Next.allCases)
        func aRunKilledWhileContainersAreStoppedIsUndoneByTheNextStackVault(_ next: Next) async throws {
            try TestBed.requireDocker()
            let project = "svtest-kill-\(next.rawValue)-\(UUID().uuidString.prefix(6).lowercased())"
            let names = ["\(project)-app", "\(project)-worker"]
            defer { for name in names { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) } }
            try Self.startStack(project, names)
            let directory = try TestBed.temporaryDirectory("kill-\(next.rawValue)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let targetURL = directory.appendingPathComponent("target")
            try FileManager.default.createDirectory(at: targetURL, withIntermediateDirectories: true)
            let target = "file://\(targetURL.path)"
            let lockName = StackLocker.lockName(for: project)
            defer { _ = try? Shell.run(["docker", "rm", "-f", lockName], check: false) }
            if next == .restore {
                // The archive to restore afterwards.
                let first = try StackVaultCLI.run(["backup", "--stack", project, "--target", target],
                                                  environment: ["STOP_TIMEOUT": "1"])
                #expect(first.ok, "\(first.stdout)\n\(first.stderr)")
                guard first.ok else { return }
            }
            for name in names { _ = try Docker.exec(name, "head -c 60000000 /dev/urandom > /data/big") }

            // The run to kill: level 19 makes the copy slow enough to land in it.
            let run = try StopInterruptTests.Run(
                ["backup", "--stack", project, "--target", target, "--level", "19"],
                environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"],
                logPath: directory.appendingPathComponent("killed.log").path)
            try run.waitForLog("stopping ")
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, try names.contains(where: { try Self.state($0) == "running" }) {
                try await Task.sleep(for: .milliseconds(100))
            }
            try run.waitForLog("volume-path data (/data) from container")
            try await Task.sleep(for: .seconds(1))
            kill(run.process.processIdentifier, SIGKILL)
            run.process.waitUntilExit()
            let killedAt = Date()
            let killedLog = run.log
            #expect(run.process.terminationReason == .uncaughtSignal, "\(killedLog.suffix(3000))")
            for name in names {
                #expect(try Self.state(name) == "exited", "\(name) was not stopped when the run was killed")
            }
            let partials = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".partial") }
            #expect(!partials.isEmpty, "the killed run left no partial archive: the test did not land mid-copy")
            #expect(try Self.lockExists(lockName), "the killed run left no lock")

            // The next StackVault.
            let output: String
            switch next {
            case .backup:
                let result = try StackVaultCLI.run(["backup", "--stack", project, "--target", target],
                                                   environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"])
                output = result.stdout + result.stderr
                #expect(result.ok, "\(output)")
            case .restore:
                let result = try StackVaultCLI.run(["restore", "--latest", "--stack", project, "--target", target,
                                                    "--yes"], environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"])
                output = result.stdout + result.stderr
                #expect(result.ok, "\(output)")
            case .daemon:
                let daemon = try StopInterruptTests.Run(
                    ["daemon", "--schedule", "0 0 1 1 *", "--stack", project, "--target", target,
                     "--state-file", directory.appendingPathComponent("state.json").path],
                    environment: ["STOP_TIMEOUT": "1", "LOG_FORMAT": "text"],
                    logPath: directory.appendingPathComponent("daemon.log").path)
                try daemon.waitForLog("died while its containers were stopped")
                let gone = Date().addingTimeInterval(20)
                while Date() < gone, try Self.lockExists(lockName) { try await Task.sleep(for: .milliseconds(200)) }
                let status = daemon.stop(SIGTERM, seconds: 60)
                output = daemon.log
                #expect(status == 0, "\(output.suffix(3000))")
            }
            #expect(output.contains("died while its containers were stopped"), "\(output.suffix(4000))")
            for name in names {
                #expect(output.contains(name), "\(name) is not named in:\n\(output.suffix(4000))")
                #expect(try Docker.isRunning(name), "\(name) is left stopped\n\(output.suffix(4000))")
                let started = try Docker.startedAt(name)
                let startedDate = try? Date(String(started.prefix(19)) + "Z", strategy: .iso8601)
                #expect((startedDate ?? .distantPast) >= killedAt.addingTimeInterval(-1),
                        "\(name) was not started after the kill (StartedAt \(started))")
                #expect(try Docker.inspect(name, "{{.RestartCount}}") == "0",
                        "\(name) was restarted by Docker too, not once by StackVault")
            }
            #expect(!(try Self.lockExists(lockName)), "the lock container is left")
            let left = TestBed.hostFiles(targetURL).filter { $0.hasSuffix(".partial") }
            #expect(left.isEmpty, "partial archives left: \(left)\n\(output.suffix(3000))")
            print("[killed-run] \(next.rawValue): \(names.count) containers run again, "
                  + "partial \(partials.first ?? "-") removed")
        }

        /// Starts the stack `project`: services `app` (`restart: unless-stopped`) and `worker`, one container each
        /// (`names`), both with `backup.volume-path.data=/data` holding `hello.txt`.
        static func startStack(_ project: String, _ names: [String]) throws {
            for (index, name) in names.enumerated() {
                try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                               "--label", "com.docker.compose.project=\(project)",
                               "--label", "com.docker.compose.service=\(index == 0 ? "app" : "worker")",
                               "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data"]
                              + (index == 0 ? ["--restart", "unless-stopped"] : [])
                              + [TestBed.busyboxImage, "sh", "-c",
                                 "mkdir -p /data && echo hello > /data/hello.txt && exec sleep 1000000"])
            }
        }

        /// `docker ps` state (`running`, `exited`): not `docker inspect`, which waits while an archive is read.
        static func state(_ name: String) throws -> String {
            try Shell.run(["docker", "ps", "-a", "--filter", "name=^/\(name)$", "--format", "{{.State}}"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        static func lockExists(_ lockName: String) throws -> Bool {
            !(try Shell.run(["docker", "ps", "-aq", "--filter", "name=^/\(lockName)$"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        }
    }
}
