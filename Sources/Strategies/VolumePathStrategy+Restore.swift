public import StackVaultCore

/// Restoring a directory: while the container is stopped, the content of the backed-up path is replaced by the
/// archive's, through the Docker Engine API (see `DirectoryReplacement` for how, and its limits).
extension VolumePathStrategy: RestoreStrategy {
    public func checkRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) throws {
        guard let path = Self.directory(of: component), path.hasPrefix("/"), path != "/",
            !path.split(separator: "/").contains("..")
        else {
            throw StackVaultError(.restoreFailed, "the archive does not say which directory \(component.archivePath) "
                + "came from (sourcePath '\(component.sourcePath ?? "")')")
        }
        _ = try DirectoryReplacement.method(for: path, mounts: container.mounts, dockerFiles: container.dockerFiles)
    }

    /// The directory restored into: the one the label's path resolved to when it was a symbolic link (the link
    /// itself is left as it is), else the label's path.
    static func directory(of component: Manifest.ManifestComponent) -> String? {
        component.resolvedPath ?? component.sourcePath
    }

    public func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
        let path = Self.directory(of: component) ?? "?"
        let how: String
        switch Result(catching: { try DirectoryReplacement.method(for: path, mounts: container.mounts, dockerFiles: container.dockerFiles) }) {
        case .success(.helperContainer(let mount)):
            how = "It is on the mount \(mount): a helper container (StackVault's own tar, no network, removed "
                + "afterwards) stages the archive's copy inside it and swaps it in; xattrs, ACLs and holes are restored."
        case .success(.writableLayer):
            how = "It is in the container's own layer (no mount): one upload replaces the directory."
        case .failure(let error):
            how = "REFUSED: \(error)"
        }
        return "replace the content of \(path) with \(component.archivePath) (\(component.entries) entries, "
            + "\(ByteCount(component.sizeBytes))). EXISTING DATA IS REPLACED: files that are not in the archive are "
            + "deleted; modes, owners, times and links are set as archived. \(how)"
    }

    public func restore(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext
    ) async throws {
        try checkRestore(component, into: container)
        let path = Self.directory(of: component) ?? ""
        guard !container.isRunning else {
            throw StackVaultError(.restoreFailed, "container \(container.name) runs; directories are only restored "
                + "into stopped containers")
        }
        try await DirectoryReplacement(
            docker: context.docker, container: container, path: path, archivePath: component.archivePath,
            source: context.archive, logger: context.logger,
            place: LogicalDump.place(context, container)
        ).run()
    }
}
