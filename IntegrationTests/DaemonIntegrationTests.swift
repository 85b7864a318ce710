import Foundation
import StackVaultCore
import Testing

/// `stackvault daemon` against the real Docker engine: scheduling, SIGTERM, the cross-process lock, health, and the
/// sidecar image.
extension Integration {
    @Suite struct DaemonTests {
        /// A daemon process with its own target directory, state file and log file.
        final class Daemon {
            let process = Process()
            let directory: URL
            let name: String

            var target: URL { directory.appendingPathComponent("target") }
            var stateFile: StateFile { StateFile(path: directory.appendingPathComponent("state.json").path) }
            var logPath: String { directory.appendingPathComponent("daemon.log").path }
            var pid: Int32 { process.processIdentifier }

            /// `targetURL` replaces the default target (a fresh `target` directory).
            init(_ name: String, stacks: [String], environment: [String: String] = [:], directory: URL? = nil,
                 targetURL: String? = nil) throws
            {
                self.name = name
                self.directory = try directory ?? TestBed.temporaryDirectory("daemon-\(name)")
                try FileManager.default.createDirectory(at: self.directory.appendingPathComponent("target"),
                                                        withIntermediateDirectories: true)
                process.executableURL = URL(fileURLWithPath: TestBed.binary)
                process.arguments = ["daemon", "--target", targetURL ?? "file://\(target.path)"]
                    + stacks.flatMap { ["--stack", $0] }
                var variables = ProcessInfo.processInfo.environment
                for key in ["CRON_SCHEDULE", "BACKUP_ON_START", "TZ", "LOG_FORMAT", "LOCK_TTL", "BACKUP_TARGET",
                            "S3_BUCKET_URL", "ZSTD_LEVEL", "STACKS"] {
                    variables[key] = nil
                }
                variables["STATE_FILE"] = stateFile.path
                variables["CRON_SCHEDULE"] = "0 3 1 1 *"  // far away unless the test says otherwise
                variables.merge(environment) { $1 }
                process.environment = variables
                _ = FileManager.default.createFile(atPath: logPath, contents: nil)
                let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
                process.standardOutput = log
                process.standardError = log
                try process.run()
            }

            var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
            var state: DaemonState? { try? stateFile.read() }

            /// Waits until `condition` holds on the state file; fails with the log after `seconds`.
            @discardableResult
            func waitForState(seconds: Double, _ what: String, _ condition: (DaemonState) -> Bool) throws
                -> DaemonState
            {
                let deadline = Date().addingTimeInterval(seconds)
                while Date() < deadline {
                    if let state, condition(state) { return state }
                    if !process.isRunning { break }
                    usleep(100_000)
                }
                throw TestFailure("daemon \(name): \(what) did not happen in \(seconds) s\nlog:\n\(log.suffix(6000))")
            }

            /// Sends `signal` and waits for the exit; returns the exit status, nil if it did not exit in time.
            func stop(_ signal: Int32 = SIGTERM, seconds: Double = 30) -> Int32? {
                Shell.signal(process, signal, seconds: seconds)
            }

            func archives() -> [String] {
                TestBed.hostFiles(target).filter { $0.hasSuffix(".tar.zst") }
            }

            func cleanUp() {
                _ = stop(SIGKILL, seconds: 5)
                try? FileManager.default.removeItem(at: directory)
            }
        }

        /// A busybox container (with an init, so it stops at once) whose `/data` is backed up; `megabytes` of random
        /// data make the copy take a while at zstd level 19.
        static func volumeContainer(_ name: String, megabytes: Int = 0, labels: [String: String] = [:]) throws {
            try Shell.run(["docker", "rm", "-f", name], check: false)
            var arguments = ["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                             "--label", "backup.enable=true"]
            for (key, value) in labels.merging(["backup.volume-path.data": "/data"], uniquingKeysWith: { a, _ in a }) {
                arguments += ["--label", "\(key)=\(value)"]
            }
            try Shell.run(arguments + [TestBed.busyboxImage, "sleep", "1000000"])
            var seed = "mkdir -p /data && echo hello > /data/hello.txt"
            if megabytes > 0 {
                seed += " && for i in $(seq 1 \((megabytes + 99) / 100)); do "
                    + "head -c 100000000 /dev/urandom > /data/f$i; done"
            }
            try Docker.exec(name, seed)
        }

        static func removeContainers(_ names: String...) {
            _ = try? Shell.run(["docker", "rm", "-f"] + names, check: false)
        }

        /// `docker ps` state (`running`, `exited`); not `docker inspect`, which waits while an archive is read.
        static func containerState(_ name: String) throws -> String {
            try Shell.run(["docker", "ps", "-a", "--filter", "name=^/\(name)$", "--format", "{{.State}}"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Waits until the container has been stopped for its copy.
        static func waitUntilStopped(_ name: String, by daemon: Daemon) throws {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, try containerState(name) == "running" {
                guard daemon.process.isRunning else { break }
                usleep(50_000)
            }
            guard try containerState(name) != "running" else {
                throw TestFailure("daemon \(daemon.name) never stopped \(name) for its copy\n"
                    + daemon.log.suffix(4000))
            }
        }

        static func lockContainers(_ stack: String) throws -> [String] {
            try Shell.run(["docker", "ps", "-a", "--filter", "name=^/\(StackLocker.lockName(for: stack))$",
                           "--format", "{{.ID}} {{.Label \"org.stackvault.lock.holder-pid\"}}"])
                .stdout.split(separator: "\n").map(String.init)
        }

        static func health(_ daemon: Daemon) throws -> CommandResult {
            try StackVaultCLI.run(["health"], environment: ["STATE_FILE": daemon.stateFile.path])
        }

        // MARK: - Tests

        @Test func anEveryMinuteScheduleBacksUpWithoutBeingAsked() throws {
            try TestBed.requireDocker()
            let name = "svtest-dmn-minute"
            try Self.volumeContainer(name)
            defer { Self.removeContainers(name) }
            let daemon = try Daemon("minute", stacks: [name], environment: [
                "CRON_SCHEDULE": "* * * * *", "TZ": "Europe/Berlin", "LOG_FORMAT": "json",
            ])
            defer { daemon.cleanUp() }
            let first = try daemon.waitForState(seconds: 5, "the state file") { _ in true }
            #expect(first.lastRun == nil || first.lastRun?.trigger == .schedule)
            let nextDue = try #require(first.nextRunDue)
            #expect(nextDue.timeIntervalSince1970.truncatingRemainder(dividingBy: 60) == 0)

            let state = try daemon.waitForState(seconds: 80, "a scheduled run") { $0.lastRun?.trigger == .schedule }
            let run = try #require(state.lastRun)
            #expect(run.outcome == .succeeded, "\(daemon.log)")
            #expect(run.due == nextDue)
            #expect(run.startedAt >= run.due && run.startedAt.timeIntervalSince(run.due) < 5)
            #expect(daemon.archives().count == 1)
            #expect(try Docker.isRunning(name))

            // JSON logs: one object per line, with the run's start, its stack and its summary.
            let lines = daemon.log.split(separator: "\n")
            let objects = lines.compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            #expect(objects.count == lines.count, "a log line is not JSON:\n\(daemon.log)")
            let messages = objects.compactMap { $0["message"] as? String }
            #expect(messages.contains { $0.hasPrefix("backup run started (scheduled") })
            #expect(messages.contains { $0.hasPrefix("stack \(name) done:") })
            #expect(messages.contains { $0.hasPrefix("backup run finished") && $0.contains("1 stack(s) backed up") })
            #expect(objects.allSatisfy { $0["time"] is String && $0["level"] is String })

            let health = try Self.health(daemon)
            #expect(health.status == 0, "\(health.stdout)")
            #expect(health.stdout.hasPrefix("healthy:"))
            #expect(daemon.stop() == 0, "the daemon did not exit 0 on SIGTERM:\n\(daemon.log)")
            #expect(try Self.lockContainers(name).isEmpty, "a lock container was left behind")
        }

        @Test func sigtermDuringALargeCopyEndsTheDaemonWithEveryContainerRunning() throws {
            try TestBed.requireDocker()
            let name = "svtest-dmn-sigterm"
            try Self.volumeContainer(name, megabytes: 400)
            defer { Self.removeContainers(name) }
            let daemon = try Daemon("sigterm", stacks: [name],
                                    environment: ["BACKUP_ON_START": "true", "ZSTD_LEVEL": "19"])
            defer { daemon.cleanUp() }
            try Self.waitUntilStopped(name, by: daemon)
            usleep(500_000)
            let signalled = Date()
            let status = daemon.stop(SIGTERM, seconds: 60)
            let took = Date().timeIntervalSince(signalled)
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none (killed)"):\n\(daemon.log)")
            #expect(took < 30, "the daemon took \(took) s to stop")
            #expect(try Docker.isRunning(name), "SIGTERM left the container stopped:\n\(daemon.log)")
            let log = daemon.log
            #expect(log.contains("shutting down"))
            #expect(log.contains("started \(name) again"))
            #expect(log.contains("daemon stopped"))
            let left = TestBed.hostFiles(daemon.target)
            #expect(left.isEmpty, "an interrupted run left \(left)")
            #expect(daemon.state?.lastRun?.outcome == .interrupted)
            #expect(try Self.lockContainers(name).isEmpty, "the lock was not released on SIGTERM")
            let health = try Self.health(daemon)
            #expect(health.status == 1 && health.stdout.contains("interrupted"), "\(health.stdout)")
        }

        /// A dump-only stack whose dump takes `seconds`: a busybox container with a stand-in `pg_dumpall` that
        /// sleeps, then prints a complete dump. Its container is never stopped, so `docker inspect` never waits on
        /// an archive read (Docker holds a container's lock while its files are copied), and the lock is held for a
        /// known time.
        static func slowDumpContainer(_ name: String, seconds: Int) throws {
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.database.pg_dumpall=true",
                           "-e", "POSTGRES_PASSWORD=unused", TestBed.busyboxImage, "sleep", "1000000"])
            try Docker.exec(name, """
                mkdir -p /usr/local/bin && cat > /usr/local/bin/pg_dumpall <<'EOF'
                #!/bin/sh
                sleep \(seconds)
                echo '-- PostgreSQL database cluster dump'
                echo '-- PostgreSQL database cluster dump complete'
                EOF
                chmod +x /usr/local/bin/pg_dumpall
                """)
        }

        @Test func twoDaemonsOnOneHostNeverBackUpTheSameStackAtOnce() throws {
            try TestBed.requireDocker()
            let name = "svtest-dmn-pair"
            try Self.slowDumpContainer(name, seconds: 8)
            defer { Self.removeContainers(name) }
            let first = try Daemon("pair-a", stacks: [name], environment: ["BACKUP_ON_START": "true"])
            defer { first.cleanUp() }
            let deadline = Date().addingTimeInterval(30)
            while !first.log.contains("backing up stack \(name)") && Date() < deadline { usleep(50_000) }
            #expect(first.log.contains("backing up stack \(name)"), "\(first.log)")
            // While the first backs up, its lock is a created (never started) container naming it.
            let locks = try Self.lockContainers(name)
            #expect(locks.count == 1 && locks.first?.hasSuffix(" \(first.pid)") == true, "\(locks)")

            let second = try Daemon("pair-b", stacks: [name], environment: ["BACKUP_ON_START": "true"])
            defer { second.cleanUp() }
            let skipped = try second.waitForState(seconds: 30, "the second daemon's run") { $0.lastRun != nil }
            let outcome = try #require(skipped.lastRun?.stacks.first)
            #expect(outcome.status == .skipped, "\(second.log)")
            #expect(outcome.detail?.contains("/\(first.pid)/") == true, "\(outcome.detail ?? "")")
            #expect(skipped.lastRun?.outcome == .succeeded)
            #expect(!second.log.contains("backing up stack \(name)"))
            #expect(first.state?.lastRun == nil, "the first daemon's run should still be going")

            let done = try first.waitForState(seconds: 60, "the first daemon's run") { $0.lastRun != nil }
            #expect(done.lastRun?.outcome == .succeeded, "\(first.log)")
            #expect(first.archives().count == 1)
            #expect(second.archives().isEmpty)
            #expect(try Self.lockContainers(name).isEmpty, "the lock was not released")
            #expect(try Self.health(second).status == 0, "a stack skipped for another daemon is not a failure")
            #expect(first.stop() == 0)
            #expect(second.stop() == 0)
        }

        @Test func aCrashedHoldersLockIsTakenOver() throws {
            try TestBed.requireDocker()
            let name = "svtest-dmn-crash"
            let lockName = StackLocker.lockName(for: name)
            try Self.volumeContainer(name, megabytes: 200)
            defer {
                Self.removeContainers(name)
                _ = try? Shell.run(["docker", "rm", "-f", lockName], check: false)
            }
            // 1. A daemon killed with SIGKILL mid-copy leaves its lock behind; the next one breaks it at once,
            //    because it can see that the holder process is gone.
            let crashed = try Daemon("crash-a", stacks: [name], environment: ["BACKUP_ON_START": "true",
                                                                              "ZSTD_LEVEL": "19"])
            defer { crashed.cleanUp() }
            try Self.waitUntilStopped(name, by: crashed)
            #expect(crashed.stop(SIGKILL) != nil)
            #expect(try Self.lockContainers(name).count == 1, "the killed daemon's lock should still be there")
            try Shell.run(["docker", "start", name])  // what its restart policy would do
            let heir = try Daemon("crash-b", stacks: [name], environment: ["BACKUP_ON_START": "true"])
            defer { heir.cleanUp() }
            let state = try heir.waitForState(seconds: 60, "the run after the crash") { $0.lastRun != nil }
            #expect(state.lastRun?.outcome == .succeeded, "\(heir.log)")
            #expect(heir.log.contains("breaking the stale lock \(lockName)"))
            #expect(heir.log.contains("holder process \(crashed.pid) has exited"))
            #expect(heir.archives().count == 1)
            #expect(heir.stop() == 0)

            // 2. A holder this host cannot check (another PID namespace, no container) counts until its lease ends.
            try Shell.run(["docker", "rm", "-f", lockName], check: false)
            let expires = Date().addingTimeInterval(6)
            try Docker.createForeignLock(stack: name, expires: expires)
            // A manual `stackvault backup` respects the same lock: it fails and says who holds it.
            let manualTarget = try TestBed.temporaryDirectory("manual-locked")
            defer { try? FileManager.default.removeItem(at: manualTarget) }
            let manual = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(manualTarget.path)"])
            #expect(manual.status == 1, "\(manual.stdout)\n\(manual.stderr)")
            #expect(manual.stdout.contains("another StackVault (elsewhere/1/abcd"), "\(manual.stdout)")
            #expect(TestBed.hostFiles(manualTarget).isEmpty)
            let blocked = try Daemon("crash-c", stacks: [name], environment: ["BACKUP_ON_START": "true"])
            defer { blocked.cleanUp() }
            let skipped = try blocked.waitForState(seconds: 30, "a run against a live lease") { $0.lastRun != nil }
            #expect(skipped.lastRun?.stacks.first?.status == .skipped, "\(blocked.log)")
            #expect(blocked.stop() == 0)
            while Date() < expires.addingTimeInterval(1) { usleep(200_000) }
            let after = try Daemon("crash-d", stacks: [name], environment: ["BACKUP_ON_START": "true"])
            defer { after.cleanUp() }
            let taken = try after.waitForState(seconds: 60, "a run after the lease") { $0.lastRun != nil }
            #expect(taken.lastRun?.outcome == .succeeded, "\(after.log)")
            #expect(after.log.contains("lease expired"))
            #expect(after.stop() == 0)
        }

        @Test func healthReflectsAFailedRun() throws {
            try TestBed.requireDocker()
            let bad = "svtest-dmn-bad", good = "svtest-dmn-good"
            // A relative volume path is a label error: the stack fails.
            try Self.volumeContainer(bad, labels: ["backup.volume-path.data": "relative/path"])
            try Self.volumeContainer(good)
            defer { Self.removeContainers(bad, good) }
            let failing = try Daemon("health-bad", stacks: [bad], environment: ["BACKUP_ON_START": "true"])
            defer { failing.cleanUp() }
            try failing.waitForState(seconds: 30, "the failing run") { $0.lastRun != nil }
            #expect(failing.stop() == 0)
            let unhealthy = try Self.health(failing)
            #expect(unhealthy.status == 1, "\(unhealthy.stdout)")
            #expect(unhealthy.stdout.hasPrefix("UNHEALTHY: the last backup run"))
            #expect(unhealthy.stdout.contains("stack \(bad): not backed up because of label problems"))

            // The same state file, a daemon whose run succeeds: healthy again.
            let fixed = try Daemon("health-good", stacks: [good], environment: ["BACKUP_ON_START": "true"],
                                   directory: failing.directory)
            defer { fixed.cleanUp() }
            try fixed.waitForState(seconds: 30, "the good run") { $0.lastRun?.outcome == .succeeded }
            let healthy = try Self.health(fixed)
            #expect(healthy.status == 0, "\(healthy.stdout)")
            #expect(fixed.stop() == 0)
            // No state file at all: unhealthy, and says why.
            let missing = try StackVaultCLI.run(["health"], environment: ["STATE_FILE": "/nonexistent/state.json"])
            #expect(missing.status == 1 && missing.stdout.contains("does not exist"))
        }

        @Test func theImageRunsPlanAndTheDaemonThroughTheMountedSocket() throws {
            try TestBed.requireDocker()
            let image = try TestBed.sidecarImage()
            let name = "svtest-dmn-image", sidecar = "svtest-dmn-sidecar"
            try Self.volumeContainer(name)
            defer { Self.removeContainers(name, sidecar) }
            let socket = "/var/run/docker.sock"

            // `plan` from inside the image, through the socket.
            let plan = try Shell.run(["docker", "run", "--rm", "--label", "stackvault.test=true", "-v",
                                      "\(socket):/var/run/docker.sock", image, "plan", "--json"], check: false)
            #expect(plan.status == 0 || plan.status == 1, "\(plan.stderr)")  // 1: another test's stack has errors
            let document = try #require(
                (try? JSONSerialization.jsonObject(with: Data(plan.stdout.utf8))) as? [String: Any], "\(plan.stdout)")
            let stacks = document["stacks"] as? [[String: Any]] ?? []
            #expect(stacks.contains { $0["name"] as? String == name }, "\(plan.stdout)")
            // Time zones work in the image (tz data and Foundation's).
            let schedule = try Shell.run(["docker", "run", "--rm", image, "schedule", "30 2 * * *",
                                          "--time-zone", "Europe/Berlin", "--after", "2024-03-30T12:00:00Z",
                                          "--next", "1"])
            #expect(schedule.stdout.contains("2024-03-31T03:00:00+02:00"), "\(schedule.stdout)")

            // The daemon as the default command, with its HEALTHCHECK.
            let target = try TestBed.temporaryDirectory("sidecar")
            defer { try? FileManager.default.removeItem(at: target) }
            try Shell.run(["docker", "rm", "-f", sidecar], check: false)
            try Shell.run(["docker", "run", "-d", "--name", sidecar, "--label", "stackvault.test=true",
                           "-v", "\(socket):/var/run/docker.sock", "-v", "\(target.path):/backups",
                           "-e", "BACKUP_ON_START=true", "-e", "TZ=Europe/Berlin",
                           "--health-interval", "1s", "--health-start-period", "0s", image, "daemon",
                           "--stack", name])
            var health = ""
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, health != "healthy" {
                usleep(500_000)
                health = try Docker.inspect(sidecar, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")
            }
            // Healthy comes with the first state file, while the start-up backup may still be copying: wait for it.
            let isArchive = { (file: String) in file.hasPrefix("backup-\(name)-") && file.hasSuffix(".tar.zst") }
            var archives = TestBed.hostFiles(target)
            let archiveDeadline = Date().addingTimeInterval(90)
            while Date() < archiveDeadline, !archives.contains(where: isArchive) {
                usleep(500_000)
                archives = TestBed.hostFiles(target)
            }
            let logs = try Shell.run(["docker", "logs", sidecar], check: false)
            #expect(health == "healthy", "\(logs.stdout)\n\(logs.stderr)")
            #expect(archives.contains(where: isArchive), "\(archives)\n\(logs.stdout)\n\(logs.stderr)")
            #expect(logs.stdout.contains("daemon started"), "the daemon logs to stdout")
            try Shell.run(["docker", "stop", "-t", "60", sidecar])
            #expect(try Docker.inspect(sidecar, "{{.State.ExitCode}}") == "0")
            #expect(try Docker.isRunning(name))
        }
    }
}
