public import Foundation

/// A request to the running daemon for a backup run now, from `stackvault run-now` (a file in the daemon's
/// `RunRequestInbox`, then SIGUSR2) or from SIGUSR1 alone (`docker kill -s USR1 <sidecar>`: the whole selection).
public struct RunRequest: Codable, Sendable, Equatable {
    /// Unique per request (`run-now` uses a UUID; SIGUSR1 `signal-<time>`).
    public var id: String
    /// Stacks to back up; empty: the daemon's whole selection.
    public var stacks: [String]
    public var requestedAt: Date
    /// Who asked, for the log: `run-now` or `SIGUSR1`.
    public var source: String

    public init(id: String, stacks: [String], requestedAt: Date, source: String) {
        self.id = id
        self.stacks = stacks
        self.requestedAt = requestedAt
        self.source = source
    }

    /// The stacks of `stacks` that `selection` (the daemon's; empty = every labelled stack) leaves out.
    public static func outside(_ selection: [String], _ stacks: [String]) -> [String] {
        selection.isEmpty ? [] : stacks.filter { !selection.contains($0) }
    }

    /// The stack filter of one run that serves all of `requests`: nil (the daemon's whole selection) when one of
    /// them asks for it, else every stack any of them names, in order, each once.
    public static func stackFilter(serving requests: [RunRequest]) -> [String]? {
        if requests.contains(where: { $0.stacks.isEmpty }) { return nil }
        var seen = Set<String>()
        return requests.flatMap(\.stacks).filter { seen.insert($0).inserted }
    }
}

/// What the daemon's state file says about a request (`DaemonState.requests`), for `run-now` to wait on.
public struct RunRequestStatus: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable {
        /// Accepted; its run starts when the one in progress has ended.
        case queued
        case running
        case finished
    }

    public var id: String
    /// As requested; empty: the daemon's whole selection.
    public var stacks: [String]
    public var requestedAt: Date
    public var phase: Phase
    public var startedAt: Date?
    public var finishedAt: Date?
    /// How its run ended (nil until finished).
    public var outcome: RunOutcome?
    /// Why the request failed as a whole: refused (stacks outside the selection) or the run's own error.
    public var error: String?
    /// The run's outcome of each stack the request asked for (every stack of the run for the whole selection);
    /// empty until finished.
    public var results: [StackOutcome]

    public init(_ request: RunRequest) {
        id = request.id
        stacks = request.stacks
        requestedAt = request.requestedAt
        phase = .queued
        results = []
    }

    /// Every stack as `run-now` shows it: a failure of the request as a whole first, as the stack `(all)` (as
    /// `RunRecord.summaries` does).
    public var summaries: [StackOutcome.Summary] {
        (error.map { [StackOutcome.Summary(runError: $0)] } ?? []) + results.map(StackOutcome.Summary.init)
    }

    /// True when it finished and every stack it asked for was backed up (or skipped: another StackVault was backing
    /// it up at that moment).
    public var succeeded: Bool {
        phase == .finished && error == nil && outcome != .interrupted
            && results.allSatisfy { $0.status == .succeeded || $0.status == .skipped }
    }
}

/// The directory where `stackvault run-now` leaves requests for the daemon: `<STATE_FILE>.requests`, one
/// `<id>.json` each (a `RunRequest`), written atomically (temporary name, then rename) so the daemon never reads half
/// of one. The daemon takes (reads and removes) every request there when signalled.
public struct RunRequestInbox: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The inbox of the daemon whose state file is `stateFile`.
    public init(stateFile: StateFile) { self.init(directory: stateFile.path + ".requests") }

    /// Leaves `request` for the daemon.
    /// - Throws: `StackVaultError.io` naming the directory when it cannot be written.
    public func put(_ request: RunRequest) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(request)
        let final = "\(directory)/\(request.id).json"
        let temporary = "\(directory)/.\(request.id).tmp"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: temporary))
            try syscall("rename", path: final, failing: "cannot move the request into place") {
                rename(temporary, final)
            }
        } catch {
            unlink(temporary)
            throw StackVaultError(.io, "cannot leave a run request in \(directory) for the daemon: \(error); run "
                + "this where the daemon runs (docker exec <sidecar> stackvault run-now), with its STATE_FILE")
        }
    }

    /// Removes the request `id` if the daemon has not taken it yet; true when it was still there.
    @discardableResult
    public func withdraw(_ id: String) -> Bool {
        unlink("\(directory)/\(id).json") == 0
    }

    /// Reads and removes every request, oldest first. A file that is not a request is removed and reported in
    /// `unreadable` (`name: error`) so that it is not read again and again.
    public func takeAll() -> (requests: [RunRequest], unreadable: [String]) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return ([], []) }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var requests: [RunRequest] = []
        var unreadable: [String] = []
        for name in names.sorted() where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let path = "\(directory)/\(name)"
            do {
                requests.append(try decoder.decode(RunRequest.self, from: Data(contentsOf: URL(fileURLWithPath: path))))
            } catch {
                unreadable.append("\(name): \(error)")
            }
            unlink(path)
        }
        return (requests.sorted { $0.requestedAt < $1.requestedAt }, unreadable)
    }
}
