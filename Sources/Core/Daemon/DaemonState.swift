public import Foundation
public import Logging

/// What `stackvault daemon` records about itself and its runs, for `stackvault health` and for people.
///
/// Lives in a small JSON file (`STATE_FILE`, default `/var/lib/stackvault/state.json`), rewritten atomically at
/// daemon start, when a run starts and when it ends.
public struct DaemonState: Codable, Sendable, Equatable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The cron expression and zone the daemon runs on (health needs them to know when a run is overdue).
    public var schedule: String
    public var timeZone: String
    public var host: String
    public var pid: Int32
    public var daemonStartedAt: Date
    public var nextRunDue: Date?
    /// The run in progress, if any.
    public var currentRun: RunStart?
    /// The last run that ended (kept across daemon restarts).
    public var lastRun: RunRecord?
    public var lastSuccessAt: Date?
    /// Schedule times skipped because the previous run was still going.
    public var skippedTicks: Int
    /// `DRILL_SCHEDULE`, when the daemon drills (nil: it does not).
    public var drillSchedule: String?
    /// `DRILL_MAX_AGE` in seconds: health fails when a stack's last successful drill is older.
    public var drillMaxAgeSeconds: Double?
    public var nextDrillDue: Date?
    /// The last drill of each stack, by stack (kept across daemon restarts).
    public var drills: [String: DrillRecord]?
    /// Containers a dead StackVault had stopped that the daemon could not start again at its start (`name: error`),
    /// until a run succeeds; health is unhealthy meanwhile. Nil when there are none.
    public var containersLeftStopped: [String]?
    /// The daemon's stack selection (`--stack` or `STACKS`); nil: every labelled stack.
    public var selectedStacks: [String]?
    /// Runs asked for with `stackvault run-now` or SIGUSR1: queued, running, and the last
    /// `DaemonState.finishedRequestsKept` finished ones, oldest first. Nil when there were none.
    public var requests: [RunRequestStatus]?
    /// Stacks whose backup failed in an earlier run that no later run has backed up again: only a run of part of
    /// the selection (`run-now --stack`) leaves some. Health is unhealthy while there are any. Nil when none.
    public var unresolvedFailures: [UnresolvedFailure]?

    public init(schedule: String, timeZone: String, host: String, pid: Int32, daemonStartedAt: Date) {
        self.formatVersion = Self.currentFormatVersion
        self.schedule = schedule
        self.timeZone = timeZone
        self.host = host
        self.pid = pid
        self.daemonStartedAt = daemonStartedAt
        self.skippedTicks = 0
    }
}

/// A stack's failed backup that no later run has backed up again (`DaemonState.unresolvedFailures`).
public struct UnresolvedFailure: Codable, Sendable, Equatable {
    public var stack: String
    /// The due time of the run in which it failed.
    public var due: Date
    public var error: String

    public init(stack: String, due: Date, error: String) {
        self.stack = stack
        self.due = due
        self.error = error
    }
}

/// The last drill of one stack's latest archive, as the daemon ran it.
public struct DrillRecord: Codable, Sendable, Equatable {
    public var archive: String
    public var finishedAt: Date
    public var passed: Bool
    /// What failed (the first ten problems), empty when `passed`.
    public var problems: [String]
    /// When a drill of this stack last passed (this one or an earlier one).
    public var lastSuccessAt: Date?

    public init(archive: String, finishedAt: Date, passed: Bool, problems: [String], lastSuccessAt: Date?) {
        self.archive = archive
        self.finishedAt = finishedAt
        self.passed = passed
        self.problems = problems
        self.lastSuccessAt = lastSuccessAt
    }
}

/// The state file on disk: read whole, written atomically (temporary file in the same directory, fsync, rename).
public struct StateFile: Sendable {
    public static let defaultPath = "/var/lib/stackvault/state.json"

    public let path: String

    public init(path: String) { self.path = path }

    /// `STATE_FILE`, else the default path.
    public init(environment: [String: String]) {
        let value = environment["STATE_FILE"]?.trimmingSpaces ?? ""
        self.init(path: value.isEmpty ? Self.defaultPath : value)
    }

    /// The state as the file holds it: pretty-printed JSON, ISO 8601 times.
    public static func encode(_ state: DaemonState) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(state)
    }

    public func read() throws -> DaemonState {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StackVaultError(.io, "cannot read the state file \(path): "
                + (FileManager.default.fileExists(atPath: path) ? "\(error)" : "it does not exist")
                + "; is `stackvault daemon` running with the same STATE_FILE, and has it started?")
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(DaemonState.self, from: data)
        } catch {
            throw StackVaultError(.io, "the state file \(path) is not a StackVault daemon state: \(error)")
        }
    }

    public func write(_ state: DaemonState) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let bytes = Array(try Self.encode(state)) + [UInt8(ascii: "\n")]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StackVaultError(.io, "cannot create the directory of the state file \(path): \(error); set "
                + "STATE_FILE to a writable path")
        }
        let temporary = "\(directory)/.\(url.lastPathComponent).\(getpid()).tmp"
        let fd = try syscall("open", path: temporary, failing: "cannot write the state file \(path)",
                             hint: { _ in "; set STATE_FILE to a writable path" }) {
            open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: bytes)
            try handle.synchronize()
            try handle.close()
        } catch {
            unlink(temporary)
            throw StackVaultError(.io, "cannot write the state file \(path): \(error)")
        }
        do {
            try syscall("rename", path: path, failing: "cannot write the state file \(path)") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
    }
}

/// The daemon's state in memory, saved to its file after every change. A failed save is logged, not fatal: the
/// backups matter more than the health report.
public actor DaemonStateStore {
    public private(set) var state: DaemonState
    public nonisolated let file: StateFile
    private let logger: Logger

    public init(state: DaemonState, file: StateFile, logger: Logger) {
        self.state = state
        self.file = file
        self.logger = logger
    }

    /// Writes the state as it is now; throws when the file cannot be written (checked at start-up).
    public func save() throws {
        try file.write(state)
    }

    /// Changes the state and saves it; returns what `change` returns.
    @discardableResult
    public func update<Result: Sendable>(_ change: @Sendable (inout DaemonState) -> Result) -> Result {
        let result = change(&state)
        do {
            try file.write(state)
        } catch {
            logger.error("\(error)")
        }
        return result
    }
}
