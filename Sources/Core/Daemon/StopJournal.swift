public import Foundation
import Synchronization

/// What a lock holder has stopped and which partial archive it is writing, kept in its lock so that any later
/// StackVault can undo it when the holder dies (SIGKILL, OOM kill, a sidecar stopped, a reboot).
///
/// `DockerLockStore` keeps it as the file `/stackvault-journal` in the lock container, which survives the holder,
/// a restart of dockerd and a reboot; it is rewritten whole at every change. Text, one entry a line:
///
/// ```
/// stackvault-journal 1
/// stopped <ISO 8601 time of the stop request> <container id> <container name>
/// partial <absolute path of a partial archive>
/// ```
public struct StopJournal: Sendable, Equatable {
    /// Containers the holder stopped (they were running) and has not started again yet.
    public var stopped: [StoppedContainer] = []
    /// When the stop requests were sent; nil when nothing is stopped.
    public var stoppedAt: Date?
    /// Partial archives the holder writes; removed by whoever breaks its lock.
    public var partials: [String] = []

    public init(stopped: [StoppedContainer] = [], stoppedAt: Date? = nil, partials: [String] = []) {
        self.stopped = stopped
        self.stoppedAt = stoppedAt
        self.partials = partials
    }

    public var isEmpty: Bool { stopped.isEmpty && partials.isEmpty }

    static let header = "stackvault-journal 1"

    /// The file's text (see the type's documentation).
    public var text: String {
        var lines = [Self.header]
        let time = (stoppedAt ?? Date(timeIntervalSince1970: 0)).formatted(.iso8601)
        lines += stopped.map { "stopped \(time) \($0.id) \($0.name)" }
        lines += partials.map { "partial \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses `text`; lines it does not know (a tar header around the file, NUL padding) are ignored. Nil when the
    /// header line is missing.
    public init?(parsing text: String) {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\0" }).map(String.init)
        guard lines.contains(Self.header) else { return nil }
        for line in lines {
            if line.hasPrefix("stopped ") {
                let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
                guard fields.count == 4 else { continue }
                stoppedAt = stoppedAt ?? (try? Date(fields[1], strategy: .iso8601))
                stopped.append(StoppedContainer(id: fields[2], name: fields[3]))
            } else if line.hasPrefix("partial /") {
                partials.append(String(line.dropFirst("partial ".count)))
            }
        }
    }
}

/// The lock this task holds (set by `StackLocker.withLock` for its body, a task-local value), through which the
/// steps that stop containers or write partial archives record it in the lock's `StopJournal` before doing it.
public final class HeldLock: Sendable {
    /// The lock held by the current task; nil outside `StackLocker.withLock` (then nothing is recorded).
    @TaskLocal public static var current: HeldLock?

    public let id: String
    public let stack: String
    /// The lock's lease: a partial archive of this stack older than this is a dead run's.
    public let ttl: Duration
    let store: any LockStore
    private let journal = Mutex(StopJournal())

    init(id: String, stack: String, ttl: Duration, store: any LockStore) {
        self.id = id
        self.stack = stack
        self.ttl = ttl
        self.store = store
    }

    /// Records `containers` as stopped by this process from now on. Throws when it cannot be recorded: then the
    /// caller must not stop them (nobody could start them again should this process die).
    public func recordStopping(_ containers: [StoppedContainer], at time: Date = Date()) async throws {
        try await write { $0.stopped = containers; $0.stoppedAt = time }
    }

    /// Records that the stopped containers run again.
    public func recordStarted() async throws {
        try await write { $0.stopped = []; $0.stoppedAt = nil }
    }

    /// Records a partial archive this process is about to write.
    public func recordPartial(_ path: String) async throws {
        try await write { $0.partials.append(path) }
    }

    private func write(_ change: (inout StopJournal) -> Void) async throws {
        let updated = journal.withLock { journal in
            change(&journal)
            return journal
        }
        guard try await store.writeJournal(id: id, updated) else {
            throw StackVaultError(.dockerAPI, "the lock of stack \(stack) was removed by someone else, so what this "
                + "run stops could not be recorded in it")
        }
    }
}
