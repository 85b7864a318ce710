import ArgumentParser
import Foundation
import Logging
import StackVaultCore

/// `stackvault restore`: puts an archive back into the stack's containers.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restores an archive into a stack's containers: database dumps are replayed, directories replaced.",
        discussion: "The archive is verified in full first (as `verify` does) and refused, before anything on this "
            + "host is touched, when any check fails. Then its dumps are drilled (replayed into throwaway containers "
            + "of the target's images, row counts compared; --no-drill skips this) and a failed drill refuses the "
            + "restore, nothing changed. Existing data is REPLACED: databases are set aside and replaced by the "
            + "dump's (put back if the replay fails), directories end up holding exactly the archived files. "
            + "--dry-run prints what would be "
            + "done to which container. Without a terminal, a restore needs --yes. Exit code 0 when every component "
            + "was restored, 1 when the archive was refused, the restore was not confirmed (no terminal and no "
            + "--yes, or an answer other than 'yes'), the stack was locked or a component failed, 2 when Docker or "
            + "the target cannot be used, the archive is not there or the options are wrong."
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: ArchiveSelection

    @Option(name: .customLong("service"), help: "Restore only this service of the archive (repeatable).")
    var services: [String] = []

    @Option(help: "Restore into this Compose project (or standalone container) instead of the archive's stack.")
    var intoStack: String?

    @Option(name: .customLong("map"), help: ArgumentHelp(
        "Restore a service into this container (repeatable); wins over --into-stack.", valueName: "service=container"))
    var mappings: [String] = []

    @Flag(help: "Print what would be done, to which container, and change nothing.")
    var dryRun = false

    @Flag(help: "Do not ask for confirmation (required when standard input is not a terminal).")
    var yes = false

    @Flag(help: "Do not drill the dumps in throwaway containers of the target's images before replacing anything.")
    var noDrill = false

    func validate() throws {
        if selection.latest && selection.stack == nil {
            throw ValidationError("--latest needs --stack NAME: say which stack to restore")
        }
    }

    func run() async throws {
        let environment: Environment
        let archive: LocalArchive
        let plan: RestorePlan
        let engine: RestoreEngine
        let manifest: Manifest
        let restoreOptions: RestoreOptions
        do {
            environment = try Environment(options: options)
            let map = try RestoreOptions.parseMap(mappings)
            archive = try await selection.open(environment: environment, target: options.target)
            let check = try await archive.verify(strategies: environment.strategies, keepingPageCache: true,
                                                 logger: environment.logger)
            if check.envelope != nil {
                printError("refusing to restore \(archive.name): it is encrypted (age) and no identity is set; set "
                    + "AGE_IDENTITY_FILE (or AGE_PASSPHRASE) to the key it was encrypted to. Nothing was changed.")
                throw ExitStatus.failure
            }
            guard check.ok, let verified = check.report.manifest else {
                printError("refusing to restore \(archive.name): it failed verification, nothing was changed:\n"
                    + check.problems.map { "  - \($0)" }.joined(separator: "\n"))
                throw ExitStatus.failure
            }
            manifest = verified
            environment.logger.info("\(archive.name) verified: \(manifest.components.count) component(s)")
            engine = RestoreEngine(
                docker: environment.docker, strategies: environment.strategies,
                stopTimeoutSeconds: try environment.stopTimeoutSeconds(), host: try await environment.host(),
                logger: environment.logger)
            restoreOptions = RestoreOptions(services: services, intoStack: intoStack, containerMap: map)
            plan = try await engine.plan(manifest: manifest, origin: archive.origin, options: restoreOptions)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }

        print(plan.rendered(), terminator: "")
        if dryRun {
            print("Dry run: nothing was changed.")
            return
        }
        try confirm()
        if !noDrill { try await drillDumpsFirst(plan, manifest: manifest, archive: archive, environment: environment) }

        // The same per-stack lock as backups: no scheduled backup stops or copies the stack half-way through.
        let locker = try environment.stackLocker()
        await SwarmScaleGuard.recoverInterrupted(docker: environment.docker, host: engine.host, locker: locker,
                                                 logger: environment.logger)
        let outcome = try await runCancellably(logger: environment.logger) {
            () -> (results: [RestoreStepResult], failure: String?) in
            do {
                let locked = try await locker.withLock(on: plan.targetStack, purpose: "restore") {
                    () async -> (results: [RestoreStepResult], failure: String?) in
                    do {
                        // Planned again under the lock: taking it may have started containers that a dead
                        // StackVault had left stopped, and those must be stopped for their directories.
                        let current = try await engine.plan(manifest: manifest, origin: archive.origin,
                                                            options: restoreOptions)
                        return (try await engine.run(current, source: archive), nil)
                    } catch {
                        return ([], "\(error)")
                    }
                }
                switch locked {
                case .ran(let ran): return ran
                case .busy(let held):
                    return ([], "stack \(plan.targetStack) is locked: \(held.record.busyDescription); nothing was "
                        + "changed, try again when it is done")
                }
            } catch {
                return ([], "could not take the lock of stack \(plan.targetStack): \(error); nothing was changed")
            }
        }
        let (results, failure) = outcome ?? ([], "the restore was stopped before it ended")
        print(RestoreRendering.summary(results, plan: plan, failure: failure), terminator: "")
        if failure != nil || results.count < plan.steps.count || results.contains(where: { $0.outcome != .restored }) {
            throw ExitStatus.failure
        }
    }

    /// Before anything is replaced: the plan's dumps are replayed into throwaway containers of the target containers'
    /// own images (``DrillEngine``, as `stackvault drill` does, row counts compared); a failure refuses the restore
    /// with the drill's findings, the target untouched. Directories are not drilled: their replacement is staged and
    /// swapped, so a failed one leaves the old data in place anyway.
    private func drillDumpsFirst(_ plan: RestorePlan, manifest: Manifest, archive: LocalArchive,
                                 environment: Environment) async throws
    {
        let dumps = plan.steps.filter { $0.component.kind == .file }
        guard !dumps.isEmpty else { return }
        var scoped = manifest
        scoped.components = dumps.map(\.component)
        let engine: DrillEngine
        do {
            var options = try environment.drillOptions(workDir: selection.workDir)
            for step in dumps {
                let target = try await environment.docker.inspectContainer(step.containerID)
                options.images[step.service] = target.imageID ?? target.image
            }
            engine = DrillEngine(docker: environment.docker, strategies: environment.strategies,
                                 stopTimeoutSeconds: try environment.stopTimeoutSeconds(), logger: environment.logger,
                                 options: options)
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        print("Drilling \(dumps.count) dump(s) first, in throwaway containers of the target's image(s); nothing is "
            + "changed until it passes (--no-drill skips this).")
        switch try await runDrill(engine, scoped, archive: archive, logger: environment.logger) {
        case nil:
            printError("the restore was stopped during its drill: nothing was changed")
            throw ExitStatus.failure
        case .failure(let error)?:
            printError("refusing to restore \(archive.name): its drill could not run (\(error)); nothing was changed. "
                + "--no-drill restores without it")
            throw ExitStatus.failure
        case .success(let report)?:
            guard report.passed else {
                printError("refusing to restore \(archive.name): its dump does not restore cleanly into the target's "
                    + "image, nothing was changed (--no-drill restores anyway; the replay would then fail and be "
                    + "undone, or lose what is listed):\n" + report.checks.filter { !$0.passed }
                    .flatMap { check in check.problems.map { "  - \(check.archivePath): \($0)" } }
                    .joined(separator: "\n"))
                throw ExitStatus.failure
            }
            print("Drill passed in \(String(format: "%.1f", report.seconds)) s: "
                + report.checks.flatMap(\.checked).filter { $0.contains("row(s)") }.joined(separator: "; "))
        }
    }

    /// Asks on the terminal, or insists on --yes without one.
    private func confirm() throws {
        if yes { return }
        guard isatty(STDIN_FILENO) == 1 else {
            printError("this restore replaces existing data: run it again with --yes (standard input is not a "
                + "terminal, so it cannot ask), or with --dry-run to only see the plan")
            throw ExitStatus.failure
        }
        print("Type 'yes' to replace the data listed above: ", terminator: "")
        guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
            printError("not confirmed: nothing was changed")
            throw ExitStatus.failure
        }
    }
}

enum RestoreRendering {
    static func summary(_ results: [RestoreStepResult], plan: RestorePlan, failure: String?) -> String {
        var rows = [["SERVICE", "CONTAINER", "COMPONENT", "TIME", "RESULT"]]
        for result in results {
            let outcome: String
            switch result.outcome {
            case .restored: outcome = "restored"
            case .failed: outcome = "FAILED: \(result.error ?? "")"
            case .skipped: outcome = "skipped (an earlier step failed, or the run was cancelled)"
            }
            rows.append([result.service, result.container, result.archivePath,
                         String(format: "%.1fs", result.seconds), outcome])
        }
        var out = "\n" + Table.render(rows)
        let restored = results.filter { $0.outcome == .restored }.count
        out += "\(restored) of \(plan.steps.count) component(s) restored from \(plan.archive)"
        out += restored == plan.steps.count && failure == nil ? "\n" : ", RESTORE INCOMPLETE\n"
        if let failure { out += "ERROR: \(failure)\n" }
        return out
    }
}
