import Foundation
import StackVaultCore
import Testing

/// `stackvault daemon` with `METRICS_ADDR`: Prometheus metrics and `/healthz` over real HTTP after a real run.
extension Integration {
    @Suite struct MetricsTests {
        typealias Daemon = Integration.DaemonTests.Daemon

        /// `curl` one URL: the HTTP status and the body.
        static func fetch(_ url: String) throws -> (status: Int, body: String) {
            let result = try Shell.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url], check: false)
            guard result.ok, let newline = result.stdout.lastIndex(of: "\n"),
                  let status = Int(result.stdout[result.stdout.index(after: newline)...])
            else { throw TestFailure("curl \(url) failed (\(result.status)): \(result.stderr)") }
            return (status, String(result.stdout[..<newline]))
        }

        /// The value of the sample `series` (`name{labels}`) in an exposition, nil if absent.
        static func sample(_ series: String, in text: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
                .flatMap { Double($0.dropFirst(series.count + 1)) }
        }

        @Test func theDaemonServesTheLastRunsMetricsAndItsHealth() throws {
            try TestBed.requireDocker()
            let name = "svtest-metrics-\(UUID().uuidString.prefix(8).lowercased())"
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.bin=/bin",
                           TestBed.busyboxImage, "sleep", "1000000"])
            defer { Integration.DaemonTests.removeContainers(name) }
            let port = Int.random(in: 20000..<60000)
            let base = "http://127.0.0.1:\(port)"
            let started = Date()
            let daemon = try Daemon("metrics", stacks: [name], environment: [
                "BACKUP_ON_START": "true", "METRICS_ADDR": "127.0.0.1:\(port)",
            ])
            defer { daemon.cleanUp() }
            let state = try daemon.waitForState(seconds: 60, "the start-up run") { $0.lastRun != nil }
            #expect(state.lastRun?.outcome == .succeeded, "\(daemon.log)")
            #expect(daemon.log.contains("metrics on \(base)/metrics"), "\(daemon.log)")

            // The run is recorded right after the state file has it: wait for its series.
            let stack = "{host=\"\(TestBed.engineHost)\",stack=\"\(name)\"}"
            var metrics = ""
            let deadline = Date().addingTimeInterval(10)
            repeat {
                let page = try Self.fetch("\(base)/metrics")
                #expect(page.status == 200)
                metrics = page.body
                if metrics.contains("stackvault_stack_last_success_timestamp_seconds\(stack)") { break }
                usleep(200_000)
            } while Date() < deadline

            let lastSuccess = try #require(
                Self.sample("stackvault_stack_last_success_timestamp_seconds\(stack)", in: metrics), "\(metrics)")
            #expect(lastSuccess >= started.timeIntervalSince1970 - 1 && lastSuccess <= Date().timeIntervalSince1970)
            let archive = try #require(daemon.archives().first)
            let size = try FileManager.default.attributesOfItem(
                atPath: TestBed.hostFolder(daemon.target).appendingPathComponent(archive).path)[.size] as? Int
            let archiveSize = Self.sample("stackvault_stack_last_archive_size_bytes\(stack)", in: metrics)
            #expect((archiveSize ?? 0) > 0 && archiveSize == size.map { Double($0) }, "\(metrics)")
            #expect(Self.sample("stackvault_stack_last_containers_stopped\(stack)", in: metrics) == 1)
            #expect((Self.sample("stackvault_stack_last_downtime_seconds\(stack)", in: metrics) ?? 0) > 0)
            #expect((Self.sample("stackvault_stack_last_read_bytes\(stack)", in: metrics) ?? 0) > 0)
            #expect((Self.sample("stackvault_stack_last_duration_seconds\(stack)", in: metrics) ?? 0) > 0)
            #expect(Self.sample("stackvault_stack_failures_total\(stack)", in: metrics) == 0)
            #expect(Self.sample("stackvault_runs_total{host=\"\(TestBed.engineHost)\",outcome=\"succeeded\"}", in: metrics) == 1)
            #expect(metrics.contains("# TYPE stackvault_stack_failures_total counter"))
            // The target's archive count of the stack, and the next scheduled run (1 January, 03:00).
            #expect(Self.sample("stackvault_stack_archives\(stack)", in: metrics) == Double(try daemon.archives().count),
                    "\(metrics)")
            let nextRun = Self.sample("stackvault_next_run_timestamp_seconds{host=\"\(TestBed.engineHost)\"}",
                                      in: metrics)
            let now = Date().timeIntervalSince1970
            #expect((nextRun ?? 0) > now && (nextRun ?? 0) <= now + 367 * 86400, "\(metrics)")

            let health = try Self.fetch("\(base)/healthz")
            #expect(health.status == 200, "\(health.body)")
            #expect(health.body.hasPrefix("healthy: the last run"), "\(health.body)")
            #expect(try Self.fetch("\(base)/nothing").status == 404)

            #expect(daemon.stop() == 0, "the daemon did not exit 0 on SIGTERM:\n\(daemon.log)")
            #expect(try Docker.isRunning(name))
            let refused = try Shell.run(["curl", "-sS", "--max-time", "5", "\(base)/metrics"], check: false)
            #expect(!refused.ok, "the metrics port is still open after the daemon exited")
        }

        @Test func aBadMetricsAddressStopsTheDaemonAtStart() throws {
            try TestBed.requireDocker()
            let directory = try TestBed.temporaryDirectory("metrics-bad")
            defer { try? FileManager.default.removeItem(at: directory) }
            let result = try StackVaultCLI.run(["daemon", "--target", "file://\(directory.path)"], environment: [
                "METRICS_ADDR": "9090", "STATE_FILE": directory.appendingPathComponent("state.json").path,
            ])
            #expect(result.status == 2, "\(result.stdout)\n\(result.stderr)")
            #expect(result.stderr.contains("METRICS_ADDR='9090' has no port"), "\(result.stderr)")
        }
    }
}
