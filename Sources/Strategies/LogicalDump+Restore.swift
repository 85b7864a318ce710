public import StackVaultCore
import Foundation

/// What the dump strategies share for restoring: the completeness check of a dump, and the replay of a dump
/// file inside the running container.
///
/// Docker's exec stdin is a hijacked stream that libcurl cannot half-close, so a dump is never piped into the
/// client: it is uploaded as a file (`/tmp/stackvault-restore-<uuid>.sql`, mode 0600, owned by the exec user)
/// through the archive API, streamed from the archive; a `sh -c` script reads the credentials from the
/// container's own environment and runs the client on it; the file is removed on every path.
extension LogicalDump {
    /// nil when the last bytes of a dump hold the completion marker its tool writes last.
    public func checkCompleteness(tail: [UInt8]) -> String? {
        if String(decoding: tail.suffix(512), as: UTF8.self).contains(completionMarker) { return nil }
        return "does not end with '\(completionMarker)', as every complete \(tool) dump does: it is truncated"
    }

    /// Uploads `component` into the container and runs `script` with the file's path as `$1` and a fresh restore id
    /// (8 hex digits, for the names of what the script sets aside) as `$2`. `transform`, if given, rewrites the dump
    /// on the way without changing its length.
    ///
    /// The script follows the guarded-replay contract (`ReplayExit`): it checks the target and exits 10 with a
    /// `refused: <reason>` line before changing anything; once it changed something, a failure makes it undo its
    /// changes itself (inside the container, so a sidecar that dies meanwhile cannot leave the target half-done)
    /// and exit 11 (rolled back) or 12 (rollback incomplete). Lines `note: ...` on its standard output are logged.
    /// Errors carry the tail of the script's standard error, where the client's error is.
    ///
    /// Restore drills (issue #14) belong before the upload: a strategy that drills runs the drill first and only
    /// then calls `replay`, so a failed drill leaves the target untouched as a refusal does.
    public func replay(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext,
        client: String,
        script: String,
        transform: (@Sendable (any ByteSink) -> any DumpTransform)? = nil
    ) async throws {
        let shell = ContainerShell(docker: context.docker, container: container,
                                   place: Self.place(context, container))
        let archive = context.archive
        let path = component.archivePath
        let id = String(UUID().uuidString.lowercased().prefix(8))
        let outcome = try await shell.withTemporaryFile(size: component.sizeBytes, suffix: ".sql", content: { sink in
            guard let transform else { return try archive.readFile(path, into: sink) }
            let rewriting = transform(sink)
            try archive.readFile(path, into: rewriting)
            try rewriting.finish()
        }, body: { file in
            context.logger.info("\(context.service): replaying \(path) with \(client) in container \(container.name)")
            // The script removes its work directory (/tmp/stackvault-restore-<id>.d) itself on every exit.
            return try await shell.outcome(script, arguments: [file, id])
        })
        for line in outcome.stdout.split(whereSeparator: \.isNewline) where line.hasPrefix("note: ") {
            context.logger.notice("\(context.service): \(line.dropFirst("note: ".count))")
        }
        let what = "replaying \(path) with \(client) in \(shell.place)"
        switch ReplayExit(rawValue: outcome.exitCode) {
        case .done:
            for line in outcome.stderr.split(whereSeparator: \.isNewline) where line.hasPrefix("warning: ") {
                context.logger.warning("\(context.service): \(line.dropFirst("warning: ".count))")
            }
        case .refused:
            let reason = outcome.stderr.split(whereSeparator: \.isNewline).last { $0.hasPrefix("refused: ") }
                .map { String($0.dropFirst("refused: ".count)) } ?? outcome.stderr
            throw StackVaultError(.restoreFailed, "\(what): refused before anything was changed: \(reason)")
        case .rolledBack:
            throw StackVaultError(.restoreFailed, "\(what) failed; everything it changed was undone, the target "
                + "holds what it held before. The client's error output ends with:\n\(outcome.stderr)")
        case .rollbackIncomplete:
            throw StackVaultError(.restoreFailed, "\(what) failed AND undoing it failed: the target's own data is "
                + "set aside under names starting with svold_\(id)_ (see below). Error output ends with:\n"
                + outcome.stderr)
        case nil:
            throw StackVaultError(.restoreFailed, "\(what) failed with exit code \(outcome.exitCode)"
                + (outcome.stderr.isEmpty ? "" : ": \(outcome.stderr)"))
        }
    }

    static func place(_ context: RestoreContext, _ container: ContainerDetails) -> String {
        "service \(context.service) (container \(container.name)) of stack \(context.stack)"
    }
}

/// How a guarded replay script ends (see `LogicalDump.replay`).
public enum ReplayExit: Int, Sendable {
    /// Replayed; what was set aside is gone.
    case done = 0
    /// A check failed before anything changed.
    case refused = 10
    /// The replay failed and the script undid every change.
    case rolledBack = 11
    /// The replay failed and undoing it failed too.
    case rollbackIncomplete = 12
}

/// A length-preserving rewrite of a dump stream, flushed by `finish`.
public protocol DumpTransform: ByteSink {
    func finish() throws
}
