public import StackVaultCore

/// Restoring a `pg_dumpall` dump: the cluster is replaced by the dump's, and a failed replay leaves it as it was.
///
/// In the running container, as POSTGRES_USER with the container's own password, one script (`replay`) does:
/// 1. checks, changing nothing: the login role is a superuser; no `svold_*`/`svhub_*` database is left from an
///    interrupted restore; every tablespace of the dump that the cluster lacks has its directory (missing ones are
///    created, owned by the data directory's owner; a non-empty or uncreatable one refuses). A refusal exits before
///    anything changed;
/// 2. records the cluster's databases (by oid), tablespaces, roles with their attributes and password hashes
///    (`pg_authid`) and memberships, as SQL in a 0700 work directory in the container;
/// 3. sets every database aside by renaming it `svold_<id>_<oid>` (no copy, no extra disk; open connections are
///    terminated first), template databases included, and creates `postgres` and `template1` empty from template0;
/// 4. replays the dump with `psql -v ON_ERROR_STOP=1`: it recreates its databases (template databases come back as
///    templates, tablespaces and extensions with them); roles in the dump are created when missing and get the
///    dump's attributes and passwords, except the role StackVault logs in as, which keeps its own;
/// 5. on success drops the set-aside databases; on any failure it undoes everything from a hub database
///    (`svhub_<id>`): drops what the replay created (databases, tablespaces, roles), renames the set-aside databases
///    back, and gives the roles their recorded attributes, passwords and memberships.
///
/// A plain `pg_dumpall` replay fails on `CREATE ROLE` for every role that exists and on `CREATE TABLESPACE` for every
/// tablespace that exists: those lines (and the login role's `ALTER ROLE ... WITH` line) are turned into SQL
/// comments on the way, keeping the file's length. Not recorded, so not undone: `ALTER ROLE ... SET` settings the
/// dump gives existing roles.
extension PgDumpAllStrategy: RestoreStrategy {
    public func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String? {
        Self.dump.checkCompleteness(tail: tail)
    }

    public func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
        let user = container.environment["POSTGRES_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        return "replay \(component.archivePath) (\(ByteCount(component.sizeBytes))) with psql as \(user). "
            + "EXISTING DATA IS REPLACED: every database except template0 is renamed aside (open connections are "
            + "terminated) and the dump recreates its databases; the set-aside ones are dropped once the replay "
            + "succeeded, so databases created since the backup are lost; if the replay fails, everything is put back "
            + "as it was. Roles in the dump get its attributes and passwords, except \(user), which keeps its own; "
            + "other roles are kept."
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
        var tablespaces: Set<String> = []
        var current: String?
        for line in listing.split(whereSeparator: \.isNewline) {
            if line.hasPrefix("current ") { current = String(line.dropFirst("current ".count)) }
            guard let space = line.firstIndex(of: " ") else { continue }
            let name = String(line[line.index(after: space)...])
            if line.hasPrefix("tablespace ") { tablespaces.insert(name) } else { existing.insert(name) }
        }
        guard let current else {
            throw StackVaultError(.restoreFailed, "psql did not name the login role in \(shell.place)")
        }
        let roles = existing
        let spaces = tablespaces
        try await Self.dump.replay(component, into: container, context: context, client: "psql",
                                   script: Self.login + Self.replay) { sink in
            RoleStatementFilter(downstream: sink, existingRoles: roles, loginRole: current, existingTablespaces: spaces)
        }
    }

    /// Sets PGPASSWORD from the container's environment as the dump script does, and defines `sql`.
    static let login = passwordLogin + #"""
        export PGOPTIONS='-c client_min_messages=warning'
        sql() { psql -X -q --no-password -v ON_ERROR_STOP=1 --username="${POSTGRES_USER:-postgres}" "$@"; }

        """#

    /// Prints `current <role>` for the login role, `role <role>` for the others and `tablespace <name>` for each
    /// tablespace, quoted as pg_dumpall quotes.
    static let listRoles = #"""
        sql -A -t --dbname=template1 -c "SELECT CASE WHEN rolname = current_user THEN 'current ' ELSE 'role ' END
            || quote_ident(rolname) FROM pg_roles WHERE rolname !~ '^pg_'
            UNION ALL SELECT 'tablespace ' || quote_ident(spcname) FROM pg_tablespace"
        """#

    /// The guarded replay (see the type's comment and `LogicalDump.replay`): `$1` the dump, `$2` the restore id.
    static let replay = #"""
        dump="$1"; id="$2"; work="/tmp/stackvault-restore-$id.d"; aside="svold_${id}_"; hub="svhub_$id"
        umask 077; rm -rf "$work"; mkdir "$work"; trap 'rm -rf "$work"' EXIT
        note() { printf 'note: %s\n' "$*"; }
        refuse() { printf 'refused: %s\n' "$*" >&2; exit 10; }
        # q DB SQL: one value per line.
        q() { db="$1"; shift; sql -A -t --dbname="$db" -c "$@"; }
        force=''; [ "$(q template1 'SHOW server_version_num')" -ge 130000 ] && force=' WITH (FORCE)'

        # 1. Checks; nothing changes.
        [ "$(q template1 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')" = t ] ||
          refuse "the login role ${POSTGRES_USER:-postgres} is not a superuser: it cannot replay a whole cluster"
        [ "$(q template1 "SELECT count(*) FROM pg_database WHERE datname LIKE 'svold\\_%' OR datname LIKE 'svhub\\_%'")" = 0 ] ||
          refuse "databases named svold_* or svhub_* exist: an earlier restore was interrupted; check and drop them first"
        datadir="$(q template1 'SHOW data_directory')"
        grep -E "^CREATE TABLESPACE " "$dump" > "$work/tablespaces" || true
        while IFS= read -r line; do
          name="$(printf '%s\n' "$line" | sed -E 's/^CREATE TABLESPACE (("([^"]|"")*")|[^ ]+) .*/\1/')"
          location="$(printf '%s\n' "$line" | sed -nE "s/.* LOCATION '(([^']|'')*)';\$/\\1/p" | sed "s/''/'/g")"
          [ "$(q template1 "SELECT count(*) FROM pg_tablespace WHERE quote_ident(spcname) = '$(printf '%s' "$name" | sed "s/'/''/g")'")" = 0 ] || continue
          [ -n "$location" ] || refuse "tablespace $name in the dump has no location this restore understands"
          if [ ! -d "$location" ]; then
            mkdir -p "$location" && chown "$(stat -c %u:%g "$datadir")" "$location" && chmod 700 "$location" ||
              refuse "tablespace $name needs the directory $location, which does not exist in the container and cannot be created: create it (owned by the server's user, empty) or mount a volume there"
            note "created the directory $location for tablespace $name"
          elif [ -n "$(ls -A "$location")" ]; then
            refuse "tablespace $name needs the directory $location, which is not empty: empty it or mount an empty volume there"
          fi
        done < "$work/tablespaces"

        # What the cluster holds now, as SQL that puts it back into a session's temporary tables (roles with their
        # attributes and password hashes, memberships, databases by oid, tablespaces by oid).
        sql --dbname=template1 -A -t > "$work/before.sql" <<'SQL'
        SELECT 'CREATE TEMP TABLE sv_db (oid oid, name name); CREATE TEMP TABLE sv_ts (oid oid);'
          || 'CREATE TEMP TABLE sv_role (name name, alter_sql text); CREATE TEMP TABLE sv_member (role name, member name, admin boolean);';
        SELECT format('INSERT INTO sv_db VALUES (%s, %L);', oid, datname) FROM pg_database;
        SELECT format('INSERT INTO sv_ts VALUES (%s);', oid) FROM pg_tablespace;
        SELECT format('INSERT INTO sv_role VALUES (%L, %L);', rolname,
          format('ALTER ROLE %I WITH %s %s %s %s %s %s %s CONNECTION LIMIT %s PASSWORD %s%s', rolname,
            CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END, CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
            CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END, CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
            CASE WHEN rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END, CASE WHEN rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END,
            CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END, rolconnlimit, coalesce(quote_literal(rolpassword), 'NULL'),
            CASE WHEN rolvaliduntil IS NULL THEN '' ELSE format(' VALID UNTIL %L', rolvaliduntil) END))
          FROM pg_authid WHERE rolname !~ '^pg_';
        SELECT format('INSERT INTO sv_member VALUES (%L, %L, %L);', r.rolname, m.rolname, a.admin_option)
          FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member;
        SQL

        terminate() { # ends every other session (best effort: one may end on its own meanwhile)
          sql --dbname=template1 -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND datname IS NOT NULL" >/dev/null 2>&1 || true
        }

        phase=aside
        rollback() {
          set +e
          if [ "$phase" = finish ]; then
            echo "warning: restored, but the set-aside databases $aside* could not all be dropped: drop them by hand" >&2
            rm -rf "$work"; exit 0
          fi
          echo "rolling back: putting the cluster's own databases and roles back" >&2
          ok=1
          # template1 (or its set-aside copy, or postgres) serves to create the hub the rollback works from.
          t1="$aside$(sed -nE "s/^INSERT INTO sv_db VALUES \(([0-9]+), 'template1'\);/\1/p" "$work/before.sql")"
          for db in template1 "$t1" postgres; do
            sql --dbname="$db" -c "CREATE DATABASE $hub TEMPLATE template0" >/dev/null 2>&1 && break
          done
          sql -A -t --dbname="$hub" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()" >/dev/null
          { cat "$work/before.sql"; cat <<SQL
        SELECT format('ALTER DATABASE %I IS_TEMPLATE false', datname) FROM pg_database
          WHERE datistemplate AND datname NOT IN ('template0', '$hub') AND oid NOT IN (SELECT oid FROM sv_db) \gexec
        SELECT format('DROP DATABASE %I$force', datname) FROM pg_database
          WHERE datname NOT IN ('template0', '$hub') AND oid NOT IN (SELECT oid FROM sv_db) \gexec
        SELECT format('ALTER DATABASE %I RENAME TO %I', d.datname, b.name) FROM pg_database d JOIN sv_db b ON b.oid = d.oid
          WHERE d.datname <> b.name \gexec
        SELECT format('DROP TABLESPACE %I', spcname) FROM pg_tablespace WHERE oid NOT IN (SELECT oid FROM sv_ts) \gexec
        SELECT format('DROP ROLE %I', rolname) FROM pg_roles WHERE rolname !~ '^pg_' AND rolname NOT IN (SELECT name FROM sv_role) \gexec
        SELECT alter_sql FROM sv_role WHERE name <> current_user \gexec
        SELECT format('REVOKE %I FROM %I', r.rolname, m.rolname) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
          JOIN pg_roles m ON m.oid = a.member WHERE (r.rolname, m.rolname, a.admin_option) NOT IN (SELECT * FROM sv_member) \gexec
        SELECT format('GRANT %I TO %I%s', role, member, CASE WHEN admin THEN ' WITH ADMIN OPTION' ELSE '' END) FROM sv_member s
          WHERE NOT EXISTS (SELECT FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
          WHERE r.rolname = s.role AND m.rolname = s.member AND a.admin_option = s.admin) \gexec
        SQL
          } | sql --dbname="$hub" >/dev/null && ok=0
          if [ "$ok" = 0 ]; then
            sql --dbname=template1 -c "DROP DATABASE $hub" >/dev/null || sql --dbname=postgres -c "DROP DATABASE $hub" >/dev/null || ok=1
          fi
          if [ "$ok" = 0 ]; then echo "rolled back: the cluster holds what it held before the restore" >&2; rm -rf "$work"; exit 11; fi
          echo "ROLLBACK INCOMPLETE: the cluster's own databases may be named $aside<oid>; rename them back by hand" >&2
          echo "what was recorded before the restore is kept in $work" >&2; exit 12
        }
        trap 'rc=$?; if [ "$rc" != 0 ] && [ "$rc" != 10 ] && [ "$rc" != 11 ] && [ "$rc" != 12 ]; then rollback; fi; rm -rf "$work"' EXIT

        # 2. Set aside: every database but template0 and template1 is renamed svold_<id>_<oid> (no copy), postgres is
        #    created empty, then template1 is renamed aside and created empty from template0.
        terminate
        sql --dbname=template1 >/dev/null <<SQL
        SELECT format('ALTER DATABASE %I RENAME TO %I', datname, '$aside' || oid) FROM pg_database
          WHERE datname NOT IN ('template0', 'template1') \gexec
        CREATE DATABASE postgres TEMPLATE template0;
        SQL
        terminate
        sql --dbname=postgres >/dev/null <<SQL
        SELECT format('ALTER DATABASE template1 RENAME TO %I', '$aside' || oid) FROM pg_database WHERE datname = 'template1' \gexec
        CREATE DATABASE template1 TEMPLATE template0 IS_TEMPLATE true;
        SQL

        # 3. Replay.
        phase=replay
        sql --dbname=postgres --file="$dump" >/dev/null

        # 4. Done: what was set aside goes.
        phase=finish
        sql --dbname=postgres >/dev/null <<SQL
        SELECT format('ALTER DATABASE %I IS_TEMPLATE false', datname) FROM pg_database WHERE datistemplate AND left(datname, length('$aside')) = '$aside' \gexec
        SELECT format('DROP DATABASE %I$force', datname) FROM pg_database WHERE left(datname, length('$aside')) = '$aside' \gexec
        SQL
        """#
}

/// Turns role statements of a pg_dumpall dump that would fail or lock StackVault out into SQL comments, by
/// replacing their first two bytes with `--` (the length, and so the upload's size, stays the same):
/// `CREATE ROLE <r>;` for every role that exists already, `ALTER ROLE <login> WITH ...` for the role
/// StackVault logs in as, and `CREATE TABLESPACE <t> OWNER ...` for every tablespace that exists already. Only lines before the first `\connect` (the dump's roles section) are looked at;
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

    init(downstream: any ByteSink, existingRoles: Set<String>, loginRole: String,
         existingTablespaces: Set<String> = []) {
        self.downstream = downstream
        patterns = existingRoles.sorted().map { Array("CREATE ROLE \($0);\n".utf8) }
            + [Array("ALTER ROLE \(loginRole) WITH ".utf8)]
            + existingTablespaces.sorted().map { Array("CREATE TABLESPACE \($0) OWNER ".utf8) }
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
