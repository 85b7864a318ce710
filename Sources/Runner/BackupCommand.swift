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

    @Option(name: .long, help: "Back up only this stack (repeatable).")
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
        let engine: BackupEngine
        let notifier: Notifier
        var plan: BackupPlan
        do {
            environment = try Environment(options: options)
            engine = try await environment.makeBackupEngine(target: options.target, level: level, threads: threads,
                                                      workDir: workDir)
            notifier = try Notifier(environment: environment.variables, logger: environment.logger)
            plan = try await Planner(docker: environment.docker, strategies: environment.strategies).makePlan()
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        if !stack.isEmpty {
            let unknown = stack.filter { name in plan.stack(named: name) == nil }
            if !unknown.isEmpty {
                printError("no labelled stack named \(unknown.joined(separator: ", ")); "
                    + "known: \(plan.stacks.map(\.name).joined(separator: ", "))")
                throw ExitStatus.failure
            }
            plan.stacks.removeAll { !stack.contains($0.name) }
        }
        environment.logger.info("backup run: \(plan.stacks.count) stack(s) to \(engine.storage.description)")

        let startedAt = Date()
        await notifier.runStarted()
        // The same per-stack lock as the daemon's, so a manual run never overlaps a scheduled one.
        let locker = StackLocker(store: DockerLockStore(client: environment.docker), logger: environment.logger)
        let stacks = plan.stacks
        let results = try await runCancellably(logger: environment.logger) {
            await Self.backUp(stacks, engine: engine, locker: locker)
        } ?? []
        await notifier.runFinished(RunSummary(host: engine.configuration.hostName, startedAt: startedAt,
                                              finishedAt: Date(), stacks: results))
        print(json ? try Summary.json(results) : Summary.table(results), terminator: json ? "\n" : "")
        if results.count < plan.stacks.count || results.contains(where: { !$0.succeeded }) {
            throw ExitStatus.failure
        }
    }
}

extension BackupCommand {
    /// Backs up `stacks` one at a time, each while holding its StackVault lock; a stack another StackVault is
    /// backing up is reported as failed. Cancellation (SIGTERM) leaves the rest "not started".
    static func backUp(_ stacks: [StackPlan], engine: BackupEngine, locker: StackLocker) async -> [StackResult] {
        var results: [StackResult] = []
        for stack in stacks {
            if Task.isCancelled {
                results.append(failed(stack, "not started: the run was cancelled"))
                continue
            }
            do {
                switch try await locker.withLock(on: stack.name, { await engine.backup(stack) }) {
                case .ran(let ran):
                    results.append(ran)
                case .busy(let held):
                    results.append(failed(stack, "\(held.record.busyDescription); try again when it is done"))
                }
            } catch {
                results.append(failed(stack, "could not take its lock: \(error)"))
            }
        }
        return results
    }

    static func failed(_ stack: StackPlan, _ reason: String) -> StackResult {
        StackResult(stack: stack.name, services: stack.services.count, archive: nil, sizeBytes: 0, durationSeconds: 0,
                    downtimeSeconds: 0, warnings: [], error: reason)
    }
}

enum Summary {
    static func table(_ results: [StackResult]) -> String {
        var rows = [["STACK", "SERVICES", "SIZE", "DURATION", "DOWNTIME", "RESULT"]]
        for result in results {
            rows.append([
                result.stack, "\(result.services)", result.succeeded ? "\(ByteCount(result.sizeBytes))" : "-",
                String(format: "%.1fs", result.durationSeconds), String(format: "%.1fs", result.downtimeSeconds),
                result.succeeded ? "ok: \(result.archive ?? "")" : "FAILED: \(result.error ?? "")",
            ])
        }
        var out = Table.render(rows)
        let failed = results.filter { !$0.succeeded }.count
        out += "\(results.count - failed) of \(results.count) stack(s) backed up"
            + (failed > 0 ? ", \(failed) FAILED\n" : "\n")
        return out
    }

    static func json(_ results: [StackResult]) throws -> String {
        try prettyJSON(["stacks": results])
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
                return Int64(number * Double(factor))
            }
        }
        if let number = Int64(value) { return number }
        throw StackVaultError(.invalidConfiguration, "\(variable)='\(text)' is not a size (e.g. 1GiB, 500MB)")
    }
}
