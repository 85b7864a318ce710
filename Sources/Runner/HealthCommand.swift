import ArgumentParser
import Foundation
import Logging
import StackVaultCore

/// `stackvault health`: Docker's HEALTHCHECK for the daemon.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exits 0 when the daemon's last run succeeded and no run is overdue, 1 otherwise.",
        discussion: "Reads the daemon's state file ($STATE_FILE, default \(StateFile.defaultPath)). Unhealthy when "
            + "the last run that ended failed or was interrupted, or when the second schedule time after the latest "
            + "of (daemon start, last run's due time, due time of the run in progress) has passed, and while "
            + "containers that a dead StackVault stopped (a run killed with SIGKILL, or with the sidecar) are still "
            + "down: it asks Docker for stale stack locks whose stop journal names stopped containers (when Docker "
            + "does not answer within 10 s, that check is left out). Prints one line saying why. Never exits 2 "
            + "(Docker reserves it)."
    )

    @Option(name: .long, help: "The state file (default: $STATE_FILE or \(StateFile.defaultPath)).")
    var stateFile: String?

    @Flag(help: "Also print the whole state file.")
    var verbose = false

    func run() async throws {
        let file = stateFile.map(StateFile.init(path:)) ?? StateFile(environment: ProcessInfo.processInfo.environment)
        let state: DaemonState
        do {
            state = try file.read()
        } catch {
            print("UNHEALTHY: \(error)")
            throw ExitCode(1)
        }
        var report = HealthCheck.evaluate(state, now: Date())
        if let stops = await Self.abandonedStops(), !stops.isEmpty {
            report = HealthReport(healthy: false, message: "UNHEALTHY: containers a dead StackVault stopped are still "
                + "down (the daemon starts them at its start and every minute): " + stops.joined(separator: "; "))
        }
        print(report.message)
        if verbose, let data = try? StateFile.encode(state) {
            print(String(decoding: data, as: UTF8.self))
        }
        if !report.healthy { throw ExitCode(1) }
    }

    /// `StackLocker.abandonedStops` through the Docker engine of `DOCKER_HOST`; nil when Docker does not answer
    /// within 10 s (health then rests on the state file alone).
    static func abandonedStops() async -> [String]? {
        guard let docker = try? DockerClient(environment: ProcessInfo.processInfo.environment) else { return nil }
        let locker = StackLocker(store: DockerLockStore(client: docker), logger: Logger(label: "stackvault.health"))
        return await withTaskGroup(of: [String]?.self) { group in
            group.addTask { try? await locker.abandonedStops() }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
