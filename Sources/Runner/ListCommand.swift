import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault list`: the archives in the target, newest first.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Lists this host's archives in the target (or another's, or all), newest first.",
        discussion: "Each host's archives are in a folder of its own, <target>/<host>/; this host is $STACKVAULT_HOST, "
            + "else the Docker engine's name. Archives at the top of the target were written before host folders: "
            + "they are listed with the host '-' (their host is only recorded inside them; `verify NAME` shows it). "
            + "VERIFIED says 'at backup' for every archive: StackVault reads every archive back whole before "
            + "it stores it, and never stores one that fails. With --verify, each archive is also read from the "
            + "target and checked now, as `verify` does. list never writes to the target, so read-only credentials "
            + "are enough. Exit code 0, or 1 when --verify finds a failing archive, 2 when the target cannot be "
            + "used."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "Only the archives of this stack.")
    var stack: String?

    @Option(help: "The archives of this host (default: $STACKVAULT_HOST, else the Docker engine's name).")
    var host: String?

    @Flag(help: "The archives of every host in the target, with a HOST column.")
    var allHosts = false

    @Flag(help: "Also check every listed archive now (reads each one whole).")
    var verify = false

    @Option(help: ArgumentHelp("With --verify: directory for temporary copies from a remote target (default: "
        + "$STACKVAULT_WORK_DIR or the system temporary directory)."))
    var workDir: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if allHosts && host != nil { throw ValidationError("--host and --all-hosts exclude each other") }
    }

    func run() async throws {
        var rows: [ListRendering.Row] = []
        let target: String
        do {
            let environment = try Environment(options: options)
            let catalog = try environment.catalog(options.target)
            target = catalog.root.description
            let archives: [HostedArchive]
            if allHosts {
                archives = try await catalog.allArchives(stack: stack)
            } else {
                let host = try await environment.host(host)
                let unfiled = try await catalog.unfiledArchives(stack: stack)
                if !unfiled.isEmpty {
                    printError("warning: \(unfiled.count) archive(s) at the top of \(target) were written before "
                        + "archives had host folders: they belong to no host (HOST '-'), are never pruned, and are "
                        + "restored by name; move one into \(target)/\(host)/ to give it to this host")
                }
                archives = (try await catalog.archives(ofHost: host, stack: stack) + unfiled)
                    .sorted { ($0.listing.date, $0.listing.name) > ($1.listing.date, $1.listing.name) }
            }
            // The daemon's restore drills, from its state file when this process can read it (inside the sidecar).
            let drills = (try? StateFile(environment: environment.variables).read())?.drills ?? [:]
            for archive in archives {
                let listing = archive.listing
                var row = ListRendering.Row(host: archive.host, listing: listing, verified: "at backup", problems: [])
                if let drill = drills[listing.stack], drill.archive == listing.name {
                    row.drilled = (drill.passed ? "passed " : "FAILED ")
                        + DisplayTime.plain(drill.finishedAt)
                }
                if verify {
                    do {
                        let storage = try archive.host.map { try catalog.storage(forHost: $0) } ?? catalog.root
                        let check = try await ArchiveSelection.open(listing.name, from: storage, workDir: workDir,
                                                                    environment: environment)
                            .verify(strategies: environment.strategies, logger: environment.logger)
                        row.verified = !check.ok ? "FAILED (checked now)"
                            : check.envelope != nil ? "envelope ok (no identity)" : "ok (checked now)"
                        row.problems = check.problems
                    } catch {
                        row.verified = "FAILED (checked now)"
                        row.problems = ["\(error)"]
                    }
                }
                rows.append(row)
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        print(json ? try ListRendering.json(rows, target: target)
                   : ListRendering.text(rows, target: target, hostColumn: allHosts || rows.contains { $0.host == nil },
                                        stack: stack),
              terminator: json ? "\n" : "")
        if rows.contains(where: { !$0.problems.isEmpty }) { throw ExitStatus.failure }
    }
}

enum ListRendering {
    struct Row: Encodable {
        /// The host folder; nil for an archive from before host folders.
        var host: String?
        var listing: ArchiveListing
        /// `at backup`, or the outcome of `--verify`.
        var verified: String
        var problems: [String]
        /// The daemon's last restore drill of this archive (`passed <time>` / `FAILED <time>`, in the zone of TZ), if known.
        var drilled: String? = nil
    }

    static func text(_ rows: [Row], target: String, hostColumn: Bool, stack: String? = nil) -> String {
        guard !rows.isEmpty else {
            return stack.map { "No archive of the stack '\($0)' in \(target) (list without --stack shows the stacks "
                + "it has archives of).\n" } ?? "No archives in \(target).\n"
        }
        var table = [(hostColumn ? ["HOST"] : [])
            + ["STACK", "TIME (\(DisplayTime.zoneName))", "SIZE", "ENCRYPTED", "VERIFIED", "DRILLED (\(DisplayTime.zoneName))", "ARCHIVE"]]
        for row in rows {
            table.append((hostColumn ? [row.host ?? "-"] : []) + [
                row.listing.stack, DisplayTime.plain(row.listing.date),
                "\(ByteCount(row.listing.sizeBytes))", ArchiveName.isEncrypted(row.listing.name) ? "age" : "no",
                row.verified, row.drilled ?? "-", row.listing.name])
        }
        var out = "Archives in \(target), newest first:\n" + Table.render(table)
        for row in rows where !row.problems.isEmpty {
            out += "\(row.listing.name) FAILED:\n" + row.problems.map { "  - \($0)\n" }.joined()
        }
        return out
    }

    static func json(_ rows: [Row], target: String) throws -> String {
        struct Entry: Encodable {
            /// The host folder; null for an archive from before host folders.
            var host: String?
            var name: String
            var stack: String
            var time: Date
            var sizeBytes: Int64
            var encrypted: Bool
            var verified: String
            var problems: [String]
            /// The daemon's last restore drill of this archive, if known.
            var drilled: String?
        }
        struct Document: Encodable {
            var target: String
            var archives: [Entry]
        }
        let entries = rows.map {
            Entry(host: $0.host, name: $0.listing.name, stack: $0.listing.stack, time: $0.listing.date,
                  sizeBytes: $0.listing.sizeBytes, encrypted: ArchiveName.isEncrypted($0.listing.name),
                  verified: $0.verified, problems: $0.problems, drilled: $0.drilled)
        }
        return try prettyJSON(Document(target: target, archives: entries))
    }
}
