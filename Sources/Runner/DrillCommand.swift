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
    @OptionGroup var selection: ArchiveSelection

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if selection.latest && selection.stack == nil {
            throw ValidationError("--latest needs --stack NAME: say which stack's archive to drill")
        }
    }

    func run() async throws {
        let environment: Environment
        let archive: LocalArchive
        let manifest: Manifest
        let engine: DrillEngine
        do {
            environment = try Environment(options: options)
            archive = try await selection.open(environment: environment, target: options.target)
            let check = try await archive.verify(strategies: environment.strategies, keepingPageCache: true)
            if check.envelope != nil {
                printError("cannot drill \(archive.name): it is encrypted (age) and no identity is set; set "
                    + "AGE_IDENTITY_FILE (or AGE_PASSPHRASE) to the key it was encrypted to")
                throw ExitStatus.failure
            }
            guard check.ok, let verified = check.report.manifest else {
                printError("drill of \(archive.name) failed: the archive failed verification:\n"
                    + check.problems.map { "  - \($0)" }.joined(separator: "\n"))
                throw ExitStatus.failure
            }
            manifest = verified
            engine = DrillEngine(
                docker: environment.docker, strategies: environment.strategies,
                stopTimeoutSeconds: try environment.stopTimeoutSeconds(), logger: environment.logger,
                options: try environment.drillOptions(workDir: selection.workDir))
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        let outcome = try await runDrill(engine, manifest, archive: archive, logger: environment.logger)
        guard let outcome else {
            printError("the drill of \(archive.name) was stopped before it ended; its containers were removed")
            throw ExitStatus.failure
        }
        let report: DrillReport
        switch outcome {
        case .success(let made): report = made
        case .failure(let error):
            if error is CancellationError || (error as? StackVaultError)?.code == .cancelled {
                printError("the drill of \(archive.name) was stopped (SIGTERM/SIGINT) before it ended; its containers "
                    + "were removed")
                throw ExitStatus.failure
            }
            printError("the drill of \(archive.name) could not run: \(error)")
            throw ExitStatus.code(for: error)
        }
        print(json ? try prettyJSON(report) : DrillRendering.text(report), terminator: json ? "\n" : "")
        if !report.passed { throw ExitStatus.failure }
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
        out += report.passed
            ? "drill passed in \(String(format: "%.1f", report.seconds)) s: the archive restores\n"
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
