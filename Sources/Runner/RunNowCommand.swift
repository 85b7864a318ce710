import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault run-now`: asks the running daemon for a backup run now, recorded in its state, health and metrics
/// like a scheduled run, and by default waits for it.
///
/// The request is a file in the daemon's `RunRequestInbox` (beside its state file), announced with SIGUSR2 to the
/// process named in its `DaemonPIDFile`; the daemon's state file then says how the request went
/// (`DaemonState.requests`).
struct RunNowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-now",
        abstract: "Asks the running daemon to back up now (docker exec <sidecar> stackvault run-now).",
        discussion: "The daemon runs it at once, or right after the run in progress (requests made during a run share "
            + "one run), and records it in its state file, health and metrics like a scheduled run. Finds the "
            + "daemon through <state file>.pid ($STATE_FILE, default \(StateFile.defaultPath)). Waits until the run "
            + "has ended and prints each stack's result, unless --no-wait. Exit code 0 when every stack was backed "
            + "up (or --no-wait and the daemon took the request), 1 when one failed or was refused (not in the "
            + "daemon's selection), 2 when no daemon answers. `docker kill -s USR1 <sidecar>` asks for a run of the "
            + "daemon's whole selection without waiting."
    )

    @Option(name: .long, help: "Back up only this stack (repeatable; default: the daemon's whole selection).")
    var stack: [String] = []

    @Flag(help: "Return once the daemon has taken the request; do not wait for the run.")
    var noWait = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "The daemon's state file (default: $STATE_FILE or \(StateFile.defaultPath)).")
    var stateFile: String?

    @Option(help: "Seconds to wait for the daemon to take the request.")
    var answerTimeout: Int = 30

    func run() async throws {
        let file = stateFile.map(StateFile.init(path:)) ?? StateFile(environment: ProcessInfo.processInfo.environment)
        let pidFile = DaemonPIDFile(stateFile: file)
        let inbox = RunRequestInbox(stateFile: file)
        let pid: Int32
        do {
            pid = try pidFile.runningDaemon()
        } catch {
            printError("\(error)")
            throw ExitStatus.unreachable
        }
        if let selection = (try? file.read())?.selectedStacks {
            let outside = RunRequest.outside(selection, stack)
            if !outside.isEmpty {
                printError("not in the daemon's selection (its --stack or STACKS: "
                    + "\(selection.joined(separator: ", "))): "
                    + "\(outside.joined(separator: ", ")); ask for those stacks, or back others up with `stackvault "
                    + "backup --stack NAME` (the daemon does not record that run)")
                throw ExitStatus.failure
            }
        }

        let request = RunRequest(id: UUID().uuidString.lowercased(), stacks: stack, requestedAt: Date(),
                                 source: "run-now")
        do {
            try inbox.put(request)
        } catch {
            printError("\(error)")
            throw ExitStatus.unreachable
        }
        guard kill(pid, SIGUSR2) == 0 else {
            let reason = String(cString: strerror(errno))
            inbox.withdraw(request.id)
            printError("cannot signal the StackVault daemon (pid \(pid), from \(pidFile.path)): \(reason); run this as "
                + "the daemon's user, inside its container (docker exec <sidecar> stackvault run-now)")
            throw ExitStatus.unreachable
        }

        // The daemon takes the request at once; the state file says so.
        var status = try await waitForState(file, pidFile: pidFile, pid: pid, request: request, inbox: inbox)
        if status.phase != .finished {
            let what = status.phase == .queued ? "queued: it runs when the run in progress has ended" : "running"
            printError("run \(request.id) \(what)")
        }
        if noWait {
            if json {
                print(try prettyJSON(RunNowResult(status)))
            } else {
                print(request.id)
            }
            if status.phase == .finished && !status.succeeded { throw ExitStatus.failure }
            return
        }
        while status.phase != .finished {
            try await Task.sleep(for: .milliseconds(500))
            // Alive before the state is read: a daemon that finished the run and then ended is not taken for one
            // that ended during it.
            let alive = pidFile.read() == pid && (kill(pid, 0) == 0 || errno != ESRCH)
            if let current = (try? file.read())?.request(request.id) { status = current }
            if status.phase != .finished && !alive {
                printError("the StackVault daemon (pid \(pid)) ended before run \(request.id) finished; see its log "
                    + "(docker logs <sidecar>) and the state file \(file.path)")
                throw ExitStatus.unreachable
            }
        }

        if json {
            print(try prettyJSON(RunNowResult(status)))
        } else {
            print(Summary.table(status.summaries, services: false), terminator: "")
        }
        if !status.succeeded { throw ExitStatus.failure }
    }

    /// Waits (up to `answerTimeout` seconds) until the daemon's state file knows `request`.
    private func waitForState(_ file: StateFile, pidFile: DaemonPIDFile, pid: Int32, request: RunRequest,
                              inbox: RunRequestInbox) async throws -> RunRequestStatus {
        let deadline = Date().addingTimeInterval(TimeInterval(max(1, answerTimeout)))
        while true {
            if let status = (try? file.read())?.request(request.id) { return status }
            if Date() >= deadline, inbox.withdraw(request.id) {
                printError("the StackVault daemon (pid \(pid), from \(pidFile.path)) did not take the request in "
                    + "\(answerTimeout) s; is it still starting, or is \(file.path) not its state file? See its log "
                    + "(docker logs <sidecar>)")
                throw ExitStatus.unreachable
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// What `run-now --json` prints.
struct RunNowResult: Encodable {
    var id: String
    /// `queued`, `running` or `finished`.
    var phase: String
    /// `succeeded`, `failed` or `interrupted` once finished.
    var outcome: String?
    var error: String?
    var stacks: [StackOutcome.Summary]

    init(_ status: RunRequestStatus) {
        id = status.id
        phase = status.phase.rawValue
        outcome = status.phase == .finished ? (status.succeeded ? "succeeded" : status.outcome?.rawValue ?? "failed")
            : nil
        error = status.error
        stacks = status.summaries
    }
}
