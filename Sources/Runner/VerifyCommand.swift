import ArgumentParser
import Foundation
import Logging
import StackVaultCore

/// `stackvault verify`: reads an archive from the target and checks everything, changing nothing.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Checks an archive from the target end to end, changing nothing.",
        discussion: "Streams the archive from the target into a temporary file (local targets are read in place) and "
            + "checks the zstd stream, the tar structure, every component's SHA-256, size and entry count against "
            + "the manifest, unsafe entry names, and that every database dump ends the way a complete dump ends. "
            + "Exit code 0 when the archive passes, 1 when it fails, 2 when the target cannot be used."
    )

    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: ArchiveSelection

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        let check: ArchiveCheck
        let archive: LocalArchive
        do {
            let environment = try Environment(options: options)
            archive = try await selection.open(environment: environment, target: options.target)
            check = try await archive.verify(strategies: environment.strategies, logger: environment.logger)
        } catch {
            printError("\(error)")
            throw ExitStatus.code(for: error)
        }
        if json {
            print(try VerifyRendering.json(check, archive: archive))
        } else {
            print(VerifyRendering.text(check, archive: archive), terminator: "")
        }
        if !check.ok { throw ExitStatus.failure }
    }
}

/// Which archive `verify` and `restore` work on, and where a remote one is downloaded to.
/// Whose archives, and where a remote one is copied to: shared by every command that opens archives.
struct ArchiveSource: ParsableArguments {
    @Option(help: ArgumentHelp("The host whose archives are used (default: $STACKVAULT_HOST, else the Docker engine's "
        + "name); to restore another machine's stack here, name that machine."))
    var host: String?

    @Option(help: ArgumentHelp("Directory for the temporary copy of an archive from a remote target (default: "
        + "$STACKVAULT_WORK_DIR or the system temporary directory)."))
    var workDir: String?
}

struct ArchiveSelection: ParsableArguments {
    @Argument(help: ArgumentHelp(
        "The archive's name in the target (see `stackvault list`), or the path of a local archive file.",
        valueName: "archive"))
    var archive: String?

    @Flag(help: "Use the newest archive (of --stack).")
    var latest = false

    @Option(help: "With --latest: the stack whose newest archive is used.")
    var stack: String?

    @OptionGroup var source: ArchiveSource
    var host: String? { source.host }
    var workDir: String? { source.workDir }

    /// Opens the selected archive: a local file when `archive` is a path to one, else from the target.
    func open(environment: Environment, target: String?) async throws -> LocalArchive {
        try await Self.open(archive: archive, latest: latest, stack: stack, host: host, workDir: workDir,
                            environment: environment, target: target)
    }

    /// Opens `archive` (a name in the target, or the path of a local file) or, with `latest`, the newest archive
    /// (of `stack`) of `host` (nil: this host).
    static func open(archive: String?, latest: Bool, stack: String?, host: String?, workDir: String?,
                     environment: Environment, target: String?) async throws -> LocalArchive {
        let compressor = try CompressorRegistry().compressor(named: "zstd", settings: CompressionSettings())
        if let archive, archive.contains("/"), !latest {
            guard FileManager.default.fileExists(atPath: archive) else {
                throw StackVaultError(.invalidConfiguration, "no archive file at \(archive)")
            }
            return try LocalArchive.open(localPath: archive, compressor: compressor,
                                         identities: try environment.ageIdentities())
        }
        let host = try await environment.host(host)
        let location = try await environment.catalog(target).select(name: archive, latest: latest, stack: stack,
                                                                    host: host)
        if location.host == nil {
            let note = "\(location.name) is at the top of the target, from before archives had host folders: it "
                + "belongs to no host; its manifest names the host it was taken on"
            environment.logger.warning("\(note)")
        }
        return try await Self.open(location.name, from: location.storage, workDir: workDir, environment: environment)
    }

    /// Opens the archive `name` of `storage`, downloading it into the work directory when it is remote.
    static func open(_ name: String, from storage: any StorageBackend, workDir: String?, environment: Environment)
        async throws -> LocalArchive
    {
        let compressor = try CompressorRegistry().compressor(named: "zstd", settings: CompressionSettings())
        let work = workDir ?? environment.variables["STACKVAULT_WORK_DIR"]
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("stackvault")
        return try await LocalArchive.open(name: name, storage: storage, workDirectory: work, compressor: compressor,
                                           identities: try environment.ageIdentities(), logger: environment.logger)
    }
}

enum VerifyRendering {
    struct Document: Encodable {
        struct Component: Encodable {
            var service: String
            var type: String
            var archivePath: String
            var kind: String
            var sizeBytes: Int64
            var entries: Int
            var digestOK: Bool
            var completeness: String?
        }

        var archive: String
        var origin: String
        var ok: Bool
        var stack: String?
        /// The host the manifest names (the one the archive was taken on).
        var host: String?
        var startedAt: Date?
        var components: [Component]
        var problems: [String]
        var notes: [String]
    }

    static func document(_ check: ArchiveCheck, archive: LocalArchive) -> Document {
        let results = Dictionary(check.report.components.map { ($0.archivePath, $0) }, uniquingKeysWith: { a, _ in a })
        let components = (check.report.manifest?.components ?? []).map { component in
            Document.Component(
                service: component.service, type: component.type, archivePath: component.archivePath,
                kind: component.kind.rawValue, sizeBytes: component.sizeBytes, entries: component.entries,
                digestOK: results[component.archivePath]?.ok ?? false,
                completeness: check.completeness[component.archivePath])
        }
        let notes = check.report.notes + check.unknownStrategies.keys.sorted().map {
            "the component '\($0)' comes from the strategy '\(check.unknownStrategies[$0]!)', which this stackvault "
                + "does not know: its completeness was not checked"
        }
        return Document(archive: archive.name, origin: archive.origin, ok: check.ok,
                        stack: check.report.manifest?.stack, host: check.report.manifest?.host, startedAt: check.report.manifest?.startedAt,
                        components: components, problems: check.problems, notes: notes)
    }

    static func json(_ check: ArchiveCheck, archive: LocalArchive) throws -> String {
        try prettyJSON(document(check, archive: archive))
    }

    static func text(_ check: ArchiveCheck, archive: LocalArchive) -> String {
        let document = document(check, archive: archive)
        var out = "Archive \(archive.name) (\(ByteCount(archive.sizeBytes)))\n  from \(archive.origin)\n"
        if check.envelope != nil {
            for note in document.notes { out += "note: \(note)\n" }
            if check.ok { return out + "PASSED (encryption envelope only): the age header parses and the file is complete.\n" }
            return out + "FAILED: the archive cannot be trusted:\n" + check.problems.map { "  - \($0)\n" }.joined()
        }
        if let manifest = check.report.manifest {
            out += "  stack \(manifest.stack), taken \(RestorePlan.format(manifest.startedAt)) on \(manifest.host)\n"
        } else {
            out += "  (no readable manifest)\n"
        }
        var rows = [["COMPONENT", "TYPE", "SIZE", "ENTRIES", "RESULT"]]
        for component in document.components {
            var result = component.digestOK ? "ok" : "MISMATCH"
            if component.digestOK, component.kind == "file", check.unknownStrategies[component.archivePath] == nil {
                result = component.completeness == nil ? "ok, complete dump" : "INCOMPLETE"
            }
            rows.append([component.archivePath, component.type, "\(ByteCount(component.sizeBytes))",
                         "\(component.entries)", result])
        }
        if rows.count > 1 { out += "\n" + Table.render(rows) }
        for note in document.notes { out += "note: \(note)\n" }
        if check.ok {
            out += "PASSED: the zstd stream, the tar structure and all \(document.components.count) component(s) "
                + "check out against the manifest.\n"
        } else {
            out += "FAILED: the archive cannot be trusted:\n"
            for problem in check.problems { out += "  - \(problem)\n" }
        }
        return out
    }
}

/// Pretty-printed JSON with sorted keys and ISO-8601 dates, as every command's `--json` prints it.
func prettyJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Plain-text tables: columns padded to their widest cell, two spaces apart.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }
}
