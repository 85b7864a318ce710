import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault plan`: what would be backed up, read-only.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Shows what would be backed up on this Docker host, changing nothing.",
        discussion: "Exit code 0 when the plan has no errors, 1 when a service has errors, 2 when Docker cannot be "
            + "reached or the target is misconfigured."
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(name: .long, help: "Show only this stack (repeatable; default: $STACKS, else every labelled stack).")
    var stack: [String] = []

    func run() async throws {
        let environment: Environment
        var plan: BackupPlan
        var targetDescription: String
        var targetError: (any Error)?
        let selection: StackSelection
        do {
            environment = try Environment(options: options)
            selection = try Self.selection(options: stack, environment: environment.variables)
            do {
                targetDescription = try environment.storage(options.target).planDescription
            } catch {
                // Still show the plan, but say what is wrong with the target and fail like a bad configuration.
                targetDescription = "\(Redaction.redactURL(environment.targetURL(options.target))) (ERROR: \(error))"
                targetError = error
            }
            do {
                let age = try AgeConfiguration.fromEnvironment(environment.variables)
                if age.encrypts {
                    targetDescription += ", encrypted with age to \(age.recipients.count) recipient(s)"
                }
            } catch {
                targetDescription += " (AGE ERROR: \(error))"
                targetError = targetError ?? error
            }
            plan = try await Planner(docker: environment.docker, strategies: environment.strategies).makePlan()
            if !selection.isAll {
                let known = plan.stacks.map(\.name)
                if let unknown = selection.stacks.first(where: { !known.contains($0) }) {
                    throw StackVaultError(.invalidConfiguration, "no labelled stack named \(unknown) (from "
                        + "\(selection.source.rawValue)); known: "
                        + (known.isEmpty ? "none" : known.joined(separator: ", "))
                        + PlanRendering.notes(plan, about: [unknown]))
                }
                plan.stacks = plan.stacks.filter { selection.contains($0.name) }
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        if json {
            print(try PlanRendering.json(plan, target: targetDescription, selection: selection))
        } else {
            print(PlanRendering.text(plan, target: targetDescription, selection: selection), terminator: "")
        }
        if let targetError {
            printError("the backup target is not usable: \(targetError)")
            throw ExitStatus.unreachable
        }
        if plan.hasErrors { throw ExitStatus.failure }
    }
}

extension PlanCommand {
    /// `--stack`, else `STACKS`, else the selection of a daemon running with this STATE_FILE (inside the sidecar:
    /// the sidecar's daemon, also when it was started with `--stack`), else every labelled stack.
    static func selection(options: [String], environment: [String: String]) throws -> StackSelection {
        let selection = try StackSelection.resolve(options: options, environment: environment)
        let file = StateFile(environment: environment)
        guard selection.isAll, (try? DaemonPIDFile(stateFile: file).runningDaemon()) != nil,
              let stacks = (try? file.read())?.selectedStacks, !stacks.isEmpty
        else { return selection }
        return StackSelection(stacks: stacks, source: .daemon)
    }
}

enum PlanRendering {
    struct Document: Encodable {
        var target: String
        /// The helper image directory copies use, and why (absent when no directory is copied).
        var helperImage: String?
        /// The stacks selected and where from (`--stack` or `STACKS`); absent when every labelled stack is.
        var selection: Selection?
        var stacks: [StackPlan]
        /// What is not backed up here, and why (not errors).
        var notes: [String]
    }

    /// The plan's notes about services of the stacks `names` (`<stack>_<service>`), as a sentence to append to
    /// "no labelled stack named ..." ("" when there are none).
    static func notes(_ plan: BackupPlan, about names: [String]) -> String {
        let relevant = plan.notes.filter { note in names.contains { note.contains("service \($0)_") } }
        return relevant.isEmpty ? "" : ". " + relevant.joined(separator: ". ")
    }

    struct Selection: Encodable {
        var source: String
        var stacks: [String]
    }

    static func json(_ plan: BackupPlan, target: String, selection: StackSelection) throws -> String {
        try prettyJSON(Document(
            target: target, helperImage: plan.helperImage,
            selection: selection.isAll ? nil : Selection(source: selection.source.rawValue, stacks: selection.stacks),
            stacks: plan.stacks, notes: plan.notes))
    }

    static func text(_ plan: BackupPlan, target: String, selection: StackSelection) -> String {
        var out = "Target: \(target)\n"
        switch selection.source {
        case .all: break
        case .option: out += "Stacks: \(selection.stacks.joined(separator: ", ")) (from --stack)\n"
        case .variable:
            out += "Stacks: \(selection.stacks.joined(separator: ", ")) (from STACKS: the selection of a daemon "
                + "started with this environment)\n"
        case .daemon:
            out += "Stacks: \(selection.stacks.joined(separator: ", ")) (the selection of the daemon running with "
                + "this STATE_FILE)\n"
        }
        if let helper = plan.helperImage { out += "Helper image for directory copies: \(helper)\n" }
        for note in plan.notes { out += "Note: \(note)\n" }
        if plan.stacks.isEmpty {
            out += "No container is labelled backup.enable=true: nothing to back up.\n"
            return out
        }
        for stack in plan.stacks {
            let status = stack.hasErrors ? "  [ERRORS: will fail]" : ""
            out += "\nStack \(stack.name) (\(stack.services.count) service\(stack.services.count == 1 ? "" : "s"))"
                + "\(status)\n"
            for service in stack.services {
                let what = service.strategies.map { c in
                    c.name.map { "\(c.type) \($0)=\(c.path ?? "")" + (c.resolvedPath.map { " -> \($0)" } ?? "") }
                        ?? c.type
                }
                if let swarm = service.swarmService {
                    let back = swarm.replicas.map(String.init) ?? "?"
                    let action = service.stop ? "scaled to 0 while copied, then back to \(back)" : "keeps running"
                    out += "  \(service.service)  [Swarm service \(swarm.name), \(swarm.mode); task "
                        + "\(service.container) of \(swarm.tasksOnNode.count) on this node; \(action)]\n"
                } else {
                    let action = service.stop ? "stopped while copied"
                        : service.running ? "keeps running" : "not running"
                    out += "  \(service.service)  [container \(service.container), \(action)]\n"
                }
                for item in what { out += "      - \(item)\n" }
                // Where the labels came from, when a Swarm service spec (deploy.labels) gave any.
                if service.labelSources.values.contains(where: { $0 != "container" }) {
                    let sources = service.labelSources.keys.sorted().map { "\($0) (\(service.labelSources[$0]!))" }
                    out += "      labels: \(sources.joined(separator: ", "))\n"
                }
                for warning in service.warnings { out += "      warning: \(warning)\n" }
                for error in service.errors { out += "      ERROR: \(error)\n" }
            }
            if !stack.stops.isEmpty {
                out += "  Stopped while the directories are copied (in this order; started again in reverse):\n"
                for stop in stack.stops.reversed() where stop.provider != nil { out += "    - \(line(stop))\n" }
                for stop in stack.stops where stop.provider == nil { out += "    - \(line(stop))\n" }
            }
            for warning in stack.stopWarnings { out += "  warning: \(warning)\n" }
        }
        return out
    }

    private static func line(_ stop: PlannedStop) -> String {
        "\(stop.container)" + (stop.service.map { " (service \($0))" } ?? "") + ": \(stop.reason)"
    }
}
