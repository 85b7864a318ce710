public import StackVaultCore

/// `backup.database.pg_dumpall=true`: a logical dump of the whole PostgreSQL cluster, taken in the running
/// container as POSTGRES_USER (default `postgres`) with POSTGRES_PASSWORD or the file POSTGRES_PASSWORD_FILE names.
public struct PgDumpAllStrategy: BackupStrategy {
    public let type = "pg_dumpall"
    public let labelKey = "backup.database.pg_dumpall"
    public let requirement = ContainerRequirement.running

    /// Sets PGPASSWORD from the container's environment (never an argument): the start of the dump script and of
    /// the restore's.
    static let passwordLogin = #"""
        set -e
        if [ -n "${POSTGRES_PASSWORD:-}" ]; then PGPASSWORD="$POSTGRES_PASSWORD"
        else PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; fi
        export PGPASSWORD

        """#

    static let dump = LogicalDump(
        tool: "pg_dumpall",
        script: passwordLogin + #"""
            exec pg_dumpall --no-password --username="${POSTGRES_USER:-postgres}"
            """#,
        completionMarker: "PostgreSQL database cluster dump complete", dialect: .postgres
    )

    public init() {}

    public func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec] {
        guard try LogicalDump.isEnabled(label) else { return [] }
        guard LogicalDump.hasAny(["POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE"], in: container) else {
            throw PlanProblem("\(label.key)=true but the container's environment has neither POSTGRES_PASSWORD "
                + "nor POSTGRES_PASSWORD_FILE, so pg_dumpall cannot log in")
        }
        return [ComponentSpec(type: type, archivePath: "\(service)/database/pg_dumpall.sql")]
    }

    public func backup(
        _ component: ComponentSpec,
        container: ContainerDetails,
        context: BackupContext,
        into archive: any ArchiveSink
    ) async throws -> ComponentRecord {
        try await Self.dump.run(component, container: container, context: context, into: archive)
    }
}
