public import StackVaultCore

/// `backup.volume-path.<name>=/path`: the directory `/path` of the container, copied through the Engine's archive
/// API while the container is stopped, into `{service}/volumes/<name>/`.
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

    public func backup(
        _ component: ComponentSpec,
        container: ContainerDetails,
        context: BackupContext,
        into archive: any ArchiveSink
    ) async throws -> ComponentRecord {
        guard let path = component.path else {
            throw StackVaultError(.invalidLabel, "volume-path component \(component.archivePath) has no path")
        }
        return try await archive.addTar(at: component.archivePath) { sink in
            try await context.docker.getArchive(from: container.id, path: path, into: sink)
        }
    }
}

import Foundation
