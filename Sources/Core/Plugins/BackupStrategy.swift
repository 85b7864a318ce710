public import Logging

/// One thing to back up for one service: a database dump or a directory, and where it goes in the archive.
public struct ComponentSpec: Sendable, Hashable, Codable {
    /// The strategy's type name, e.g. `pg_dumpall`, `mariadb-dump`, `volume-path`.
    public var type: String
    /// For directories: the label's `<name>`.
    public var name: String?
    /// For directories: the absolute path inside the container.
    public var path: String?
    /// Where the component lives in the archive: a file (`db/database/pg_dumpall.sql`) or a directory root
    /// (`files/volumes/data`).
    public var archivePath: String

    public init(type: String, name: String? = nil, path: String? = nil, archivePath: String) {
        self.type = type
        self.name = name
        self.path = path
        self.archivePath = archivePath
    }
}

/// What a strategy needs from its container while it runs; declared, not assumed.
public enum ContainerRequirement: String, Sendable, Codable {
    /// The database must answer: the container keeps running (logical dumps).
    case running
    /// The files must be still: the container is stopped while they are read (directory copies).
    case stopped
}

/// A label as found on a container.
public struct BackupLabel: Sendable, Hashable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// What a strategy can use while it runs.
public struct BackupContext: Sendable {
    public var docker: any DockerEngine
    public var logger: Logger
    public var stack: String
    public var service: String

    public init(docker: any DockerEngine, logger: Logger, stack: String, service: String) {
        self.docker = docker
        self.logger = logger
        self.stack = stack
        self.service = service
    }
}

/// A way of backing up part of a container, selected by a label key.
///
/// Implementations are registered in `BuiltinStrategies.all` (one line each). An implementation must guarantee:
/// - `plan` never touches the host: it only reads the label and the container's inspected details, and throws a
///   `PlanProblem` that names the label or variable at fault;
/// - `backup` writes exactly the components `plan` returned, streaming: memory stays bounded whatever the size;
/// - no secret appears in a process's arguments, in a log line or in an error message;
/// - a failure (non-zero exit, empty or truncated output) throws with the tool's own error text, so the
///   archive is never presented as good;
/// - anything it leaves in the container (temporary files) is removed on every path, errors included.
public protocol BackupStrategy: Sendable {
    /// The type name used in plans and manifests (`pg_dumpall`).
    var type: String { get }
    /// The label key that selects the strategy (`backup.database.pg_dumpall`). When `matchesKeyPrefix` is true,
    /// every key that starts with it selects it (`backup.volume-path.` + `<name>`).
    var labelKey: String { get }
    var matchesKeyPrefix: Bool { get }
    /// Whether the container runs or is stopped while this strategy reads it.
    var requirement: ContainerRequirement { get }

    /// Turns one label of a container into components (none when the label's value disables it).
    func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec]

    /// Writes `component` into `archive`.
    func backup(
        _ component: ComponentSpec,
        container: ContainerDetails,
        context: BackupContext,
        into archive: any ArchiveSink
    ) async throws -> ComponentRecord
}

extension BackupStrategy {
    public var matchesKeyPrefix: Bool { false }

    /// True when `key` selects this strategy.
    public func matches(labelKey key: String) -> Bool {
        matchesKeyPrefix ? key.hasPrefix(labelKey) && key.count > labelKey.count : key == labelKey
    }
}

/// A label or environment problem found while planning, naming its culprit.
public struct PlanProblem: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
