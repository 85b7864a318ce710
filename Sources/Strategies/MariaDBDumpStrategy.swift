public import StackVaultCore

/// `backup.database.mariadb-dump=true`: `mariadb-dump --all-databases` in the running container, as root with
/// MARIADB_ROOT_PASSWORD or MYSQL_ROOT_PASSWORD (or their `_FILE` forms).
///
/// MYSQL_USER / MARIADB_USER is deliberately not used: in the official image it is an application user whose
/// password is MYSQL_PASSWORD, and an all-databases dump needs root.
public struct MariaDBDumpStrategy: BackupStrategy {
    public let type = "mariadb-dump"
    public let labelKey = "backup.database.mariadb-dump"
    public let requirement = ContainerRequirement.running

    static let passwordVariables = [
        "MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD_FILE", "MYSQL_ROOT_PASSWORD_FILE",
    ]

    /// Sets MYSQL_PWD to root's password from the container's environment (never an argument): the start of the
    /// dump script and of the restore's.
    static let rootLogin = #"""
        set -e
        pw="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
        if [ -z "$pw" ]; then pw="$(cat "${MARIADB_ROOT_PASSWORD_FILE:-$MYSQL_ROOT_PASSWORD_FILE}")"; fi
        MYSQL_PWD="$pw"; export MYSQL_PWD; unset pw

        """#

    static let dump = LogicalDump(
        tool: "mariadb-dump",
        script: rootLogin + #"""
            dump=mariadb-dump; command -v mariadb-dump >/dev/null 2>&1 || dump=mysqldump
            exec "$dump" --user=root --max-allowed-packet=1G --all-databases --single-transaction \
                --routines --events --triggers \
                --hex-blob --default-character-set=utf8mb4
            """#,
        completionMarker: "-- Dump completed", dialect: .mariadb,
        diagnose: { error in
            let lower = error.lowercased()
            guard ["max_allowed_packet", "lost connection", "gone away", "packet bigger", "packet too large"]
                .contains(where: lower.contains) else { return nil }
            return "this is how MariaDB reports a row larger than a packet limit: the dump client already runs with "
                + "--max-allowed-packet=1G, so the limit is the server's max_allowed_packet (SELECT "
                + "@@global.max_allowed_packet): raise it in the server's configuration (up to 1G) above the "
                + "largest row"
        }
    )

    public init() {}

    public func plan(label: BackupLabel, service: String, container: ContainerDetails) throws -> [ComponentSpec] {
        guard try LogicalDump.isEnabled(label) else { return [] }
        guard LogicalDump.hasAny(Self.passwordVariables, in: container) else {
            throw PlanProblem("\(label.key)=true but the container's environment has none of "
                + "\(Self.passwordVariables.joined(separator: ", ")), so mariadb-dump cannot log in as root")
        }
        return [ComponentSpec(type: type, archivePath: "\(service)/mariadb_dump/all_databases.sql")]
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
