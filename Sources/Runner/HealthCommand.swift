import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault health`: Docker's HEALTHCHECK for the daemon.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exits 0 when the daemon's last run succeeded and no run is overdue, 1 otherwise.",
        discussion: "Reads the daemon's state file ($STATE_FILE, default \(StateFile.defaultPath)). Unhealthy when "
            + "the last run that ended failed or was interrupted, or when the second schedule time after the latest "
            + "of (daemon start, last run's due time, due time of the run in progress) has passed. Prints one line "
            + "saying why. Never exits 2 (Docker reserves it)."
    )

    @Option(name: .long, help: "The state file (default: $STATE_FILE or \(StateFile.defaultPath)).")
    var stateFile: String?

    @Flag(help: "Also print the whole state file.")
    var verbose = false

    func run() throws {
        let file = stateFile.map(StateFile.init(path:)) ?? StateFile(environment: ProcessInfo.processInfo.environment)
        let state: DaemonState
        do {
            state = try file.read()
        } catch {
            print("UNHEALTHY: \(error)")
            throw ExitCode(1)
        }
        let report = HealthCheck.evaluate(state, now: Date())
        print(report.message)
        if verbose, let data = try? StateFile.encode(state) {
            print(String(decoding: data, as: UTF8.self))
        }
        if !report.healthy { throw ExitCode(1) }
    }
}
