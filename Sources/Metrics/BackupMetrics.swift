public import Foundation
import Prometheus
public import StackVaultCore

/// The daemon's Prometheus metrics: what the runs that ended since it started did, per run and per stack.
///
/// `record(_:)` is called with every run that ended; `exposition()` renders the text format `/metrics` serves.
/// Every metric carries the label `host` (the host whose archives the daemon writes) when one is given, so that the
/// metrics of several hosts can be told apart once collected. Thread-safe: the registry locks internally.
public final class BackupMetrics: Sendable {
    /// The Prometheus text format's content type.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let registry = PrometheusCollectorRegistry()
    /// `[("host", name)]`, or empty.
    private let hostLabel: [(String, String)]

    public init(host: String? = nil) {
        hostLabel = host.map { [("host", $0)] } ?? []
        // Present from the start, so a scrape before the first run sees the daemon and `increase()` works.
        for outcome in [RunOutcome.succeeded, .failed, .interrupted] {
            _ = runsTotal(outcome)
        }
    }

    /// Records a run that ended.
    public func record(_ run: RunRecord) {
        runsTotal(run.outcome).increment()
        let started = run.stacks.filter { $0.bytesRead != nil }
        gauge(Name.runEnd, "Unix time the last backup run ended.").set(run.finishedAt.timeIntervalSince1970)
        gauge(Name.runDuration, "Seconds the last backup run took.")
            .set(run.finishedAt.timeIntervalSince(run.startedAt))
        gauge(Name.runBytesRead, "Bytes the last run read into archives (dumps and directories, before compression).")
            .set(Double(started.reduce(Int64(0)) { $0 + ($1.bytesRead ?? 0) }))
        gauge(Name.runBytesWritten, "Bytes of compressed archive the last run wrote.")
            .set(Double(started.reduce(Int64(0)) { $0 + ($1.bytesWritten ?? 0) }))
        gauge(Name.runContainersStopped, "Containers the last run stopped for directory copies.")
            .set(Double(started.reduce(0) { $0 + ($1.containersStopped ?? 0) }))
        gauge(Name.runDowntime, "Seconds of container downtime in the last run, summed over its stacks.")
            .set(started.reduce(0.0) { $0 + ($1.downtimeSeconds ?? 0) })

        for stack in run.stacks {
            let labels = hostLabel + [("stack", stack.stack)]
            // Created (at 0) by a success too, so `increase()` sees the first failure.
            let failures = {
                self.registry.makeCounter(
                    descriptor: Self.descriptor(Name.stackFailures,
                                                "Backups of the stack that failed since the daemon started."),
                    labels: labels)
            }
            switch stack.status {
            case .succeeded:
                _ = failures()
                gauge(Name.stackLastSuccess, "Unix time the run that last backed the stack up successfully ended.",
                      labels).set(run.finishedAt.timeIntervalSince1970)
                gauge(Name.stackArchiveSize, "Bytes of the stack's last stored archive.", labels)
                    .set(Double(stack.sizeBytes ?? 0))
            case .failed:
                failures().increment()
            case .skipped, .cancelled:
                continue
            }
            if let count = stack.archivesInTarget {
                gauge(Name.stackArchives, "Archives of the stack in this host's folder of the target, counted after "
                      + "its last successful backup and retention.", labels).set(Double(count))
            }
            if let duration = stack.durationSeconds {
                gauge(Name.stackDuration, "Seconds the stack's last backup took (successful or not).", labels)
                    .set(duration)
            }
            guard stack.bytesRead != nil else { continue }
            gauge(Name.stackBytesRead, "Bytes the stack's last backup read (before compression).", labels)
                .set(Double(stack.bytesRead ?? 0))
            gauge(Name.stackBytesWritten, "Bytes of compressed archive the stack's last backup wrote.", labels)
                .set(Double(stack.bytesWritten ?? 0))
            gauge(Name.stackContainersStopped, "Containers the stack's last backup stopped.", labels)
                .set(Double(stack.containersStopped ?? 0))
            gauge(Name.stackDowntime, "Seconds the stack's containers were stopped in its last backup.", labels)
                .set(stack.downtimeSeconds ?? 0)
        }
    }

    /// Records when the daemon's next scheduled run is due (`DaemonState.nextRunDue`); nil leaves the last value.
    public func recordNextRun(_ due: Date?) {
        guard let due else { return }
        gauge(Name.nextRun, "Unix time the daemon's next scheduled backup run is due.")
            .set(due.timeIntervalSince1970)
    }

    /// Records a restore drill of `stack` that ended.
    public func recordDrill(stack: String, passed: Bool, finishedAt: Date) {
        let labels = hostLabel + [("stack", stack)]
        let failures = registry.makeCounter(
            descriptor: Self.descriptor(Name.stackDrillFailures,
                                        "Restore drills of the stack's latest archive that failed since the daemon started."),
            labels: labels)
        if passed {
            gauge(Name.stackLastDrillSuccess, "Unix time the last passing restore drill of the stack ended.", labels)
                .set(finishedAt.timeIntervalSince1970)
        } else {
            failures.increment()
        }
    }

    /// Counts containers that a dead StackVault had stopped in `stack` and that this process started again
    /// (`StackLocker.recover`).
    public func recordRecovered(stack: String, containers: Int) {
        registry.makeCounter(
            descriptor: Self.descriptor(Name.recoveredContainers, "Containers a StackVault that died had left "
                + "stopped, started again by this daemon, since it started."),
            labels: hostLabel + [("stack", stack)]
        ).increment(by: Int64(containers))
    }

    /// The metrics in the Prometheus text exposition format.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }

    /// The metric names, one place for the code, the tests and docs/operations.md ("Metrics").
    public enum Name {
        public static let runs = "stackvault_runs_total"
        public static let runEnd = "stackvault_last_run_end_timestamp_seconds"
        public static let runDuration = "stackvault_last_run_duration_seconds"
        public static let runBytesRead = "stackvault_last_run_read_bytes"
        public static let runBytesWritten = "stackvault_last_run_written_bytes"
        public static let runContainersStopped = "stackvault_last_run_containers_stopped"
        public static let runDowntime = "stackvault_last_run_downtime_seconds"
        public static let nextRun = "stackvault_next_run_timestamp_seconds"
        public static let stackLastSuccess = "stackvault_stack_last_success_timestamp_seconds"
        public static let stackDuration = "stackvault_stack_last_duration_seconds"
        public static let stackArchiveSize = "stackvault_stack_last_archive_size_bytes"
        public static let stackFailures = "stackvault_stack_failures_total"
        public static let stackBytesRead = "stackvault_stack_last_read_bytes"
        public static let stackBytesWritten = "stackvault_stack_last_written_bytes"
        public static let stackContainersStopped = "stackvault_stack_last_containers_stopped"
        public static let stackDowntime = "stackvault_stack_last_downtime_seconds"
        public static let stackArchives = "stackvault_stack_archives"
        public static let stackLastDrillSuccess = "stackvault_stack_last_drill_success_timestamp_seconds"
        public static let stackDrillFailures = "stackvault_stack_drill_failures_total"
        public static let recoveredContainers = "stackvault_stopped_containers_recovered_total"
    }

    private func runsTotal(_ outcome: RunOutcome) -> Counter {
        registry.makeCounter(
            descriptor: Self.descriptor(Name.runs, "Backup runs that ended since the daemon started, by outcome."),
            labels: hostLabel + [("outcome", outcome.rawValue)])
    }

    private func gauge(_ name: String, _ help: String, _ stackLabels: [(String, String)]? = nil) -> Gauge {
        let labels = stackLabels ?? hostLabel
        return labels.isEmpty ? registry.makeGauge(descriptor: Self.descriptor(name, help))
            : registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    /// A metric's full name (no namespace or unit parts: the names above are complete) and help.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
