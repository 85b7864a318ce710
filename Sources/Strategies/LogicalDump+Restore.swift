public import StackVaultCore

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

    /// Uploads `component` into the container and runs `script` with the file's path as `$1`. `transform`, if
    /// given, rewrites the dump on the way without changing its length.
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
        try await shell.withTemporaryFile(size: component.sizeBytes, suffix: ".sql", content: { sink in
            guard let transform else { return try archive.readFile(path, into: sink) }
            let rewriting = transform(sink)
            try archive.readFile(path, into: rewriting)
            try rewriting.finish()
        }, body: { file in
            context.logger.info("\(context.service): replaying \(path) with \(client) in container \(container.name)")
            try await shell.run(script, arguments: [file], what: "replaying \(path) with \(client)")
        })
    }

    static func place(_ context: RestoreContext, _ container: ContainerDetails) -> String {
        "service \(context.service) (container \(container.name)) of stack \(context.stack)"
    }
}

/// A length-preserving rewrite of a dump stream, flushed by `finish`.
public protocol DumpTransform: ByteSink {
    func finish() throws
}
