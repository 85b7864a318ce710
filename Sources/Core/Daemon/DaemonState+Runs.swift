public import Foundation

/// How a run of the daemon, scheduled or requested, changes its state: one place for every trigger, so a run that
/// `stackvault run-now` or SIGUSR1 asked for is recorded exactly like a scheduled one.
extension DaemonState {
    /// Finished requests kept in the state file (the oldest go first).
    public static let finishedRequestsKept = 20

    /// Queues `requests`; one that names a stack outside `selectedStacks` is refused at once: recorded finished with
    /// an error naming those stacks. Returns the requests accepted.
    public mutating func accept(_ requests: [RunRequest], now: Date) -> [RunRequest] {
        var accepted: [RunRequest] = []
        var statuses = self.requests ?? []
        for request in requests {
            var status = RunRequestStatus(request)
            let outside = RunRequest.outside(selectedStacks ?? [], request.stacks)
            if outside.isEmpty {
                accepted.append(request)
            } else {
                status.phase = .finished
                status.finishedAt = now
                status.error = "not in the daemon's selection (\((selectedStacks ?? []).joined(separator: ", "))): "
                    + outside.joined(separator: ", ")
            }
            statuses.append(status)
        }
        self.requests = Self.trimmed(statuses)
        return accepted
    }

    /// Records that `start` began, serving the requests `requestIDs` (none for a scheduled run).
    public mutating func runStarted(_ start: RunStart, requests requestIDs: [String]) {
        currentRun = start
        update(requestIDs) {
            $0.phase = .running
            $0.startedAt = start.startedAt
        }
    }

    /// Records a run that ended: the last run, the last success, the failures it leaves unresolved, and the result
    /// of each request it served.
    ///
    /// - Parameter wholeSelection: true when the run covered the daemon's whole selection (every scheduled run);
    ///   false for a requested run of some stacks, which neither clears the earlier failures of other stacks nor
    ///   `containersLeftStopped`.
    public mutating func runEnded(_ record: RunRecord, requests requestIDs: [String], wholeSelection: Bool) {
        currentRun = nil
        if wholeSelection {
            unresolvedFailures = nil
        } else {
            let earlier = (unresolvedFailures ?? []) + (lastRun.map(Self.failures) ?? [])
            let covered = Set(record.stacks.map(\.stack))
            var latest: [String: UnresolvedFailure] = [:]
            for failure in earlier where !covered.contains(failure.stack) {
                if let known = latest[failure.stack], known.due >= failure.due { continue }
                latest[failure.stack] = failure
            }
            unresolvedFailures = latest.isEmpty ? nil : latest.values.sorted { $0.stack < $1.stack }
        }
        lastRun = record
        if record.succeeded {
            lastSuccessAt = record.finishedAt
            // Every stack's lock was taken, and with it what a dead StackVault had left stopped recovered.
            if wholeSelection { containersLeftStopped = nil }
        }
        update(requestIDs) { status in
            status.phase = .finished
            status.finishedAt = record.finishedAt
            status.outcome = record.outcome
            status.error = record.error
            status.results = record.stacks.filter { status.stacks.isEmpty || status.stacks.contains($0.stack) }
        }
    }

    /// Records the requests `requestIDs` as finished without a run, for `reason`.
    public mutating func abandon(_ requestIDs: [String], because reason: String, now: Date) {
        update(requestIDs) {
            $0.phase = .finished
            $0.finishedAt = now
            $0.error = reason
        }
    }

    /// The request `id`, nil when the state does not know it (not taken yet, or long finished).
    public func request(_ id: String) -> RunRequestStatus? {
        requests?.first { $0.id == id }
    }

    private mutating func update(_ ids: [String], _ change: (inout RunRequestStatus) -> Void) {
        guard !ids.isEmpty, var statuses = requests else { return }
        for index in statuses.indices where ids.contains(statuses[index].id) { change(&statuses[index]) }
        requests = Self.trimmed(statuses)
    }

    private static func failures(of run: RunRecord) -> [UnresolvedFailure] {
        run.stacks.compactMap { stack in
            stack.error.map { UnresolvedFailure(stack: stack.stack, due: run.due, error: $0) }
        }
    }

    /// Every queued and running request, and the newest `finishedRequestsKept` finished ones, in their order.
    private static func trimmed(_ statuses: [RunRequestStatus]) -> [RunRequestStatus]? {
        let finished = statuses.filter { $0.phase == .finished }
        let dropped = Set(finished.dropLast(finishedRequestsKept).map(\.id))
        let kept = statuses.filter { !dropped.contains($0.id) }
        return kept.isEmpty ? nil : kept
    }
}
