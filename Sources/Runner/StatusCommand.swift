import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault status`: per host and stack, the newest archive, its age and size, read from the target alone.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Shows, per host and stack, the last archive in the target, its age and size, and the last drill.",
        discussion: "Reads only the target (no Docker needed with --all-hosts, --host or $STACKVAULT_HOST), so it "
            + "works from any machine with read access to the bucket: the fleet view of every StackVault that "
            + "shares it. LAST DRILL is the daemon's last restore drill of the stack, read from its state file "
            + "($STATE_FILE) when this process can read it (inside the sidecar), for this host's stacks; drills are "
            + "not recorded in the target. Exit code 0, 2 when the target cannot be read."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "This host's stacks (default: $STACKVAULT_HOST, else the Docker engine's name).")
    var host: String?

    @Flag(help: "Every host in the target.")
    var allHosts = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if allHosts && host != nil { throw ValidationError("--host and --all-hosts exclude each other") }
    }

    func run() async throws {
        let statuses: [StackStatus]
        let target: String
        do {
            let environment = try Environment(options: options)
            let catalog = try environment.catalog(options.target)
            target = catalog.root.description
            let archives = allHosts ? try await catalog.allArchives()
                : try await catalog.archives(ofHost: try await environment.host(host))
            // The daemon's restore drills, from its state file when this process can read it (inside the sidecar).
            statuses = StackStatus.adding(drillsOf: try? StateFile(environment: environment.variables).read(),
                                          to: StackStatus.summarize(archives, now: Date()))
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        if json {
            struct Document: Encodable {
                var target: String
                var stacks: [StackStatus]
            }
            print(try prettyJSON(Document(target: target, stacks: statuses)))
            return
        }
        guard !statuses.isEmpty else {
            print("No archives in \(target).")
            return
        }
        var rows = [["HOST", "STACK", "LAST ARCHIVE (\(DisplayTime.zoneName))", "AGE", "SIZE", "ARCHIVES", "TOTAL", "LAST DRILL (\(DisplayTime.zoneName))"]]
        for status in statuses {
            let drill = status.lastDrill.map { record in
                (record.passed ? "passed " : "FAILED ")
                    + DisplayTime.plain(record.finishedAt)
                    + (record.archive == status.lastArchive ? "" : " (older archive)")
            }
            rows.append([status.host ?? "-", status.stack,
                         DisplayTime.plain(status.lastTime),
                         StackStatus.describeAge(status.ageSeconds), "\(ByteCount(status.lastSizeBytes))",
                         "\(status.archives)", "\(ByteCount(status.totalBytes))", drill ?? "-"])
        }
        print("Archives in \(target):\n" + Table.render(rows), terminator: "")
    }
}
