public import StackVaultCore

/// `backup.volume-path.<name>=/path`: the directory `/path` of the container (the directory it leads to when it
/// is a symbolic link), copied while the container is stopped into `{service}/volumes/<name>/`.
///
/// On a volume or bind mount the copy is made by a helper container running StackVault's own tar
/// (`DirectoryHelper`: xattrs, ACLs, sparse files, hard links kept); in the container's own layer, or when no
/// helper image can be had, through the Engine's archive API, with a warning that says what that loses.
public struct VolumePathStrategy: BackupStrategy {
    public let type = "volume-path"
    public let labelKey = "backup.volume-path."
    public let matchesKeyPrefix = true
    public let requirement = ContainerRequirement.stopped

    public init() {}

    public func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec] {
        let name = String(label.key.dropFirst(labelKey.count))
        let allowed = name.unicodeScalars.allSatisfy {
            ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars
                .contains($0)
        }
        guard allowed, !name.isEmpty, name != ".", name != ".." else {
            throw PlanProblem("label \(label.key): the name '\(name)' may only use letters, digits, '.', '_' and '-'")
        }
        let path = label.value.trimmingCharacters(in: .whitespaces)
        guard path.hasPrefix("/") else {
            throw PlanProblem("label \(label.key)=\(label.value): the path must be absolute (start with /)")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.contains("..") else {
            throw PlanProblem("label \(label.key)=\(label.value): the path must not contain '..'")
        }
        guard !parts.isEmpty else {
            throw PlanProblem("label \(label.key)=\(label.value): the container's root is not a data directory; "
                + "name the directory to copy")
        }
        let normalized = "/" + parts.filter { $0 != "." }.joined(separator: "/")
        return [ComponentSpec(type: type, name: name, path: normalized, archivePath: "\(service)/volumes/\(name)")]
    }

    /// The directory's size from a helper container (`stackvault helper size`: one `fstatat` per entry, no data
    /// read), while the container still runs; nil in the container's own layer or without a helper image, or when
    /// measuring fails (the copy then shows no total).
    public func estimateSize(_ component: ComponentSpec, container: ContainerDetails, context: BackupContext) async
        -> Int64?
    {
        guard let path = BackupContext.directory(of: component) else { return nil }
        let helper = await context.docker.helperImage(build: true)
        guard case .helper(let image) = DirectoryCopy.choose(path: path, mounts: container.mounts, helper: helper)
        else { return nil }
        let place = "service \(context.service) (container \(container.name)) of stack \(context.stack)"
        do {
            return try await DirectoryHelper(docker: context.docker, image: image, container: container, place: place)
                .size(path).dataBytes
        } catch {
            context.logger.debug("\(place): measuring \(path) for the progress lines failed: \(error)")
            return nil
        }
    }

    public func backup(
        _ component: ComponentSpec,
        container: ContainerDetails,
        context: BackupContext,
        into archive: any ArchiveSink
    ) async throws -> ComponentRecord {
        guard let path = BackupContext.directory(of: component) else {
            throw StackVaultError(.invalidLabel, "volume-path component \(component.archivePath) has no path")
        }
        let place = "service \(context.service) (container \(container.name)) of stack \(context.stack)"
        let helper = await context.docker.helperImage(build: true)
        switch DirectoryCopy.choose(path: path, mounts: container.mounts, helper: helper) {
        case .archiveAPI(let why):
            context.logger.warning("\(place): \(why)")
            return try await archive.addTar(at: component.archivePath) { sink in
                try await context.docker.getArchive(from: container.id, path: path, into: sink)
            }
        case .helper(let image):
            let reader = DirectoryHelper(docker: context.docker, image: image, container: container, place: place)
            var summary: DirectoryHelper.Summary?
            let record = try await archive.addTar(at: component.archivePath) { sink in
                summary = try await reader.read(path, into: sink)
            }
            if let reason = summary?.attachReason {
                let message = "\(place): \(path) was copied through Docker's attach stream, not the side channel: "
                    + reason
                context.logger.info("\(message)")
            }
            if let summary, summary.skippedSockets > 0 {
                let message = "\(place): \(summary.skippedSockets) socket(s) in \(path) were left out (a socket "
                    + "cannot be archived; the program that made it makes it again): "
                    + summary.skippedSocketPaths.prefix(5).joined(separator: ", ")
                context.logger.warning("\(message)")
            }
            for warning in summary?.warnings ?? [] { context.logger.warning("\(place): \(path): \(warning)") }
            return record
        }
    }
}

import Foundation
