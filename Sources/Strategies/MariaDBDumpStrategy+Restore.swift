public import StackVaultCore

/// Restoring a `mariadb-dump --all-databases` dump: the server's databases are replaced by the dump's.
///
/// In the running container, as root with the container's own password: other clients' connections are closed,
/// every database except the system schemas (`mysql`, `information_schema`, `performance_schema`, `sys`) is
/// dropped, then the dump is replayed with
/// the `mariadb` client (it recreates its databases, tables, routines, events and triggers, and rewrites the
/// tables of the `mysql` schema it holds: user accounts, passwords and grants), then `FLUSH PRIVILEGES` makes
/// those accounts take effect at once. Databases created since the backup are lost. A client error stops the
/// replay and fails the restore with the client's message.
extension MariaDBDumpStrategy: RestoreStrategy {
    public func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String? {
        Self.dump.checkCompleteness(tail: tail)
    }

    public func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
        "replay \(component.archivePath) (\(ByteCount(component.sizeBytes))) with the mariadb client as root. "
            + "EXISTING DATA IS REPLACED: every database except mysql, information_schema, performance_schema and sys "
            + "is dropped (open connections are closed) and the dump recreates its databases, so databases created since the backup are lost; the "
            + "dump's user accounts, passwords and grants replace the server's and take effect at once (FLUSH "
            + "PRIVILEGES)."
    }

    public func restore(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext
    ) async throws {
        try await Self.dump.replay(component, into: container, context: context, client: "mariadb",
                                   script: Self.replay)
    }

    /// Logs in as root from the container's environment (as the dump script does), drops the non-system
    /// databases, replays the dump (`$1`), flushes privileges.
    static let replay = rootLogin + #"""
        client=mariadb; command -v mariadb >/dev/null 2>&1 || client=mysql
        # Close other clients' connections (best effort: one may end on its own meanwhile), so that no open
        # transaction holds up DROP DATABASE.
        kills="$("$client" --user=root -N -B -r -e "SELECT CONCAT('KILL CONNECTION ', id, ';')
            FROM information_schema.processlist WHERE id <> CONNECTION_ID()
            AND user NOT IN ('system user', 'event_scheduler') AND command NOT IN ('Daemon', 'Binlog Dump')")"
        if [ -n "$kills" ]; then printf '%s\n' "$kills" | "$client" --user=root --force >/dev/null 2>&1 || true; fi
        drops="$("$client" --user=root -N -B -r -e "SELECT CONCAT('DROP DATABASE \`',
            REPLACE(schema_name, '\`', '\`\`'), '\`;') FROM information_schema.schemata
            WHERE schema_name NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')")"
        if [ -n "$drops" ]; then printf '%s\n' "$drops" | "$client" --user=root; fi
        "$client" --user=root --default-character-set=utf8mb4 < "$1"
        "$client" --user=root -e 'FLUSH PRIVILEGES'
        """#
}
