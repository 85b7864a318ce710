import Foundation
import Logging
import StackVaultCore
import StackVaultMetrics
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// The Prometheus exposition and the `/metrics` and `/healthz` answers, without a network.
@Suite struct MetricsTests {
    /// The samples of an exposition, `name{labels}` -> value; fails on a line that is neither a comment nor a
    /// sample.
    static func samples(_ metrics: BackupMetrics) throws -> [String: Double] {
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else {
                throw BadExposition(line: String(line), text: text)
            }
            samples[String(parts[0])] = value
        }
        return samples
    }

    struct BadExposition: Error { var line: String, text: String }

    static let finished = Date(timeIntervalSince1970: 1_700_000_100)

    static func run(_ outcome: RunOutcome, stacks: [StackOutcome]) -> RunRecord {
        RunRecord(trigger: .schedule, due: Date(timeIntervalSince1970: 1_700_000_000),
                  startedAt: Date(timeIntervalSince1970: 1_700_000_000), finishedAt: finished, outcome: outcome,
                  stacks: stacks)
    }

    /// With a host, every series carries it: the metrics of hosts sharing a bucket stay apart once collected.
    @Test func everySeriesCarriesTheHost() throws {
        let metrics = BackupMetrics(host: "alpha")
        metrics.record(Self.run(.succeeded, stacks: [
            StackOutcome(stack: "app", status: .succeeded, archive: "backup-app-x.tar.zst", sizeBytes: 4096,
                         durationSeconds: 1, downtimeSeconds: 0, bytesRead: 1, bytesWritten: 1, containersStopped: 0),
        ]))
        let s = try Self.samples(metrics)
        #expect(s["stackvault_runs_total{host=\"alpha\",outcome=\"succeeded\"}"] == 1)
        #expect(s["stackvault_last_run_written_bytes{host=\"alpha\"}"] == 1)
        #expect(s["stackvault_stack_last_archive_size_bytes{host=\"alpha\",stack=\"app\"}"] == 4096)
        #expect(!s.keys.contains { !$0.contains("host=\"alpha\"") }, "\(s.keys.sorted())")
    }

    @Test func aRecordedRunShowsPerStackAndPerRunSeries() throws {
        let metrics = BackupMetrics()
        metrics.record(Self.run(.failed, stacks: [
            StackOutcome(stack: "app", status: .succeeded, archive: "backup-app-x.tar.zst", sizeBytes: 4096,
                         durationSeconds: 12.5, downtimeSeconds: 3.25, bytesRead: 100_000, bytesWritten: 4096,
                         containersStopped: 2),
            StackOutcome(stack: "shop", status: .failed, durationSeconds: 1.5, detail: "pg_dumpall failed",
                         downtimeSeconds: 0, bytesRead: 10, bytesWritten: 0, containersStopped: 0),
            StackOutcome(stack: "other", status: .skipped, detail: "another StackVault"),
        ]))
        let s = try Self.samples(metrics)
        #expect(s["stackvault_runs_total{outcome=\"failed\"}"] == 1)
        #expect(s["stackvault_runs_total{outcome=\"succeeded\"}"] == 0)
        #expect(s["stackvault_last_run_end_timestamp_seconds"] == 1_700_000_100)
        #expect(s["stackvault_last_run_duration_seconds"] == 100)
        #expect(s["stackvault_last_run_read_bytes"] == 100_010)
        #expect(s["stackvault_last_run_written_bytes"] == 4096)
        #expect(s["stackvault_last_run_containers_stopped"] == 2)
        #expect(s["stackvault_last_run_downtime_seconds"] == 3.25)

        #expect(s["stackvault_stack_last_success_timestamp_seconds{stack=\"app\"}"] == 1_700_000_100)
        #expect(s["stackvault_stack_last_archive_size_bytes{stack=\"app\"}"] == 4096)
        #expect(s["stackvault_stack_last_duration_seconds{stack=\"app\"}"] == 12.5)
        #expect(s["stackvault_stack_failures_total{stack=\"app\"}"] == 0)
        #expect(s["stackvault_stack_last_read_bytes{stack=\"app\"}"] == 100_000)
        #expect(s["stackvault_stack_last_written_bytes{stack=\"app\"}"] == 4096)
        #expect(s["stackvault_stack_last_containers_stopped{stack=\"app\"}"] == 2)
        #expect(s["stackvault_stack_last_downtime_seconds{stack=\"app\"}"] == 3.25)

        // A failed stack counts a failure and has no success time or archive size.
        #expect(s["stackvault_stack_failures_total{stack=\"shop\"}"] == 1)
        #expect(s["stackvault_stack_last_duration_seconds{stack=\"shop\"}"] == 1.5)
        #expect(s["stackvault_stack_last_success_timestamp_seconds{stack=\"shop\"}"] == nil)
        #expect(s["stackvault_stack_last_archive_size_bytes{stack=\"shop\"}"] == nil)
        // A skipped stack (another StackVault backed it up) is not this daemon's to report.
        #expect(!s.keys.contains { $0.contains("stack=\"other\"") })

        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("# TYPE stackvault_stack_failures_total counter"))
        #expect(text.contains("# TYPE stackvault_stack_last_success_timestamp_seconds gauge"))
    }

    @Test func aLaterFailureKeepsTheLastSuccessAndCountsUp() throws {
        let metrics = BackupMetrics()
        metrics.record(Self.run(.succeeded, stacks: [
            StackOutcome(stack: "app", status: .succeeded, sizeBytes: 10, durationSeconds: 1, downtimeSeconds: 0,
                         bytesRead: 20, bytesWritten: 10, containersStopped: 0),
        ]))
        var failed = Self.run(.failed, stacks: [StackOutcome(stack: "app", status: .failed, detail: "no containers")])
        failed.finishedAt = Self.finished.addingTimeInterval(3600)
        metrics.record(failed)
        metrics.record(failed)
        let s = try Self.samples(metrics)
        #expect(s["stackvault_stack_failures_total{stack=\"app\"}"] == 2)
        #expect(s["stackvault_stack_last_success_timestamp_seconds{stack=\"app\"}"] == 1_700_000_100)
        #expect(s["stackvault_stack_last_archive_size_bytes{stack=\"app\"}"] == 10)
        #expect(s["stackvault_runs_total{outcome=\"succeeded\"}"] == 1)
        #expect(s["stackvault_runs_total{outcome=\"failed\"}"] == 2)
        #expect(s["stackvault_last_run_end_timestamp_seconds"] == 1_700_003_700)
    }

    /// A real daemon run against the in-memory Docker engine: the engine's numbers reach the exposition.
    @Test func aDaemonRunOfTheEngineReachesTheExposition() async throws {
        let fixture = try StackBackupTests.Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        let runner = BackupRun(docker: fixture.docker, strategies: try BuiltinStrategies.registry(),
                               stackBackup: fixture.stackBackup, locker: nil, logger: Logger(label: "test"))
        let record = await runner.run(trigger: .start, due: Date())
        let outcome = try #require(record.stacks.first)
        #expect(outcome.status == .succeeded, "\(outcome.detail ?? "")")
        #expect(outcome.containersStopped == 1, "app_cold_1 was already stopped: only app_files_1 is")
        #expect((outcome.bytesRead ?? 0) > 200_000, "two copies of a 100 kB file, a dump, index and manifest")
        #expect(outcome.bytesWritten == outcome.sizeBytes)
        #expect(outcome.downtimeSeconds != nil)

        let metrics = BackupMetrics()
        metrics.record(record)
        let s = try Self.samples(metrics)
        #expect(s["stackvault_stack_last_containers_stopped{stack=\"app\"}"] == 1)
        #expect(s["stackvault_stack_last_archive_size_bytes{stack=\"app\"}"] == Double(outcome.sizeBytes ?? -1))
        #expect(s["stackvault_stack_last_read_bytes{stack=\"app\"}"] == Double(outcome.bytesRead ?? -1))
        #expect((s["stackvault_stack_last_success_timestamp_seconds{stack=\"app\"}"] ?? 0) > 1_700_000_000)
        #expect(s["stackvault_runs_total{outcome=\"succeeded\"}"] == 1)
        // No retention policy: the stack's archives are counted from one listing of its names.
        #expect(outcome.archivesInTarget == 1)
        #expect(s["stackvault_stack_archives{stack=\"app\"}"] == 1)
    }

    /// The archive count comes from the listing retention uses: what is left after the prune, of this stack only.
    @Test func theArchiveCountIsWhatRetentionLeft() async throws {
        let fixture = try StackBackupTests.Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        try FileManager.default.createDirectory(at: fixture.target, withIntermediateDirectories: true)
        let uuid = "0f0e0d0c-0b0a-4908-8706-050403020100"
        for old in ["backup-app-20200101-000000-\(uuid).tar.zst", "backup-app-20200102-000000-\(uuid).tar.zst",
                    "backup-app-2-20200103-000000-\(uuid).tar.zst", "backup-other-20200104-000000-\(uuid).tar.zst"] {
            try Data("x".utf8).write(to: fixture.target.appendingPathComponent(old))
        }
        var configuration = fixture.stackBackup.configuration
        configuration.retention = RetentionPolicy(keepLast: 2)
        let stackBackup = StackBackup(docker: fixture.docker, storage: fixture.stackBackup.storage,
                                      compressor: fixture.stackBackup.compressor, configuration: configuration,
                                      logger: Logger(label: "test"))
        let runner = BackupRun(docker: fixture.docker, strategies: try BuiltinStrategies.registry(),
                               stackBackup: stackBackup, locker: nil, logger: Logger(label: "test"))
        let record = await runner.run(trigger: .start, due: Date())
        let outcome = try #require(record.stacks.first)
        #expect(outcome.status == .succeeded, "\(outcome.detail ?? "")")
        #expect(outcome.archivesInTarget == 2, "the new one and 20200102; app-2 and other are other stacks")
        #expect(!fixture.files.contains("backup-app-20200101-000000-\(uuid).tar.zst"))
        let metrics = BackupMetrics(host: "alpha")
        metrics.record(record)
        #expect(try Self.samples(metrics)["stackvault_stack_archives{host=\"alpha\",stack=\"app\"}"] == 2)

        // A failed stack has no count: its series keeps the last one.
        metrics.record(Self.run(.failed, stacks: [StackOutcome(stack: "app", status: .failed, detail: "x")]))
        #expect(try Self.samples(metrics)["stackvault_stack_archives{host=\"alpha\",stack=\"app\"}"] == 2)
    }

    /// `stackvault_next_run_timestamp_seconds` is the state's next due time, read at each scrape.
    @Test func theNextRunIsReadFromTheStateAtEachScrape() async throws {
        let metrics = BackupMetrics(host: "alpha")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sv-state-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: path) }
        let state = DaemonStateStore(
            state: DaemonState(schedule: "0 2 * * *", timeZone: "UTC", host: "alpha", pid: 1, daemonStartedAt: Date()),
            file: StateFile(path: path.path), logger: Logger(label: "test"))
        let endpoint = MetricsEndpoint(metrics: metrics, health: { HealthCheck.evaluate(await state.state, now: Date()) },
                                       nextRun: { await state.state.nextRunDue })
        let series = "stackvault_next_run_timestamp_seconds{host=\"alpha\"}"
        #expect(!(await endpoint.respond(method: "GET", uri: "/metrics").text.contains(series)), "not due yet: absent")
        await state.update { $0.nextRunDue = Date(timeIntervalSince1970: 1_700_006_400) }
        #expect(await endpoint.respond(method: "GET", uri: "/metrics").text.contains("\(series) 1700006400.0"))
        await state.update { $0.nextRunDue = Date(timeIntervalSince1970: 1_700_092_800) }
        #expect(await endpoint.respond(method: "GET", uri: "/metrics").text.contains("\(series) 1700092800.0"))
    }

    @Test func theEndpointServesMetricsAndHealth() async throws {
        let metrics = BackupMetrics()
        metrics.record(Self.run(.succeeded, stacks: [StackOutcome(stack: "app", status: .succeeded, sizeBytes: 1)]))
        var state = DaemonState(schedule: "0 2 * * *", timeZone: "UTC", host: "h", pid: 1,
                                daemonStartedAt: Date())
        let healthy = MetricsEndpoint(metrics: metrics) { [state] in HealthCheck.evaluate(state, now: Date()) }

        let page = await healthy.respond(method: "GET", uri: "/metrics")
        #expect(page.status == 200)
        #expect(page.contentType == "text/plain; version=0.0.4; charset=utf-8")
        #expect(page.text.contains("stackvault_stack_last_archive_size_bytes{stack=\"app\"} 1.0"))
        #expect(await healthy.respond(method: "GET", uri: "/metrics?x=1").status == 200)

        let ok = await healthy.respond(method: "GET", uri: "/healthz")
        #expect(ok.status == 200)
        #expect(ok.text.hasPrefix("healthy: no run has ended yet"))

        state.lastRun = Self.run(.failed, stacks: [StackOutcome(stack: "shop", status: .failed, detail: "disk full")])
        let unhealthy = MetricsEndpoint(metrics: metrics) { [state] in HealthCheck.evaluate(state, now: Date()) }
        let bad = await unhealthy.respond(method: "GET", uri: "/healthz")
        #expect(bad.status == 503)
        #expect(bad.text.hasPrefix("UNHEALTHY: the last backup run"))
        #expect(bad.text.contains("stack shop: disk full"))

        #expect(await healthy.respond(method: "GET", uri: "/").status == 404)
        #expect(await healthy.respond(method: "POST", uri: "/metrics").status == 405)
    }

    @Test(arguments: [
        (":9090", "0.0.0.0", 9090),
        ("127.0.0.1:9090", "127.0.0.1", 9090),
        ("localhost:19100", "localhost", 19100),
        ("[::1]:9090", "::1", 9090),
        (" :0 ", "0.0.0.0", 0),
    ])
    func metricsAddressesParse(text: String, host: String, port: Int) throws {
        #expect(try MetricsAddress(text) == MetricsAddress(host: host, port: port))
    }

    @Test(arguments: ["9090", "127.0.0.1", ":http", ":70000", "::1:9090", "127.0.0.1:-1"])
    func badMetricsAddressesAreConfigurationErrors(text: String) {
        #expect(throws: StackVaultError.self) { try MetricsAddress(text) }
        #expect((try? MetricsAddress(environment: ["METRICS_ADDR": text])) == nil)
    }

    @Test func noMetricsAddressMeansNoEndpoint() throws {
        #expect(try MetricsAddress(environment: [:]) == nil)
        #expect(try MetricsAddress(environment: ["METRICS_ADDR": " "]) == nil)
    }
}
