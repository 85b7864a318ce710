public import Logging
import Foundation

extension StackVaultError.Code {
    /// Putting a backup back into a container failed.
    public static let restoreFailed = StackVaultError.Code(raw: "restore-failed")
}

/// Replaces the content of a directory of a *stopped* container with a tree component of a verified archive,
/// through the Docker Engine API only (never host paths): afterwards the directory holds exactly the archived
/// entries, with their modes, owners, times and links; whatever else was in it is gone.
///
/// The method is chosen from the container's mounts:
/// - the directory is on a volume or bind mount (the usual case) and a helper image can be had (`HelperImage`):
///   a helper container with the target's mounts read-write runs `stackvault helper tar-extract <dir>`, the
///   archive's tree streamed to its stdin (`DirectoryHelper`): libarchive stages the tree inside the directory,
///   swaps it in and removes the old content, restoring xattrs, ACLs, holes, owners, modes and times; until the
///   swap the old content is intact. The target's image needs nothing (no shell).
/// - the same without a helper image (fallback, with a warning: the archive API loses xattrs, ACLs and holes):
///   Docker's archive upload only adds and overwrites, so the tree is first uploaded beside the old
///   content, into a hidden staging directory inside it (same file system); a short-lived helper container made
///   from the container's own image, with `--volumes-from` it, no network, as root, then deletes the old entries
///   and renames the staged ones into place; a last upload sets the directory's own mode, owner and times. Until
///   the rename step the old content is intact, so a failed transfer loses nothing (the staging directory is
///   removed). Needs room for both copies for a moment, and `sh`, `rm`, `mv` in the image.
/// - the directory is in the container's own writable layer (no mount): one upload into its parent replaces the
///   directory as a whole (an empty file entry of the same name makes Docker remove the old directory first).
///   A transfer that fails half-way leaves the directory partly restored: run the restore again.
/// A directory that contains another mount point below it, or lies on a tmpfs, is refused before anything changes.
public struct DirectoryReplacement: Sendable {
    /// How the old content is removed.
    public enum Method: Sendable, Equatable {
        /// Stage beside the old content, swap in a helper container; `mount` is the covering mount's destination.
        case helperContainer(mount: String)
        /// Replace the directory in the container's writable layer with one upload into its parent.
        case writableLayer
    }

    /// Label put on helper containers, with the name of the container they serve (the same as `DirectoryHelper`'s).
    public static let helperLabel = HelperImage.containerLabel

    public let docker: any DockerEngine
    public let container: ContainerDetails
    /// The absolute, normalized directory in the container.
    public let path: String
    /// The tree component of the archive.
    public let archivePath: String
    public let source: any RestoreSource
    public let logger: Logger
    /// For messages: `service files (container app_files_1) of stack app`.
    public let place: String

    public init(
        docker: any DockerEngine,
        container: ContainerDetails,
        path: String,
        archivePath: String,
        source: any RestoreSource,
        logger: Logger,
        place: String
    ) {
        self.docker = docker
        self.container = container
        self.path = path
        self.archivePath = archivePath
        self.source = source
        self.logger = logger
        self.place = place
    }

    /// The method for `path` given the container's mounts; throws for layouts that cannot be replaced safely.
    public static func method(for path: String, mounts: [ContainerMount], dockerFiles: [String] = []) throws
        -> Method
    {
        let isBelow = ContainerMount.isPath(_:below:)
        let inside = ContainerDetails.mountPoints(below: path, mounts: mounts, dockerFiles: dockerFiles)
        if let nested = inside.first {
            throw StackVaultError(
                .restoreFailed,
                "\(path) contains the mount point \(nested.path) (\(nested.what)): replacing \(path) would have to "
                    + "remove a mount point, so nothing was changed; label directories that contain no mount point")
        }
        let covering = mounts.filter { $0.destination == path || isBelow(path, $0.destination) }
            .max { $0.destination.count < $1.destination.count }
        guard let covering else { return .writableLayer }
        guard covering.type != "tmpfs" else {
            throw StackVaultError(
                .restoreFailed,
                "\(path) is on the tmpfs mount \(covering.destination), whose content does not outlive the container's "
                    + "stop; there is nothing to restore it into")
        }
        return .helperContainer(mount: covering.destination)
    }

    /// Replaces the directory. The container must be stopped.
    public func run() async throws {
        let method = try Self.method(for: path, mounts: container.mounts, dockerFiles: container.dockerFiles)
        let parent = (path as NSString).deletingLastPathComponent
        let top = (path as NSString).lastPathComponent
        switch method {
        case .writableLayer:
            logger.info("\(place): replacing \(path) (in the container's own layer) with \(archivePath)")
            try await upload(into: parent.isEmpty ? "/" : parent, top: top, layout: .replacingTop)
        case .helperContainer:
            let image = await docker.helperImage(build: true)
            switch DirectoryCopy.choose(path: path, mounts: container.mounts, helper: image) {
            case .helper(let image):
                try await replaceWithStackVaultTar(image, top: top)
            case .archiveAPI(let why):
                logger.warning("\(place): \(why)")
                try await replaceThroughHelper(parent: parent.isEmpty ? "/" : parent, top: top)
            }
        }
    }

    /// Streams the tree into `stackvault helper tar-extract` in a helper container (see `DirectoryHelper`).
    private func replaceWithStackVaultTar(_ image: HelperImage, top: String) async throws {
        logger.info("\(place): replacing \(path) with \(archivePath) through a helper container (\(image))")
        let source = self.source
        let archivePath = self.archivePath
        let writer = DirectoryHelper(docker: docker, image: image, container: container, place: place)
        let summary = try await writer.write(path) { sink in
            try source.writeTree(archivePath, as: top, layout: .wholeKeepingHoles, into: sink)
        }
        for warning in summary.warnings { logger.warning("\(place): \(path): \(warning)") }
    }

    private func replaceThroughHelper(parent: String, top: String) async throws {
        let stage = DiskTar.ScratchPrefix.archiveAPIStage + UUID().uuidString.prefix(8).lowercased()
        logger.info("\(place): replacing \(path) with \(archivePath) (staged in \(path)/\(stage))")
        try await withHelper { helper in
            do {
                try await upload(into: path, top: stage, layout: .whole)
            } catch {
                // The old content is untouched: drop the (possibly partial) staged copy.
                _ = try? await helper.outcome(#"rm -rf -- "$1/$2""#, arguments: [path, stage])
                throw error
            }
            let swap = try await helper.outcome(Self.swapScript, arguments: [path, stage])
            guard swap.exitCode == 0 else {
                throw StackVaultError(
                    .restoreFailed,
                    "replacing the content of \(path) in \(place) with the staged copy failed (exit code "
                        + "\(swap.exitCode)): \(swap.stderr); the archive's copy is kept in \(path)/\(stage) "
                        + "(move its content into \(path) by hand, or run the restore again)")
            }
            try await upload(into: parent, top: top, layout: .topOnly)
        }
    }

    /// Deletes every entry of `$1` but the staging directory `$2`, then moves the staged entries up.
    static let swapScript = #"""
        set -eu
        cd "$1"
        [ -d "$2" ] || { echo "the staged copy $1/$2 is not visible in the helper container" >&2; exit 3; }
        for entry in * .[!.]* ..?*; do
          if [ -e "$entry" ] || [ -L "$entry" ]; then [ "$entry" = "$2" ] || rm -rf -- "$entry"; fi
        done
        for entry in "$2"/* "$2"/.[!.]* "$2"/..?*; do
          if [ -e "$entry" ] || [ -L "$entry" ]; then mv -- "$entry" ./; fi
        done
        rmdir -- "$2"
        """#

    /// Uploads the tree, its top entry named `top`, into the directory `directory` of the container.
    private func upload(into directory: String, top: String, layout: TreeTarLayout) async throws {
        let source = self.source
        let archivePath = self.archivePath
        try await docker.putArchive(to: container.id, path: directory) { sink in
            try source.writeTree(archivePath, as: top, layout: layout, into: sink)
        }
    }

    /// Runs `body` with a helper container (the target's image, its volumes, no network, root) that is removed
    /// afterwards on every path, cancellation included.
    private func withHelper(_ body: (ContainerShell) async throws -> Void) async throws {
        let spec = ContainerCreateSpec(
            name: "stackvault-restore-helper-\(UUID().uuidString.prefix(8).lowercased())",
            image: container.image, entrypoint: ["sh", "-c", "read -r _"], user: "0",
            labels: [Self.helperLabel: container.name], volumesFrom: [container.id], networkDisabled: true,
            openStdin: true)
        let id: String
        do {
            id = try await docker.createContainer(spec)
        } catch {
            throw StackVaultError(
                .restoreFailed,
                "restoring \(path) in \(place) needs a helper container made from its image \(container.image), "
                    + "which Docker could not create", cause: error)
        }
        let docker = self.docker
        let remove: @Sendable () async -> Void = { try? await docker.removeContainer(id, force: true) }
        do {
            do {
                try await docker.startContainer(id)
            } catch {
                throw StackVaultError(
                    .restoreFailed,
                    "restoring \(path) in \(place) needs a helper container from its image \(container.image) with "
                        + "a POSIX shell (sh, rm, mv); it did not start", cause: error)
            }
            let helper = ContainerShell(
                docker: docker,
                container: ContainerDetails(id: id, name: spec.name ?? id, image: spec.image, isRunning: true,
                                            labels: spec.labels, environment: [:]),
                place: "the helper container for \(place)")
            try await body(helper)
            await Task.detached(operation: remove).value
        } catch {
            await Task.detached(operation: remove).value
            throw error
        }
    }
}
