public import StackVaultCore

/// Restoring a `pg_dumpall` dump: the cluster is replaced by the dump's.
///
/// In the running container, as POSTGRES_USER with the container's own password:
/// 1. every database but `template0` is dropped (open connections are terminated first), and `postgres` and
///    `template1` are recreated empty from `template0`; databases that are not in the dump are gone afterwards,
///    as files that are not in an archive are;
/// 2. the dump is replayed with `psql -v ON_ERROR_STOP=1`: it recreates its databases and their content; roles in
///    the dump are created when missing and get the dump's attributes and passwords, except the role StackVault
///    logs in as, which keeps its own (so the container's credentials keep working); other roles are kept.
///
/// A plain `pg_dumpall` replay into a server that has the databases fails on `CREATE DATABASE`, and on
/// `CREATE ROLE` for every role that exists: hence step 1, and the `CREATE ROLE` lines of existing roles (and the
/// login role's `ALTER ROLE ... WITH` line) are turned into SQL comments on the way, keeping the file's length.
/// Any other error stops the replay and fails the restore with psql's message.
extension PgDumpAllStrategy: RestoreStrategy {
    public func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String? {
        Self.dump.checkCompleteness(tail: tail)
    }

    public func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
        let user = container.environment["POSTGRES_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        return "replay \(component.archivePath) (\(ByteCount(component.sizeBytes))) with psql as \(user). "
            + "EXISTING DATA IS REPLACED: every database except template0 is dropped (open connections are "
            + "terminated) and the dump recreates its databases, so databases created since the backup are lost. "
            + "Roles in the dump get its attributes and passwords, except \(user), which keeps its own; other roles "
            + "are kept."
    }

    public func restore(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext
    ) async throws {
        let shell = ContainerShell(docker: context.docker, container: container,
                                   place: LogicalDump.place(context, container))
        let listing = try await shell.run(Self.login + Self.listRoles, what: "listing the roles with psql")
        var existing: Set<String> = []
        var current: String?
        for line in listing.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("current ") { current = String(line.dropFirst("current ".count)) }
            if let space = line.firstIndex(of: " ") { existing.insert(String(line[line.index(after: space)...])) }
        }
        guard let current else {
            throw StackVaultError(.restoreFailed, "psql did not name the login role in \(shell.place)")
        }
        let roles = existing
        try await Self.dump.replay(component, into: container, context: context, client: "psql",
                                   script: Self.login + Self.replay) { sink in
            RoleStatementFilter(downstream: sink, existingRoles: roles, loginRole: current)
        }
    }

    /// Sets PGPASSWORD from the container's environment as the dump script does, and defines `sql`.
    static let login = passwordLogin + #"""
        export PGOPTIONS='-c client_min_messages=warning'
        sql() { psql -X -q --no-password -v ON_ERROR_STOP=1 --username="${POSTGRES_USER:-postgres}" "$@"; }

        """#

    /// Prints `current <role>` for the login role and `role <role>` for the others, quoted as pg_dumpall quotes.
    static let listRoles = #"""
        sql -A -t --dbname=template1 -c "SELECT CASE WHEN rolname = current_user THEN 'current ' ELSE 'role ' END
            || quote_ident(rolname) FROM pg_roles WHERE rolname !~ '^pg_'"
        """#

    /// Drops every database but template0, recreates postgres and template1 empty, replays the dump (`$1`).
    static let replay = #"""
        sql --dbname=template1 <<'SQL'
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND datname IS NOT NULL AND datname <> 'template1';
        SELECT format('DROP DATABASE %I%s', datname,
                      CASE WHEN current_setting('server_version_num')::int >= 130000 THEN ' WITH (FORCE)' ELSE '' END)
            FROM pg_database WHERE datname NOT IN ('template0', 'template1') \gexec
        CREATE DATABASE postgres TEMPLATE template0;
        SQL
        sql --dbname=postgres <<'SQL'
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = 'template1';
        ALTER DATABASE template1 WITH IS_TEMPLATE false;
        DROP DATABASE template1;
        CREATE DATABASE template1 TEMPLATE template0 IS_TEMPLATE true;
        SQL
        sql --dbname=postgres --file="$1" >/dev/null
        """#
}

/// Turns role statements of a pg_dumpall dump that would fail or lock StackVault out into SQL comments, by
/// replacing their first two bytes with `--` (the length, and so the upload's size, stays the same):
/// `CREATE ROLE <r>;` for every role that exists already, and `ALTER ROLE <login> WITH ...` for the role
/// StackVault logs in as. Only lines before the first `\connect` (the dump's roles section) are looked at;
/// everything after passes through untouched.
final class RoleStatementFilter: DumpTransform {
    private let downstream: any ByteSink
    /// Whole-line patterns (with their newline) and line prefixes that are commented out.
    private let patterns: [[UInt8]]
    private static let connect = Array("\\connect ".utf8)
    /// Bytes of the current line held back while they may still become a pattern.
    private var pending: [UInt8] = []
    /// The current line is decided (passes through to its end).
    private var decided = false
    /// Past the roles section.
    private var done = false

    init(downstream: any ByteSink, existingRoles: Set<String>, loginRole: String) {
        self.downstream = downstream
        patterns = existingRoles.sorted().map { Array("CREATE ROLE \($0);\n".utf8) }
            + [Array("ALTER ROLE \(loginRole) WITH ".utf8)]
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if done { return try downstream.write(bytes) }
        var start = 0
        var index = 0
        func flushPassed() throws {
            if index > start { try downstream.write(UnsafeRawBufferPointer(rebasing: bytes[start..<index])) }
        }
        while index < bytes.count {
            if done {
                try downstream.write(UnsafeRawBufferPointer(rebasing: bytes[index...]))
                return
            }
            let byte = bytes[index]
            if decided {
                index += 1
                if byte == UInt8(ascii: "\n") { decided = false }
                continue
            }
            try flushPassed()
            pending.append(byte)
            index += 1
            start = index
            try decide()
        }
        try flushPassed()
    }

    /// Looks at the held-back start of a line: emits it once it can no longer become a pattern, or commented out
    /// once it is one.
    private func decide() throws {
        if pending == Self.connect {
            done = true
            return try emit(pending)
        }
        if let match = patterns.first(where: { $0 == pending }) {
            var commented = match
            commented[0] = UInt8(ascii: "-")
            commented[1] = UInt8(ascii: "-")
            decided = match.last != UInt8(ascii: "\n")
            return try emit(commented)
        }
        let possible = patterns.contains { $0.starts(with: pending) } || Self.connect.starts(with: pending)
        if !possible {
            decided = pending.last != UInt8(ascii: "\n")
            try emit(pending)
        }
    }

    private func emit(_ bytes: [UInt8]) throws {
        pending.removeAll(keepingCapacity: true)
        try bytes.withUnsafeBytes { try downstream.write($0) }
    }

    func finish() throws {
        if !pending.isEmpty { try emit(pending) }
    }
}
