public import Logging

/// One thing to back up for one service: a database dump or a directory, and where it goes in the archive.
public struct ComponentSpec: Sendable, Hashable, Codable {
    /// The strategy's type name, e.g. `pg_dumpall`, `mariadb-dump`, `volume-path`.
    public var type: String
    /// For directories: the label's `<name>`.
    public var name: String?
    /// For directories: the absolute path inside the container.
    public var path: String?
    /// For directories whose `path` is a symbolic link: the directory it resolves to in the container (set by
    /// the planner, which looks the path up).
    public var resolvedPath: String? = nil
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

    /// The directory to read for a `path` component: the resolved one when the path is a symbolic link.
    public static func directory(of component: ComponentSpec) -> String? { component.resolvedPath ?? component.path }

    public init(docker: any DockerEngine, logger: Logger, stack: String, service: String) {
        self.docker = docker
        self.logger = logger
        self.stack = stack
        self.service = service
    }
}

/// What a strategy can use while it restores one component.
public struct RestoreContext: Sendable {
    public var docker: any DockerEngine
    public var logger: Logger
    /// The stack and service restored into (they differ from the archive's when mapped elsewhere).
    public var stack: String
    public var service: String
    /// The verified archive the component comes from.
    public var archive: any RestoreSource

    public init(docker: any DockerEngine, logger: Logger, stack: String, service: String, archive: any RestoreSource) {
        self.docker = docker
        self.logger = logger
        self.stack = stack
        self.service = service
        self.archive = archive
    }
}

/// A way of backing up part of a container, selected by a label key.
///
/// Implementations are registered in `BuiltinStrategies.all` (one line each) and pass
/// `StrategyConformance` (StackVaultTestKit). An implementation must guarantee:
/// - `plan` never touches the host: it only reads the label and the container's inspected details, and throws a
///   `PlanProblem` that names the label or variable at fault;
/// - every component `plan` returns has an `archivePath` under the service's folder (`<service>/...`), and
///   `type` is the strategy's own `type`;
/// - `backup` writes exactly the component it is given, at its `archivePath`, streaming: memory stays bounded
///   whatever the size; a `.running` strategy writes one file, a `.stopped` one a directory tree;
/// - no secret appears in a process's arguments, in a log line or in an error message;
/// - a failure (non-zero exit, empty or truncated output) throws with the tool's own error text, so the
///   archive is never presented as good;
/// - anything it leaves in the container (temporary files, helper containers) is removed on every path, errors
///   and cancellation included;
/// - `checkCompleteness` accepts what its own `backup` wrote.
///
/// A strategy that can also put its components back adopts `RestoreStrategy`.
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

    /// Checks how a `.file` component of this strategy ends, from its last bytes (up to
    /// `RestoreLimits.completenessTailBytes`): nil when it ends the way a complete one does, else the problem.
    /// `verify` and `restore` refuse an archive with such a problem. Default: no check (nil).
    func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String?

    /// A cheap estimate of the content bytes `backup` will write for `component` (the unit of the manifest's
    /// `sizeBytes`), taken before the stack's containers stop: the total of the progress lines, shown as an
    /// estimate. Reads no data; nil when there is none to be had cheaply. Default: nil.
    func estimateSize(_ component: ComponentSpec, container: ContainerDetails, context: BackupContext) async -> Int64?
}

/// A backup strategy that can also put its components back into a container. `restore` refuses an archive with a
/// component whose strategy does not adopt this protocol, before touching anything.
///
/// An implementation must guarantee:
/// - `restore` is only called with a component of an archive that passed verification in full (zstd stream, tar
///   structure, every digest, and `checkCompleteness`), so it never has to defend against a damaged archive;
/// - it reads the component only through `RestoreContext.archive` and writes into the container only through
///   the Docker Engine API (exec, archive upload), never through host paths;
/// - it runs in the container state `restoreRequirement` names: `.running` strategies get a running container,
///   `.stopped` ones a stopped container that the engine starts again afterwards, on every path;
/// - `checkRestore` throws (naming why) for every component `restore` would refuse, and touches nothing;
/// - `describeRestore` says exactly what `restore` will do to the container, including what happens to data
///   that is there already; `restore --dry-run` prints it and changes nothing;
/// - the same component restored twice leaves the same result (existing data is replaced, not merged);
/// - a failing `restore` never leaves the container with less than it had: it refuses before its first change
///   (naming why), or undoes what it changed (database replays set the existing databases aside and put them back,
///   `LogicalDump.replay`), or keeps the old data intact until a last swap (directories, `DirectoryReplacement`).
public protocol RestoreStrategy: BackupStrategy {
    /// Whether the container runs (logical replays through exec) or is stopped (files) while `restore` writes.
    /// Default: `requirement`.
    var restoreRequirement: ContainerRequirement { get }

    /// Throws when `component` cannot be restored into `container` as it is (naming why), before anything is
    /// touched; `restore` plans with it. Default: accepts everything.
    func checkRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) throws

    /// One or more sentences for `restore --dry-run` and the confirmation prompt: what `restore` would do to
    /// `container`, and what happens to the data already there.
    func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String

    /// Puts `component` back into `container`, replacing what is there (see `describeRestore`).
    func restore(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext
    ) async throws
}

/// Sizes shared by restore and verification.
public enum RestoreLimits {
    /// How many last bytes of a `.file` component `checkCompleteness` sees.
    public static let completenessTailBytes = 4096
}

extension BackupStrategy {
    public var matchesKeyPrefix: Bool { false }

    public func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String? { nil }

    public func estimateSize(_ component: ComponentSpec, container: ContainerDetails, context: BackupContext) async
        -> Int64?
    {
        nil
    }

    /// True when `key` selects this strategy.
    public func matches(labelKey key: String) -> Bool {
        matchesKeyPrefix ? key.hasPrefix(labelKey) && key.count > labelKey.count : key == labelKey
    }
}

extension RestoreStrategy {
    public var restoreRequirement: ContainerRequirement { requirement }

    public func checkRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) throws {}
}

/// A label or environment problem found while planning, naming its culprit.
public struct PlanProblem: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
