import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault prune`: removes old archives by a retention policy (restic's `forget` rules).
struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Removes old backups from the target by a retention policy, stack by stack.",
        discussion: "A backup is kept if any rule keeps it; within each period the newest backup is the one kept; "
            + "the newest backup of a stack is always kept. Rules default to the RETENTION_KEEP_* variables. "
            + "Hours, days, ISO weeks, months and years are those of the local clock of $TZ (default UTC), as "
            + "restic's forget counts a snapshot's local time; --json names the period each rule counted. "
            + "Objects that are not StackVault archives are never touched. Only one host's archives are pruned "
            + "(<target>/<host>/, this host by default); archives from before host folders are never pruned."
    )

    @OptionGroup var options: GlobalOptions

    @Option(name: .long, help: "Only this stack (repeatable).") var stack: [String] = []
    @Option(name: .long, help: "Prune this host's archives (default: $STACKVAULT_HOST, else the Docker engine's name).")
    var host: String?
    @Option(name: .long, help: "Keep the N newest backups.") var keepLast: Int?
    @Option(name: .long, help: "Keep the newest backup of each of the last N hours that have one.") var keepHourly: Int?
    @Option(name: .long, help: "Likewise for days.") var keepDaily: Int?
    @Option(name: .long, help: "Likewise for ISO weeks.") var keepWeekly: Int?
    @Option(name: .long, help: "Likewise for months.") var keepMonthly: Int?
    @Option(name: .long, help: "Likewise for years.") var keepYearly: Int?
    @Option(name: .long, help: "Keep every backup within this duration of the newest (e.g. 7d, 2w, 6m, 1y).")
    var keepWithin: String?
    @Flag(help: "Show what would be removed; remove nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let environment: Environment
        let outcomes: [Pruner.StackDecisions]
        let timeZone: String
        do {
            environment = try Environment(options: options)
            var policy = try RetentionPolicy.fromEnvironment(environment.variables)
            if let keepLast { policy.keepLast = keepLast }
            if let keepHourly { policy.keepHourly = keepHourly }
            if let keepDaily { policy.keepDaily = keepDaily }
            if let keepWeekly { policy.keepWeekly = keepWeekly }
            if let keepMonthly { policy.keepMonthly = keepMonthly }
            if let keepYearly { policy.keepYearly = keepYearly }
            if let keepWithin { policy.keepWithin = try RetentionDuration(parsing: keepWithin, name: "--keep-within") }
            timeZone = policy.timeZone.identifier
            guard !policy.isEmpty else {
                printError("no retention rule given (--keep-* or RETENTION_KEEP_*): nothing would be removed")
                throw ExitStatus.failure
            }
            // One host's folder only: hosts sharing a target never prune each other's archives.
            let storage = try environment.catalog(options.target).storage(forHost: try await environment.host(host))
            outcomes = try await Pruner(storage: storage, policy: policy,
                                        logger: environment.logger)
                .prune(stacks: stack.isEmpty ? nil : Set(stack), dryRun: dryRun)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        if json {
            print(try prettyJSON(["dryRun": AnyEncodable(dryRun), "timeZone": AnyEncodable(timeZone),
                                  "stacks": AnyEncodable(outcomes)]))
        } else {
            for outcome in outcomes {
                print("Stack \(outcome.stack):")
                for decision in outcome.decisions {
                    let reasons = decision.reasons.map { rule in decision.periods[rule].map { "\(rule) \($0)" } ?? rule }
                    let verdict = decision.keep ? "keep   (\(reasons.joined(separator: ", ")))"
                        : dryRun ? "would remove" : outcome.failures[decision.name].map { "FAILED to remove: \($0)" }
                            ?? "removed"
                    print("  \(decision.name)  \(verdict)")
                }
            }
            if outcomes.isEmpty { print("No StackVault archives in the target.") }
        }
        if outcomes.contains(where: { !$0.failures.isEmpty }) { throw ExitStatus.failure }
    }
}

/// Type-erases an `Encodable` for mixed JSON objects.
struct AnyEncodable: Encodable {
    let encodeValue: (any Encoder) throws -> Void
    init(_ value: some Encodable) { encodeValue = value.encode }
    func encode(to encoder: any Encoder) throws { try encodeValue(encoder) }
}
