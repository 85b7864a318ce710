import Foundation
import StackVaultCore
import Testing

/// The deployed sidecar stopped (as `docker compose up -d` does after an edit) while a backup started by hand with
/// `docker exec <sidecar> stackvault backup` has the stack's containers stopped: the exec'd process dies with the
/// container (SIGKILL when PID 1 exits). After `docker start` of the sidecar its daemon starts what that run had
/// stopped before anything else, takes the dead run's lock as its own earlier life's (not as another StackVault's),
/// and `health` never says healthy while those containers are down.
extension Integration {
    @Suite struct SidecarRestartTests {
        @Test func aManualRunKilledWithTheSidecarIsUndoneWhenTheSidecarStartsAgain() async throws {
            try TestBed.requireDocker()
            let image = try TestBed.sidecarImage()
            let project = "svtest-side-\(UUID().uuidString.prefix(6).lowercased())"
            let names = ["\(project)-app", "\(project)-worker"]
            let sidecar = "\(project)-stackvault"
            let lockName = StackLocker.lockName(for: project)
            defer {
                _ = try? Shell.run(["docker", "rm", "-f", sidecar, lockName] + names, check: false)
            }
            try KilledRunTests.startStack(project, names)
            for name in names {
                _ = try Docker.exec(name, "head -c 60000000 /dev/urandom > /data/big")
            }
            let target = try TestBed.temporaryDirectory("sidecar-restart")
            defer { try? FileManager.default.removeItem(at: target) }
            try Shell.run(["docker", "run", "-d", "--name", sidecar, "--label", "stackvault.test=true",
                           "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "\(target.path):/backups",
                           "-e", "BACKUP_ON_START=true", "-e", "CRON_SCHEDULE=0 3 1 1 *", "-e", "STOP_TIMEOUT=1",
                           "-e", "LOCK_TTL=6",
                           "-e", "LOG_FORMAT=text", "--health-interval", "1s", "--health-start-period", "0s",
                           image, "daemon", "--stack", project])
            // The start-up backup (default level: quick) ends first, so that the manual run has the lock.
            try await Self.waitUntil(seconds: 120, "the sidecar's start-up backup") {
                try !TestBed.hostFiles(target).filter { $0.hasSuffix(".tar.zst") }.isEmpty
                    && !KilledRunTests.lockExists(lockName)
            }
            let first = TestBed.hostFiles(target).filter { $0.hasSuffix(".tar.zst") }
            #expect(first.count == 1, "\(first)")

            // The manual run, as the README shows it; level 19 makes the copy slow enough to land in it.
            let manual = try await Self.manualRunInItsCopy(sidecar: sidecar, project: project, names: names,
                                                           log: target.appendingPathComponent("exec.log"))
            let exec = manual.process, execLog = manual.log

            // `docker stop` of the sidecar: its PID 1 (the daemon) ends, the exec'd run is killed with it.
            try Shell.run(["docker", "stop", "-t", "30", sidecar])
            exec.waitUntilExit()
            #expect(exec.terminationStatus != 0, "the manual run was not killed:\n\(execLog().suffix(3000))")
            for name in names {
                #expect(try KilledRunTests.state(name) == "exited", "\(name) was not left stopped by the killed run")
            }
            #expect(try KilledRunTests.lockExists(lockName), "the killed run left no lock")
            let partials = TestBed.hostFiles(target).filter { $0.hasSuffix(".partial") }
            #expect(!partials.isEmpty, "the killed run left no partial archive: the test did not land mid-copy")

            // `docker start`: health is asked all along; it must not say healthy while the containers are down.
            let restartedAt = Date()
            try Shell.run(["docker", "start", sidecar])
            var healthyWhileDown: [String] = []
            try await Self.waitUntil(seconds: 120, "the containers running again and a healthy sidecar") {
                let health = try Shell.run(["docker", "exec", sidecar, "stackvault", "health"], check: false)
                let down = try names.filter { try KilledRunTests.state($0) != "running" }
                if health.ok && !down.isEmpty { healthyWhileDown.append("\(down): \(health.stdout)") }
                return health.ok && down.isEmpty
            }
            #expect(healthyWhileDown.isEmpty, "health said healthy while containers were down: \(healthyWhileDown)")
            let logs = try Shell.run(["docker", "logs", "--since", String(Int(restartedAt.timeIntervalSince1970) - 1), sidecar], check: false)
            let daemonLog = logs.stdout + logs.stderr
            #expect(daemonLog.contains("died while its containers were stopped"), "\(daemonLog.suffix(4000))")
            // Its own earlier life, told by the PID namespace, or (when Linux gave the new namespace the same
            // number) by the holder's PID and start time.
            #expect(daemonLog.contains("earlier life of this container") || daemonLog.contains("has exited"),
                    "\(daemonLog.suffix(4000))")
            #expect(!daemonLog.contains("another StackVault"), "\(daemonLog.suffix(4000))")
            for name in names {
                #expect(daemonLog.contains(name), "\(name) is not named in:\n\(daemonLog.suffix(4000))")
                #expect(try Docker.inspect(name, "{{.RestartCount}}") == "0", "\(name) was restarted by Docker too")
            }
            // The start-up backup after the restart was not skipped for a lock: a second archive, the partial gone.
            try await Self.waitUntil(seconds: 120, "the second start-up backup") {
                TestBed.hostFiles(target).filter { $0.hasSuffix(".tar.zst") }.count == 2
            }
            try await Self.waitUntil(seconds: 30, "the lock to go") { !(try KilledRunTests.lockExists(lockName)) }
            let left = TestBed.hostFiles(target).filter { $0.hasSuffix(".partial") }
            #expect(left.isEmpty, "partial archives left: \(left)")
            let helpers = try Shell.run(["docker", "ps", "-a", "--filter", "label=\(HelperImage.containerLabel)",
                                         "--format", "{{.Names}} {{.Label \"\(HelperImage.containerLabel)\"}}"])
                .stdout.split(separator: "\n").filter { line in names.contains { line.hasSuffix(" \($0)") } }
            #expect(helpers.isEmpty, "helper containers of the killed run are left: \(helpers)")

            // A manual run killed alone (an OOM kill of the exec'd process) while the daemon lives: the daemon's
            // watch over the locks (every LOCK_TTL) starts the containers again; no restart of the sidecar needed.
            let second = try await Self.manualRunInItsCopy(sidecar: sidecar, project: project, names: names,
                                                           log: target.appendingPathComponent("exec2.log"))
            let top = try Shell.run(["docker", "top", sidecar, "-eo", "pid,args"]).stdout
            let pids = top.split(separator: "\n").filter { $0.contains("backup --stack \(project)") }
                .compactMap { $0.split(separator: " ").first.flatMap { Int32($0) } }
            #expect(pids.count == 1, "the manual run is not in docker top:\n\(top)")
            for pid in pids { kill(pid, SIGKILL) }
            second.process.waitUntilExit()
            let killedAt = Date()
            try await Self.waitUntil(seconds: 60, "the daemon starting what the killed run stopped") {
                try names.allSatisfy { try KilledRunTests.state($0) == "running" }
            }
            let swept = Date().timeIntervalSince(killedAt)
            let sweepLog = try Shell.run(["docker", "logs", "--since", String(Int(killedAt.timeIntervalSince1970) - 1),
                                          sidecar], check: false)
            #expect((sweepLog.stdout + sweepLog.stderr).contains("died while its containers were stopped"),
                    "\((sweepLog.stdout + sweepLog.stderr).suffix(4000))")
            try await Self.waitUntil(seconds: 30, "the lock to go") { !(try KilledRunTests.lockExists(lockName)) }
            let health = try Shell.run(["docker", "exec", sidecar, "stackvault", "health"], check: false)
            #expect(health.ok, "\(health.stdout)")
            try Shell.run(["docker", "stop", "-t", "60", sidecar])
            print("[sidecar-restart] \(names.count) containers run again after docker start; partial "
                  + "\(partials.first ?? "-") removed; after a manual run alone was killed, the daemon started them "
                  + String(format: "%.1f s later (LOCK_TTL=6)", swept))
        }

        /// Starts `docker exec <sidecar> stackvault backup --stack <project> --level 19` and returns once it has
        /// stopped `names` and is copying.
        static func manualRunInItsCopy(sidecar: String, project: String, names: [String], log: URL) async throws
            -> (process: Process, log: () -> String)
        {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let exec = Process()
            exec.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            exec.arguments = ["docker", "exec", sidecar, "stackvault", "backup", "--stack", project, "--level", "19"]
            let handle = try FileHandle(forWritingTo: log)
            exec.standardOutput = handle
            exec.standardError = handle
            try exec.run()
            let text = { (try? String(contentsOfFile: log.path, encoding: .utf8)) ?? "" }
            try await waitUntil(seconds: 90, "the manual run stopping both containers\n\(text())") {
                try names.allSatisfy { try KilledRunTests.state($0) != "running" }
            }
            try await waitUntil(seconds: 60, "the manual run's copy\n\(text())") {
                text().contains("volume-path data (/data) from container")
            }
            try await Task.sleep(for: .seconds(1))
            return (exec, text)
        }

        /// Polls `condition` every 250 ms; fails naming `what` after `seconds`.
        static func waitUntil(seconds: Double, _ what: @autoclosure () -> String,
                              _ condition: () throws -> Bool) async throws
        {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw TestFailure("\(what()) did not happen in \(seconds) s")
        }
    }
}
