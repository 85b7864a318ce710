import ArgumentParser
import Foundation
import Logging
import StackVaultCore

/// `stackvault backup`: one archive per stack, now.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Backs up every labelled stack now (or those named with --stack), one at a time.",
        discussion: "SIGTERM or SIGINT stops the run after containers are started again. Exit code 0 when every "
            + "stack succeeded, 1 when one failed, 2 when Docker cannot be reached."
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: "Back up only this stack (repeatable; default: $STACKS, else every labelled stack).")
    var stack: [String] = []

    @Option(help: "zstd level (default: $ZSTD_LEVEL or 3).")
    var level: Int?

    @Option(help: "zstd worker threads, 0 = all cores (default: $ZSTD_THREADS or 0).")
    var threads: Int?

    @Option(help: ArgumentHelp("Directory where archives are assembled for remote targets (default: $STACKVAULT_WORK_DIR or " + "the system temporary directory)."))
    var workDir: String?

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() async throws {
        let environment: Environment
        let stackBackup: StackBackup
        let notifier: Notifier
        let plan: BackupPlan
        let selection: StackSelection
        do {
            environment = try Environment(options: options)
            selection = try StackSelection.resolve(options: stack, environment: environment.variables)
            stackBackup = try await environment.makeStackBackup(target: options.target, level: level,
                                                                threads: threads, workDir: workDir)
            notifier = try Notifier(environment: environment.variables, logger: environment.logger)
            // A Swarm service a killed run left at 0 has no task to plan from: scale it back first (see BackupRun).
            await SwarmScaleGuard.recoverInterrupted(
                docker: environment.docker, host: stackBackup.configuration.hostName,
                locker: try environment.stackLocker(withDocker: false),
                logger: environment.logger)
            plan = try await Planner(docker: environment.docker, strategies: environment.strategies).makePlan()
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        let unknown = selection.stacks.filter { name in plan.stack(named: name) == nil }
        if !unknown.isEmpty {
            let known = plan.stacks.map(\.name)
            printError("no labelled stack named \(unknown.joined(separator: ", "))"
                + " (from \(selection.source.rawValue)); "
                + "known: \(known.isEmpty ? "none" : known.joined(separator: ", "))"
                + PlanRendering.notes(plan, about: unknown))
            throw ExitStatus.unreachable
        }

        // The same run as the daemon's, with the same per-stack lock, so a manual run never overlaps a scheduled
        // one; a stack another StackVault is backing up fails (the user asked for it now).
        let run = BackupRun(
            docker: environment.docker, strategies: environment.strategies, stackBackup: stackBackup,
            locker: try environment.stackLocker(),
            stackFilter: selection.stacks, notifier: notifier, busyStack: .fail, logger: environment.logger)
        Self.warnIfADaemonRuns(environment)
        let record = try await runCancellably(logger: environment.logger) {
            await run.run(trigger: .manual, due: Date())
        }
        let stacks = record?.summaries ?? []
        print(json ? try Summary.json(stacks) : Summary.table(stacks), terminator: json ? "\n" : "")
        if record?.everyStackOK != true {
            throw ExitStatus.failure
        }
    }
}

extension BackupCommand {
    /// A daemon with this environment's STATE_FILE (the sidecar's own, under `docker exec`) would not see this run.
    static func warnIfADaemonRuns(_ environment: Environment) {
        let pidFile = DaemonPIDFile(stateFile: StateFile(environment: environment.variables))
        guard let pid = try? pidFile.runningDaemon(), pid != getpid() else { return }
        let message = "a StackVault daemon (pid \(pid), \(pidFile.path)) runs here: its state, health and metrics "
            + "will not show this backup; `stackvault run-now` asks the daemon to run one instead"
        environment.logger.warning("\(message)")
    }
}

/// The summary `stackvault backup` prints: one row (or JSON object) per stack of the run.
enum Summary {
    /// `services`: with the SERVICES column (the daemon's state file does not keep the service count).
    static func table(_ stacks: [StackOutcome.Summary], services: Bool = true) -> String {
        var rows = [["STACK"] + (services ? ["SERVICES"] : []) + ["SIZE", "DURATION", "DOWNTIME", "RESULT"]]
        for stack in stacks {
            let ok = stack.error == nil
            rows.append([stack.stack] + (services ? ["\(stack.services)"] : []) + [
                ok ? "\(ByteCount(stack.sizeBytes))" : "-",
                String(format: "%.1fs", stack.durationSeconds), String(format: "%.1fs", stack.downtimeSeconds),
                ok ? "ok: \(stack.archive ?? "")" : "FAILED: \(stack.error ?? "")",
            ])
        }
        var out = Table.render(rows)
        let failed = stacks.filter { $0.error != nil }.count
        out += "\(stacks.count - failed) of \(stacks.count) stack(s) backed up"
            + (failed > 0 ? ", \(failed) FAILED\n" : "\n")
        return out
    }

    static func json(_ stacks: [StackOutcome.Summary]) throws -> String {
        try prettyJSON(["stacks": stacks])
    }
}

/// Sizes like `1GiB`, `500M`, `1048576`.
enum ByteSize {
    static func parse(_ text: String, variable: String) throws -> Int64 {
        let value = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int64)] = [("gib", 1 << 30), ("gb", 1_000_000_000), ("g", 1 << 30), ("mib", 1 << 20),
                                        ("mb", 1_000_000), ("m", 1 << 20), ("kib", 1 << 10), ("kb", 1000),
                                        ("k", 1 << 10), ("b", 1)]
        for (suffix, factor) in units where value.hasSuffix(suffix) {
            if let number = Double(value.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)) {
                // Int64(_:) traps on inf, nan and out-of-range values.
                let bytes = number * Double(factor)
                guard bytes.isFinite, bytes >= 0, bytes < 0x1p63 else { break }
                return Int64(bytes)
            }
        }
        if let number = Int64(value), number >= 0 { return number }
        throw StackVaultError(.invalidConfiguration, "\(variable)='\(text)' is not a size (e.g. 1GiB, 500MB)")
    }
}
