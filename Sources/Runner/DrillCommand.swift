import ArgumentParser
import Foundation
import Logging
import StackVaultCore

/// `stackvault drill`: proves that an archive restores, into throwaway containers, without touching the stack.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Restores an archive into throwaway containers and checks what came back; the stack is untouched.",
        discussion: "Verifies the archive as `verify` does, then creates one container per service from the image "
            + "the archive recorded (it must exist on this host), with fresh anonymous volumes, no network, a "
            + "memory limit and credentials made for the drill; replays each dump with errors fatal and restores "
            + "each directory as `restore` does; then checks that every database and table of each dump exists "
            + "with the row count recorded at backup time, and that every directory has the archived tree digest. "
            + "The drill containers and their volumes are removed on every path. DRILL_MAX_DIRECTORY_SIZE leaves "
            + "larger directories out (the report says so); DRILL_MEMORY_LIMIT sets each container's limit "
            + "(default 2GiB). Exit code 0 when every check passes, 1 when one fails, 2 when Docker or the target "
            + "cannot be used."
    )

    @OptionGroup var options: GlobalOptions

    @Argument(help: ArgumentHelp(
        "The archive's name in the target (see `stackvault list`), or the path of a local archive file.",
        valueName: "archive"))
    var archive: String?

    @Flag(help: "Drill the newest archive of each --stack (without --stack: of every stack of the host).")
    var latest = false

    @Option(help: "With --latest: a stack whose newest archive is drilled; repeat it for several.")
    var stack: [String] = []

    @OptionGroup var source: ArchiveSource
    var host: String? { source.host }
    var workDir: String? { source.workDir }

    @Flag(help: "Print JSON: the report of the one archive drilled, or {\"passed\", \"reports\": [...]} for several.")
    var json = false

    func validate() throws {
        if archive != nil && (latest || !stack.isEmpty) {
            throw ValidationError("name an archive, or use --latest [--stack NAME ...], not both")
        }
        if archive == nil && !latest {
            throw ValidationError("say which archive to drill: its name (see `stackvault list`), or --latest "
                + "[--stack NAME ...] for the newest of each stack")
        }
    }

    /// What drilling one archive came to: its report, or why it could not be drilled.
    enum Result {
        case report(DrillReport)
        case failed(String, exitCode: Int32)
        case stopped
    }

    func run() async throws {
        let environment: Environment
        let engine: DrillEngine
        /// Each drill: (what it is, for messages; how to open it).
        var selections: [(what: String, stack: String?)] = []
        do {
            environment = try Environment(options: options)
            engine = DrillEngine(
                docker: environment.docker, strategies: environment.strategies,
                stopTimeoutSeconds: try environment.stopTimeoutSeconds(), logger: environment.logger,
                options: try environment.drillOptions(workDir: workDir))
            if let archive {
                selections = [(archive, nil)]
            } else if !stack.isEmpty {
                selections = stack.map { ("the newest archive of stack \($0)", $0) }
            } else {
                let own = try await environment.catalog(options.target)
                    .archives(ofHost: try await environment.host(host))
                let stacks = Array(Set(own.map(\.listing.stack))).sorted()
                guard !stacks.isEmpty else {
                    throw StackVaultError(.invalidConfiguration, "the host '\(try await environment.host(host))' has "
                        + "no archives in this target: nothing to drill (see `stackvault list --all-hosts`)")
                }
                selections = stacks.map { ("the newest archive of stack \($0)", $0) }
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        var reports: [DrillReport] = []
        var worst: Int32 = 0
        for (index, selection) in selections.enumerated() {
            if index > 0 && !json { print("") }
            switch await drillOne(selection.what, stack: selection.stack, engine: engine, environment: environment) {
            case .report(let report):
                reports.append(report)
                if !json { print(DrillRendering.text(report), terminator: "") }
                if !report.passed { worst = max(worst, 1) }
            case .failed(let message, let code):
                printError(message)
                worst = max(worst, code)
            case .stopped:
                throw ExitStatus.failure
            }
        }
        if json {
            if selections.count == 1, let report = reports.first {
                print(try prettyJSON(report))
            } else {
                struct Document: Encodable {
                    var passed: Bool
                    var reports: [DrillReport]
                }
                print(try prettyJSON(Document(passed: worst == 0 && reports.allSatisfy(\.passed), reports: reports)))
            }
        }
        if selections.count > 1 {
            let passed = reports.filter(\.passed).count
            printError("\(passed) of \(selections.count) drill(s) passed")
        }
        if worst != 0 { throw ExitCode(worst) }
    }

    /// Opens, verifies and drills one archive; never throws (the result says what happened).
    func drillOne(_ what: String, stack: String?, engine: DrillEngine, environment: Environment) async -> Result {
        let archive: LocalArchive
        let manifest: Manifest
        do {
            archive = try await ArchiveSelection.open(
                archive: self.archive, latest: latest, stack: stack, host: host, workDir: workDir,
                environment: environment, target: options.target)
            let check = try await archive.verify(strategies: environment.strategies, keepingPageCache: true,
                                                 logger: environment.logger)
            if check.envelope != nil {
                return .failed("cannot drill \(archive.name): it is encrypted (age) and no identity is set; set "
                    + "AGE_IDENTITY_FILE (or AGE_PASSPHRASE) to the key it was encrypted to", exitCode: 1)
            }
            guard check.ok, let verified = check.report.manifest else {
                return .failed("drill of \(archive.name) failed: the archive failed verification:\n"
                    + check.problems.map { "  - \($0)" }.joined(separator: "\n"), exitCode: 1)
            }
            manifest = verified
        } catch {
            return .failed("cannot drill \(what): \(error)", exitCode: ExitStatus.code(for: error).rawValue)
        }
        let outcome: Swift.Result<DrillReport, any Error>?
        do {
            outcome = try await runDrill(engine, manifest, archive: archive, logger: environment.logger)
        } catch {
            return .failed("the drill of \(archive.name) could not run: \(error)", exitCode: 2)
        }
        guard let outcome else {
            printError("the drill of \(archive.name) was stopped before it ended; its containers were removed")
            return .stopped
        }
        switch outcome {
        case .success(let report): return .report(report)
        case .failure(let error):
            if error is CancellationError || (error as? StackVaultError)?.code == .cancelled {
                printError("the drill of \(archive.name) was stopped (SIGTERM/SIGINT) before it ended; its containers "
                    + "were removed")
                return .stopped
            }
            return .failed("the drill of \(archive.name) could not run: \(error)",
                           exitCode: ExitStatus.code(for: error).rawValue)
        }
    }
}

/// Drills `archive` with SIGTERM/SIGINT stopping it (its containers removed): the report, or the error that kept the
/// drill from running; nil when a signal stopped it.
func runDrill(_ engine: DrillEngine, _ manifest: Manifest, archive: LocalArchive, logger: Logger) async throws
    -> Result<DrillReport, any Error>?
{
    try await runCancellably(logger: logger) { () -> Result<DrillReport, any Error> in
        do {
            return .success(try await engine.drill(manifest, name: archive.name, origin: archive.origin,
                                                    source: archive))
        } catch {
            return .failure(error)
        }
    }
}

enum DrillRendering {
    static func text(_ report: DrillReport) -> String {
        var out = "Drill of \(report.archive) (stack \(report.stack), host \(report.host))\n"
        for check in report.checks {
            out += "  \(check.passed ? "ok    " : "FAILED") \(check.service) \(check.archivePath) (\(check.type))\n"
            for line in check.checked { out += "           checked: \(line)\n" }
            for line in check.problems { out += "           problem: \(line)\n" }
        }
        let leftOut = report.checks.filter { $0.checked.contains { $0.hasPrefix("not drilled:") } }.count
        let seconds = String(format: "%.1f", report.seconds)
        out += report.passed && leftOut == report.checks.count
            ? "NOTHING DRILLED in \(seconds) s: every component is over DRILL_MAX_DIRECTORY_SIZE; nothing was checked\n"
            : report.passed
            ? "drill passed in \(seconds) s: the archive restores"
                + (leftOut > 0 ? " (\(leftOut) of \(report.checks.count) component(s) left out, not checked)" : "") + "\n"
            : "DRILL FAILED in \(String(format: "%.1f", report.seconds)) s: "
                + "\(report.checks.filter { !$0.passed }.count) of \(report.checks.count) component(s) failed\n"
        return out
    }
}

extension Environment {
    /// The drill's settings from `DRILL_MAX_DIRECTORY_SIZE` and `DRILL_MEMORY_LIMIT` (sizes like `2GiB`).
    func drillOptions(workDir: String?) throws -> DrillOptions {
        var options = DrillOptions()
        if let limit = variables["DRILL_MAX_DIRECTORY_SIZE"], !limit.isEmpty {
            options.maxDirectoryBytes = try ByteSize.parse(limit, variable: "DRILL_MAX_DIRECTORY_SIZE")
        }
        if let memory = variables["DRILL_MEMORY_LIMIT"], !memory.isEmpty {
            options.memoryLimitBytes = try ByteSize.parse(memory, variable: "DRILL_MEMORY_LIMIT")
            guard options.memoryLimitBytes >= 64 << 20 else {
                throw StackVaultError(.invalidConfiguration, "DRILL_MEMORY_LIMIT='\(memory)' is below 64MiB, too "
                    + "little for a database server: give a size such as 2GiB (a bare number is bytes)")
            }
        }
        options.workDirectory = workDir ?? variables["STACKVAULT_WORK_DIR"] ?? NSTemporaryDirectory()
        return options
    }
}
