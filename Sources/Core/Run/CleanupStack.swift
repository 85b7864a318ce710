public import Logging

/// What to undo when a step of a backup fails or the run is stopped (SIGTERM cancels the task, the step in
/// progress throws): each step pushes the cleanup of what it created, and the failure path runs them newest first.
/// A step whose product is passed on to the next one pops its entry, or replaces it with the cleanup that now fits.
///
/// Cleanups here are synchronous and local (files); undoing work that needs Docker (starting stopped containers)
/// is scoped to its step instead (`ContainerStopGuard`), so it has finished before the step returns or throws.
public struct CleanupStack: Sendable {
    private var entries: [(label: String, action: @Sendable () -> String?)] = []

    public init() {}

    /// Registers `action` under `label`. Its return value, if any, is appended to the failure message (such as
    /// "; the verified archive was kept at ...").
    public mutating func push(_ label: String, _ action: @escaping @Sendable () -> String?) {
        entries.append((label, action))
    }

    /// Forgets the newest cleanup named `label` (its step's product was handed on).
    public mutating func pop(_ label: String) {
        if let index = entries.lastIndex(where: { $0.label == label }) { entries.remove(at: index) }
    }

    /// The labels of what would be undone now, newest first.
    public var pending: [String] { entries.reversed().map(\.label) }

    /// Runs every registered cleanup, newest first, and empties the stack; returns their notes in that order.
    public mutating func unwind(logger: Logger) -> [String] {
        var notes: [String] = []
        while let entry = entries.popLast() {
            logger.debug("cleanup: \(entry.label)")
            if let note = entry.action() { notes.append(note) }
        }
        return notes
    }
}
