public import Foundation

/// Why a run started.
public enum RunTrigger: String, Codable, Sendable {
    /// Its schedule time came.
    case schedule
    /// `BACKUP_ON_START=true`.
    case start
    /// `stackvault backup` (never written to the state file: only the daemon keeps one).
    case manual
    /// Asked of the running daemon: `stackvault run-now`, or SIGUSR1.
    case request
}

/// A run that has started.
public struct RunStart: Codable, Sendable, Equatable {
    public var trigger: RunTrigger
    /// The schedule time it is for (for a start-up run, when it started).
    public var due: Date
    public var startedAt: Date

    public init(trigger: RunTrigger, due: Date, startedAt: Date) {
        self.trigger = trigger
        self.due = due
        self.startedAt = startedAt
    }
}

/// How a run ended.
public enum RunOutcome: String, Codable, Sendable {
    /// Every stack was backed up (or skipped because another StackVault was backing it up).
    case succeeded
    /// A stack failed, or the containers could not be listed.
    case failed
    /// SIGTERM/SIGINT stopped it.
    case interrupted
}

/// A run that has ended: the one result of a `BackupRun`, read by the daemon's state file, the metrics, the
/// notifications and the `backup` summary alike.
public struct RunRecord: Codable, Sendable, Equatable {
    public var trigger: RunTrigger
    public var due: Date
    public var startedAt: Date
    public var finishedAt: Date
    public var outcome: RunOutcome
    /// A failure of the run as a whole (Docker unreachable), nil otherwise.
    public var error: String?
    public var stacks: [StackOutcome]

    public init(trigger: RunTrigger, due: Date, startedAt: Date, finishedAt: Date, outcome: RunOutcome,
                error: String? = nil, stacks: [StackOutcome]) {
        self.trigger = trigger
        self.due = due
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.error = error
        self.stacks = stacks
    }

    public var succeeded: Bool { outcome == .succeeded }
}

/// What happened to one stack in a run.
///
/// Encoded as the state file keeps it (`CodingKeys`); `Summary` is the shape of the `backup --json` summary and
/// of the webhook payload.
public struct StackOutcome: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case succeeded, failed
        /// Another StackVault held the stack's lock: it was backing the stack up at that moment.
        case skipped
        /// The run was stopped before this stack started.
        case cancelled
    }

    public var stack: String
    public var status: Status
    public var archive: String?
    public var sizeBytes: Int64?
    public var durationSeconds: Double?
    /// The error, or why the stack was skipped.
    public var detail: String?
    /// Seconds its stopped containers were down (nil: the backup did not start).
    public var downtimeSeconds: Double?
    /// Bytes read into the archive before compression (nil: the backup did not start).
    public var bytesRead: Int64?
    /// Bytes of compressed archive written, also by a backup that failed later (nil: it did not start).
    public var bytesWritten: Int64?
    /// Containers stopped for the directory copy (nil: the backup did not start).
    public var containersStopped: Int?
    /// Services of the stack as planned (nil: not planned). Not kept in the state file.
    public var services: Int?
    /// The plan's warnings about the stack. Not kept in the state file.
    public var warnings: [String] = []
    /// The stack's archives in this host's folder of the target once the backup was stored and pruned, from the
    /// listing retention uses (nil: not counted, e.g. the backup failed or the listing did). For the metrics; not
    /// kept in the state file.
    public var archivesInTarget: Int?

    private enum CodingKeys: String, CodingKey {
        case stack, status, archive, sizeBytes, durationSeconds, detail, downtimeSeconds, bytesRead, bytesWritten
        case containersStopped
    }

    public init(stack: String, status: Status, archive: String? = nil, sizeBytes: Int64? = nil,
                durationSeconds: Double? = nil, detail: String? = nil, downtimeSeconds: Double? = nil,
                bytesRead: Int64? = nil, bytesWritten: Int64? = nil, containersStopped: Int? = nil,
                services: Int? = nil, warnings: [String] = [], archivesInTarget: Int? = nil) {
        self.stack = stack
        self.status = status
        self.archive = archive
        self.sizeBytes = sizeBytes
        self.durationSeconds = durationSeconds
        self.detail = detail
        self.downtimeSeconds = downtimeSeconds
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.containersStopped = containersStopped
        self.services = services
        self.warnings = warnings
        self.archivesInTarget = archivesInTarget
    }

    public var succeeded: Bool { status == .succeeded }

    /// Why the stack was not backed up: the error, or that the run stopped before it; nil when it succeeded or
    /// was skipped (another StackVault was backing it up).
    public var error: String? {
        status == .failed || status == .cancelled ? detail ?? status.rawValue : nil
    }

    /// The stack as the `backup --json` summary and the webhook payload show it (zeros where nothing was measured).
    public struct Summary: Encodable, Sendable {
        public var stack: String
        public var services: Int
        public var archive: String?
        public var sizeBytes: Int64
        public var durationSeconds: Double
        /// Seconds between the first stop and the last start of the stack's stopped containers.
        public var downtimeSeconds: Double
        public var bytesRead: Int64
        public var bytesWritten: Int64
        public var containersStopped: Int
        public var warnings: [String]
        /// Nil when the stack succeeded (or was skipped).
        public var error: String?

        public init(_ outcome: StackOutcome) {
            stack = outcome.stack
            services = outcome.services ?? 0
            archive = outcome.archive
            sizeBytes = outcome.succeeded ? outcome.sizeBytes ?? 0 : 0
            durationSeconds = outcome.durationSeconds ?? 0
            downtimeSeconds = outcome.downtimeSeconds ?? 0
            bytesRead = outcome.bytesRead ?? 0
            bytesWritten = outcome.bytesWritten ?? 0
            containersStopped = outcome.containersStopped ?? 0
            warnings = outcome.warnings + (outcome.status == .skipped ? [outcome.detail ?? ""] : [])
            error = outcome.error
        }

        /// A failure of the run as a whole (`RunRecord.error`), shown as a stack named `(all)`.
        init(runError: String) {
            stack = "(all)"
            services = 0
            sizeBytes = 0
            durationSeconds = 0
            downtimeSeconds = 0
            bytesRead = 0
            bytesWritten = 0
            containersStopped = 0
            warnings = []
            error = runError
        }
    }
}

extension RunRecord {
    /// Every stack as the summary and the notifications list it; a failure of the run as a whole comes first as
    /// the stack `(all)`.
    public var summaries: [StackOutcome.Summary] {
        (error.map { [StackOutcome.Summary(runError: $0)] } ?? []) + stacks.map(StackOutcome.Summary.init)
    }

    /// True when no stack failed or was left out; a stack skipped because another StackVault was backing it up
    /// counts as fine.
    public var everyStackOK: Bool { summaries.allSatisfy { $0.error == nil } }

    /// One line a person understands: which stacks failed and why, or that all went well.
    public func headline(host: String) -> String {
        let all = summaries
        let failed = all.filter { $0.error != nil }
        if failed.isEmpty {
            return "StackVault on \(host): all \(all.count) stack(s) backed up"
        }
        let reasons = failed.map { "stack \($0.stack) FAILED: \($0.error ?? "unknown error")" }
        return "StackVault on \(host): \(reasons.joined(separator: "; ")) "
            + "(\(all.count - failed.count) of \(all.count) stack(s) backed up)"
    }
}

