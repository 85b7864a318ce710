import Foundation
import StackVaultCore
import Testing

/// `stackvault run-now` and SIGUSR1 reaching a real daemon process (far-away schedule), with `STACKS` as its
/// selection: the run is recorded in the state file and in `/metrics`, retention's removal included.
extension Integration {
    @Suite struct RunNowTests {
        typealias Daemon = Integration.DaemonTests.Daemon

        /// Polls `condition` every 100 ms for up to `seconds`; fails with the daemon's log.
        static func wait(_ daemon: Daemon, seconds: Double, _ what: String,
                         _ condition: () throws -> Bool) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return }
                guard daemon.process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestFailure("daemon \(daemon.name): \(what) did not happen in \(seconds) s\n"
                + "\(daemon.log.suffix(6000))")
        }

        static func metrics(_ base: String) throws -> String {
            let page = try Integration.MetricsTests.fetch("\(base)/metrics")
            guard page.status == 200 else { throw TestFailure("/metrics answered \(page.status): \(page.body)") }
            return page.body
        }

        @Test func runNowAndSIGUSR1ReachTheDaemonAndAreRecordedInStateAndMetrics() async throws {
            try TestBed.requireDocker()
            let name = "svtest-runnow-\(UUID().uuidString.prefix(8).lowercased())"
            try Integration.DaemonTests.volumeContainer(name)
            defer { Integration.DaemonTests.removeContainers(name) }
            let port = Int.random(in: 20000..<60000)
            let base = "http://127.0.0.1:\(port)"
            let daemon = try Daemon("runnow", stacks: [], environment: [
                "STACKS": name, "METRICS_ADDR": "127.0.0.1:\(port)", "RETENTION_KEEP_LAST": "1",
            ])
            defer { daemon.cleanUp() }
            let cli = ["STATE_FILE": daemon.stateFile.path, "STACKS": name]
            let pidFile = DaemonPIDFile(stateFile: daemon.stateFile)
            try await Self.wait(daemon, seconds: 30, "the pid file") { pidFile.read() == daemon.pid }
            #expect(daemon.log.contains("stacks \(name) (from STACKS)"), "\(daemon.log)")
            #expect(daemon.state?.selectedStacks == [name])

            // plan with the sidecar's environment shows the daemon's selection and where it came from.
            let plan = try StackVaultCLI.run(["plan", "--target", "file://\(daemon.target.path)"], environment: cli)
            #expect(plan.status == 0, "\(plan.stdout)\n\(plan.stderr)")
            #expect(plan.stdout.contains("Stacks: \(name) (from STACKS"), "\(plan.stdout)")
            #expect(plan.stdout.contains("Stack \(name) "), "\(plan.stdout)")

            // A stack outside the selection is refused before anything is asked of the daemon.
            let outside = try StackVaultCLI.run(["run-now", "--stack", "svtest-not-selected"], environment: cli)
            #expect(outside.status == 1, "\(outside.stdout)\n\(outside.stderr)")
            #expect(outside.stderr.contains("not in the daemon's selection"), "\(outside.stderr)")
            #expect(outside.stderr.contains("svtest-not-selected"))

            // run-now waits for the run and reports it; the daemon records it like a scheduled run.
            let first = try StackVaultCLI.run(["run-now"], environment: cli)
            #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)\n\(daemon.log.suffix(4000))")
            #expect(first.stdout.contains(name) && first.stdout.contains("ok: backup-\(name)-"), "\(first.stdout)")
            let state = try #require(daemon.state)
            let run = try #require(state.lastRun)
            #expect(run.trigger == .request && run.outcome == .succeeded)
            #expect(run.stacks.map(\.stack) == [name])
            #expect(state.requests?.last?.phase == .finished && state.requests?.last?.succeeded == true)
            #expect(state.currentRun == nil)
            #expect(daemon.log.contains("run requested (run-now"), "\(daemon.log)")
            let firstArchive = try #require(daemon.archives().first)
            #expect(daemon.archives().count == 1)

            let stack = "{host=\"\(TestBed.engineHost)\",stack=\"\(name)\"}"
            let succeeded = "stackvault_runs_total{host=\"\(TestBed.engineHost)\",outcome=\"succeeded\"}"
            var page = try Self.metrics(base)
            #expect(Integration.MetricsTests.sample(succeeded, in: page) == 1, "\(page)")
            #expect(Integration.MetricsTests.sample("stackvault_stack_archives\(stack)", in: page) == 1)

            // SIGUSR1 (docker kill -s USR1) runs the whole selection; RETENTION_KEEP_LAST=1 removes the first
            // archive, and the metrics show the new one's size and one archive, not the removed one.
            #expect(kill(daemon.pid, SIGUSR1) == 0)
            // (The state file keeps whole seconds: both runs may have started in the same one.)
            try await Self.wait(daemon, seconds: 60, "the SIGUSR1 run") {
                daemon.state?.requests?.contains { $0.id.hasPrefix("signal-") && $0.phase == .finished } == true
            }
            #expect(daemon.state?.lastRun?.outcome == .succeeded, "\(daemon.log)")
            #expect(daemon.log.contains("run requested (SIGUSR1"), "\(daemon.log)")
            let archives = daemon.archives()
            #expect(archives.count == 1 && archives.first != firstArchive, "\(archives)")
            try await Self.wait(daemon, seconds: 10, "the second run in /metrics") {
                page = try Self.metrics(base)
                return Integration.MetricsTests.sample(succeeded, in: page) == 2
            }
            let newest = try #require(archives.first)
            let size = try FileManager.default.attributesOfItem(
                atPath: TestBed.hostFolder(daemon.target).appendingPathComponent(newest).path)[.size] as? Int
            #expect(Integration.MetricsTests.sample("stackvault_stack_last_archive_size_bytes\(stack)", in: page)
                == size.map(Double.init), "\(page)")
            #expect(Integration.MetricsTests.sample("stackvault_stack_archives\(stack)", in: page) == 1, "\(page)")

            // A backup by hand next to the daemon is told that the daemon will not see it.
            let manual = try StackVaultCLI.run(["backup", "--target", "file://\(daemon.target.path)"], environment: cli)
            #expect(manual.status == 0, "\(manual.stderr)")
            #expect(manual.stderr.contains("a StackVault daemon (pid \(daemon.pid)"), "\(manual.stderr)")

            let health = try Integration.DaemonTests.health(daemon)
            #expect(health.status == 0, "\(health.stdout)")
            #expect(daemon.stop() == 0, "the daemon did not exit 0 on SIGTERM:\n\(daemon.log)")
            #expect(pidFile.read() == nil, "the daemon left its pid file behind")
            #expect(try Docker.isRunning(name))
        }

        @Test func aRequestDuringARunIsQueuedAndAWaitingRunNowLearnsThatTheDaemonStoppedIt() async throws {
            try TestBed.requireDocker()
            let name = "svtest-runnow-busy-\(UUID().uuidString.prefix(8).lowercased())"
            try Integration.DaemonTests.volumeContainer(name, megabytes: 200)
            defer { Integration.DaemonTests.removeContainers(name) }
            let daemon = try Daemon("runnow-busy", stacks: [name], environment: ["ZSTD_LEVEL": "19"])
            defer { daemon.cleanUp() }
            let pidFile = DaemonPIDFile(stateFile: daemon.stateFile)
            try await Self.wait(daemon, seconds: 30, "the pid file") { pidFile.read() == daemon.pid }

            // plan beside a daemon started with --stack (no STACKS) shows that daemon's selection.
            let plan = try StackVaultCLI.run(["plan", "--target", "file://\(daemon.target.path)"],
                                             environment: ["STATE_FILE": daemon.stateFile.path])
            #expect(plan.stdout.contains("Stacks: \(name) (the selection of the daemon running with this "
                + "STATE_FILE)"), "\(plan.stdout)\n\(plan.stderr)")

            // The first run-now waits for its (long) run.
            let waiting = Process()
            waiting.executableURL = URL(fileURLWithPath: TestBed.binary)
            waiting.arguments = ["run-now", "--state-file", daemon.stateFile.path]
            let output = daemon.directory.appendingPathComponent("run-now.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            waiting.standardOutput = handle
            waiting.standardError = handle
            try waiting.run()
            defer { if waiting.isRunning { kill(waiting.processIdentifier, SIGKILL) } }
            try Integration.DaemonTests.waitUntilStopped(name, by: daemon)

            // A second request during that run is queued behind it.
            let queued = try StackVaultCLI.run(["run-now", "--no-wait", "--json"],
                                               environment: ["STATE_FILE": daemon.stateFile.path])
            #expect(queued.status == 0, "\(queued.stdout)\n\(queued.stderr)")
            #expect(queued.stderr.contains("queued: it runs when the run in progress has ended"), "\(queued.stderr)")
            #expect(queued.stdout.contains("\"phase\" : \"queued\""), "\(queued.stdout)")
            #expect(daemon.state?.requests?.map(\.phase) == [.running, .queued])

            // SIGTERM ends the run in progress: the waiting run-now says how it ended and exits 1.
            #expect(daemon.stop(SIGTERM, seconds: 60) == 0, "\(daemon.log)")
            let deadline = Date().addingTimeInterval(30)
            while waiting.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!waiting.isRunning, "run-now did not return when the daemon ended")
            let printed = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            #expect(waiting.terminationStatus == 1, "\(printed)")
            #expect(printed.contains(name) && printed.contains("FAILED"), "\(printed)")
            let left = try #require(daemon.state?.requests?.last)
            #expect(left.phase == .finished && left.error?.contains("the daemon was stopped") == true, "\(left)")
            #expect(daemon.state?.lastRun?.outcome == .interrupted, "\(daemon.log)")
            #expect(try Docker.isRunning(name))
        }

        /// The user's path: the image's daemon as PID 1 of the sidecar, `docker exec ... run-now` and
        /// `docker kill -s USR1`, with `STACKS` as the selection.
        @Test func inTheSidecarRunNowAndDockerKillUSR1ReachTheDaemon() async throws {
            try TestBed.requireDocker()
            let id = UUID().uuidString.prefix(8).lowercased()
            // An image of its own: other suites build a shared tag from their own binary.
            let image = "stackvault-test/stackvault:runnow-\(id)"
            let script = TestBed.repositoryRoot.appendingPathComponent("scripts/build-image.sh").path
            let build = try Shell.run(["bash", script, "--binary", TestBed.binary, "--tag", image], check: false)
            defer { _ = try? Shell.run(["docker", "rmi", "-f", image], check: false) }
            #expect(build.ok, "scripts/build-image.sh failed:\n\(build.stderr.suffix(4000))")
            guard build.ok else { return }
            let name = "svtest-runnow-app-\(id)", sidecar = "svtest-runnow-sidecar-\(id)"
            try Integration.DaemonTests.volumeContainer(name)
            defer { Integration.DaemonTests.removeContainers(name, sidecar) }
            let target = try TestBed.temporaryDirectory("runnow-sidecar")
            defer { try? FileManager.default.removeItem(at: target) }
            try Shell.run(["docker", "run", "-d", "--name", sidecar, "--label", "stackvault.test=true",
                           "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "\(target.path):/backups",
                           "-e", "STACKS=\(name)", "-e", "CRON_SCHEDULE=0 3 1 1 *", image])
            func exec(_ arguments: [String]) throws -> CommandResult {
                try Shell.run(["docker", "exec", sidecar, "stackvault"] + arguments, check: false)
            }
            func state() throws -> DaemonState? {
                let text = try Shell.run(["docker", "exec", sidecar, "cat", StateFile.defaultPath], check: false)
                guard text.ok else { return nil }
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                return try? decoder.decode(DaemonState.self, from: Data(text.stdout.utf8))
            }
            func logs() -> String { (try? Shell.run(["docker", "logs", sidecar], check: false).stdout) ?? "" }
            let pidFile = StateFile.defaultPath + ".pid"
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline,
                  !(try Shell.run(["docker", "exec", sidecar, "test", "-f", pidFile], check: false).ok) {
                try await Task.sleep(for: .milliseconds(200))
            }

            let plan = try exec(["plan"])
            #expect(plan.stdout.contains("Stacks: \(name) (from STACKS"), "\(plan.stdout)\n\(plan.stderr)")
            let run = try exec(["run-now"])
            #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)\n\(logs())")
            #expect(run.stdout.contains("ok: backup-\(name)-"), "\(run.stdout)")
            #expect(try state()?.lastRun?.trigger == .request)

            try Shell.run(["docker", "kill", "-s", "USR1", sidecar])
            var signalled = false
            let until = Date().addingTimeInterval(60)
            while Date() < until, !signalled {
                try await Task.sleep(for: .milliseconds(300))
                signalled = try state()?.requests?.contains { $0.id.hasPrefix("signal-") && $0.phase == .finished }
                    == true
            }
            #expect(signalled, "\(logs())")
            #expect(try Docker.isRunning(sidecar), "SIGUSR1 ended the daemon:\n\(logs())")
            #expect(try state()?.lastRun?.outcome == .succeeded, "\(logs())")
            #expect(try exec(["health"]).status == 0)
            try Shell.run(["docker", "stop", "-t", "60", sidecar])
            #expect(try Docker.inspect(sidecar, "{{.State.ExitCode}}") == "0")
        }

        @Test func runNowWithoutADaemonSaysWhatToDoAndExits2() async throws {
            try TestBed.requireDocker()
            let directory = try TestBed.temporaryDirectory("runnow-none")
            defer { try? FileManager.default.removeItem(at: directory) }
            let stateFile = StateFile(path: directory.appendingPathComponent("state.json").path)
            let none = try StackVaultCLI.run(["run-now"], environment: ["STATE_FILE": stateFile.path])
            #expect(none.status == 2, "\(none.stdout)\n\(none.stderr)")
            #expect(none.stderr.contains("no StackVault daemon is running with the state file \(stateFile.path)"),
                    "\(none.stderr)")
            #expect(none.stderr.contains("\(stateFile.path).pid does not exist"))
            #expect(none.stderr.contains("docker exec <sidecar> stackvault run-now"))

            // A pid file a killed daemon left behind: named as such, and no request is left lying around.
            let dead = Process()
            dead.executableURL = URL(fileURLWithPath: "/bin/true")
            try dead.run()
            dead.waitUntilExit()
            try DaemonPIDFile(stateFile: stateFile).write(pid: dead.processIdentifier)
            let stale = try StackVaultCLI.run(["run-now", "--json"], environment: ["STATE_FILE": stateFile.path])
            #expect(stale.status == 2, "\(stale.stdout)\n\(stale.stderr)")
            #expect(stale.stderr.contains("process \(dead.processIdentifier), named in \(stateFile.path).pid, does "
                + "not exist"), "\(stale.stderr)")
            #expect(RunRequestInbox(stateFile: stateFile).takeAll().requests.isEmpty)
        }
    }
}
