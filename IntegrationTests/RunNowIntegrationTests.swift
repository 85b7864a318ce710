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
            throw TestFailure("daemon \(daemon.name): \(what) did not happen in \(seconds) s\n\(daemon.log.suffix(6000))")
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
