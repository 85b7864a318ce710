import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault helper ...`: hidden commands the helper container runs (its image is StackVault's own), not meant
/// for people. No Docker, no logging set-up, no environment but `STACKVAULT_HELPER_TOKEN` (for `--connect`).
///
/// - `stackvault helper tar-create <dir> [--connect @name]`: writes the PAX tar of `<dir>` to stdout
///   (``DiskTarReader``): top entry `<basename of dir as given>/`, the rest below it, as Docker's archive API names
///   them. With `--connect` the tar goes to StackVault's side channel instead (an abstract Unix socket in the
///   network namespace the helper shares with StackVault; the first line sent is the token from
///   `STACKVAULT_HELPER_TOKEN`) and stdout stays empty; exit code 3 when that socket cannot be reached.
/// - `stackvault helper size <dir>`: measures `<dir>` (``DirectorySize``) for a copy's progress total; stdout
///   stays empty.
/// - `stackvault helper tar-extract <dir>`: reads such a tar from stdin and replaces the content of `<dir>` with
///   it (``DiskTarExtractor``: staged inside `<dir>`, swapped, old content removed; the top entry's name is
///   ignored and its metadata applied to `<dir>` itself).
///
/// `<dir>` may be a symlink to a directory: it is resolved (`realpath`) and the summary's `resolvedPath` says where
/// it led. stdout carries only tar bytes. On success: exit 0 and, as the last line on stderr, one line of JSON
/// (``DiskTarSummary``: `operation`, `path`, `resolvedPath`, `entries`, `dataBytes`, `tarBytes`,
/// `skippedSockets`, `skippedSocketPaths`, `skippedMountPoints`, `xattrs`, `aclEntries`, `sparseFiles`,
/// `hardlinks`, `warnings`, and for tar-extract `oldContentRemoved`, `leftover`). On failure: exit 1 and one line
/// `stackvault: <what failed, the path, what to do>` on stderr.
struct HelperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "helper",
        abstract: "Commands run inside StackVault's helper container.",
        shouldDisplay: false,
        subcommands: [TarCreateCommand.self, TarExtractCommand.self, SizeCommand.self]
    )
}

/// `stackvault helper size <dir>`: the size of a directory without reading its files (``DirectorySize``), for the
/// total of a copy's progress lines. Writes nothing to stdout; its summary has `entries` and `dataBytes`.
struct SizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "size",
        abstract: "Measures a directory (entries, bytes of regular files) without reading any file.",
        shouldDisplay: false
    )

    @Argument(help: "The directory (a symlink to one is resolved).")
    var directory: String

    func run() throws {
        try reportingSummary("size", directory) { try DirectorySize.measure(directory: directory) }
    }
}

/// `stackvault helper tar-create <dir> [--connect @name]`: the PAX tar of a directory to stdout or to StackVault's
/// side channel.
struct TarCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tar-create",
        abstract: "Writes a PAX tar of a directory to stdout (xattrs, ACLs, sparse files, hard links kept).",
        shouldDisplay: false
    )

    @Argument(help: "The directory (a symlink to one is resolved).")
    var directory: String

    @Option(help: ArgumentHelp(
        "Write the tar to StackVault's side channel (an abstract Unix socket, @name) instead of stdout, after the "
            + "token from \(HelperSideChannel.tokenVariable); exit code \(HelperSideChannel.unreachableExitCode) "
            + "when it cannot be reached."))
    var connect: String?

    func run() throws {
        signal(SIGPIPE, SIG_IGN)  // a reader that went away is a write error with a message, not a silent death
        guard let connect else {
            try reportingSummary("tar-create", directory) {
                try DiskTarReader.write(directory: directory, toFileDescriptor: STDOUT_FILENO,
                                        what: "standard output (the tar stream of '\(directory)')")
            }
            return
        }
        let token = ProcessInfo.processInfo.environment[HelperSideChannel.tokenVariable] ?? ""
        let fd: Int32
        do {
            fd = try HelperSideChannel.connect(to: connect, token: token)
        } catch {
            printError("helper tar-create \(directory): \(error)")
            throw ExitCode(HelperSideChannel.unreachableExitCode)
        }
        defer { close(fd) }
        try reportingSummary("tar-create", directory) {
            try DiskTarReader.write(directory: directory, toFileDescriptor: fd,
                                    what: "StackVault's side channel (the tar stream of '\(directory)')")
        }
    }
}

/// `stackvault helper tar-extract <dir>`: replaces a directory's content with the PAX tar on stdin.
struct TarExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tar-extract",
        abstract: "Replaces the content of a directory with the PAX tar read from stdin (staged, then swapped).",
        shouldDisplay: false
    )

    @Argument(help: "The directory to replace the content of (a symlink to one is resolved).")
    var directory: String

    func run() throws {
        try reportingSummary("tar-extract", directory) {
            try DiskTarExtractor.replaceContents(of: directory, from: STDIN_FILENO,
                                                 what: "the tar stream on standard input")
        }
    }
}

/// Runs a helper command's `body`: its summary as one JSON line on stderr, or its error as one `stackvault:` line
/// and exit code 1.
private func reportingSummary(_ command: String, _ directory: String, _ body: () throws -> DiskTarSummary) throws {
    let summary: DiskTarSummary
    do {
        summary = try body()
    } catch {
        printError("helper \(command) \(directory): \(error)")
        throw ExitCode(1)
    }
    FileHandle.standardError.write(Data((summary.jsonLine() + "\n").utf8))
}
