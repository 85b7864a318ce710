public import StackVaultCore

/// Restoring a `mariadb-dump --all-databases` dump: the server's databases are replaced by the dump's, and a failed
/// replay leaves the server as it was.
///
/// In the running container, as root with the container's own password, one script (`replay`) does:
/// 1. checks, changing nothing but the packet limit: root logs in; no `svold_*` schema is left from an interrupted
///    restore; the dump's longest line (mariadb-dump writes one statement per line) fits the server's
///    `max_allowed_packet`, else it raises the global limit to 1 GiB and says so (it lasts until the server
///    restarts), or refuses when it cannot or when the statement exceeds 1 GiB;
/// 2. closes other clients' connections, then sets aside:
///    - a copy of every base table of the `mysql` schema (accounts, grants, stored routines and events of every
///      schema, time zones...) and its views, in `svold_<id>_sys` (a few MiB);
///    - every other schema (except information_schema, performance_schema, sys): its triggers and views are saved
///      as SQL (mariadb-dump), the triggers dropped (RENAME TABLE refuses tables with triggers across schemas), its
///      tables and sequences moved with `RENAME TABLE` into `svold_<id>_<n>` (no copy, no extra disk), and the
///      schema dropped (its views, routines and events go with it; they live on in the copies above);
/// 3. replays the dump with the `mariadb` client (`--max-allowed-packet=1G`); the dump rewrites the `mysql` schema's
///    tables (accounts, passwords, grants); then the target's own accounts get their rows of `mysql.global_priv`
///    back — every `root` account, `healthcheck` and `mariadb.sys` (accounts the image creates for itself) and
///    MARIADB_USER/MYSQL_USER — and `FLUSH PRIVILEGES` makes the accounts take effect; root must log in again;
/// 4. on success drops the set-aside schemas; on any failure drops what the replay created, puts the `mysql` tables
///    and views back, recreates each schema with its character set, moves its tables back and recreates its
///    triggers and views, and flushes privileges.
///
/// Events put back by the undo are rows of `mysql.event` again; an `ALTER EVENT` with their own definer and status
/// makes the running event scheduler schedule them at once.
extension MariaDBDumpStrategy: RestoreStrategy {
    public func checkCompleteness(of component: Manifest.ManifestComponent, tail: [UInt8]) -> String? {
        Self.dump.checkCompleteness(tail: tail)
    }

    public func describeRestore(_ component: Manifest.ManifestComponent, into container: ContainerDetails) -> String {
        "replay \(component.archivePath) (\(ByteCount(component.sizeBytes))) with the mariadb client as root. "
            + "EXISTING DATA IS REPLACED: every database except mysql, information_schema, performance_schema and sys "
            + "is moved aside (open connections are closed) and the dump recreates its databases; the set-aside ones "
            + "are dropped once the replay succeeded, so databases created since the backup are lost; if the replay "
            + "fails, everything is put back as it was. The dump's user accounts, passwords and grants replace the "
            + "server's, except root, healthcheck, mariadb.sys and MARIADB_USER, which keep the target's own."
    }

    public func restore(
        _ component: Manifest.ManifestComponent,
        into container: ContainerDetails,
        context: RestoreContext
    ) async throws {
        try await Self.dump.replay(component, into: container, context: context, client: "mariadb",
                                   script: Self.replay)
    }

    /// The guarded replay (see the type's comment and `LogicalDump.replay`): `$1` the dump, `$2` the restore id.
    static let replay = rootLogin + #"""
        client=mariadb; command -v mariadb >/dev/null 2>&1 || client=mysql
        dumper=mariadb-dump; command -v mariadb-dump >/dev/null 2>&1 || dumper=mysqldump
        dump="$1"; id="$2"; work="/tmp/stackvault-restore-$id.d"; sys="svold_${id}_sys"
        umask 077; rm -rf "$work"; mkdir "$work"; trap 'rm -rf "$work"' EXIT
        q() { "$client" --user=root --max-allowed-packet=1G -N -B -r "$@"; }
        # Runs the statements a query prints (one per line), stopping at the first error.
        gen() { out="$(q -e "$1")"; if [ -n "$out" ]; then printf '%s\n' "$out" | q; fi; }
        note() { printf 'note: %s\n' "$*"; }
        refuse() { printf 'refused: %s\n' "$*" >&2; exit 10; }
        system="'mysql', 'information_schema', 'performance_schema', 'sys'"
        keep="'root', 'healthcheck', 'mariadb.sys'"
        appuser="${MARIADB_USER:-${MYSQL_USER:-}}"
        if [ -n "$appuser" ]; then keep="$keep, '$(printf '%s' "$appuser" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")'"; fi

        # 1. Checks; nothing changes (except the packet limit, raised where needed and said so).
        q -e 'SELECT 1' >/dev/null || refuse "root cannot log in with the container's own root password"
        [ "$(q -e "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'svold\\_%'")" = 0 ] ||
          refuse "schemas named svold_* exist: an earlier restore was interrupted; check and drop them first"
        longest="$(LC_ALL=C awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$dump")"
        packet="$(q -e 'SELECT @@global.max_allowed_packet')"
        need=$((longest + 65536))
        if [ "$need" -gt 1073741824 ]; then
          refuse "the dump's longest statement has $longest bytes, more than max_allowed_packet can ever allow (1 GiB)"
        elif [ "$need" -gt "$packet" ]; then
          q -e 'SET GLOBAL max_allowed_packet = 1073741824' ||
            refuse "the dump's longest statement has $longest bytes but the server's max_allowed_packet is" \
              "$packet and root cannot raise it"
          note "raised the server's max_allowed_packet from $packet to 1073741824 bytes (the dump's longest" \
            "statement has $longest bytes); it stays until the server restarts: set max_allowed_packet in the" \
            "server's configuration to read such rows after a restart"
        fi

        # Close other clients' connections (best effort), so that no open transaction holds up the moves.
        kills="$(q -e "SELECT CONCAT('KILL CONNECTION ', id, ';') FROM information_schema.processlist
          WHERE id <> CONNECTION_ID() AND user NOT IN ('system user', 'event_scheduler')
          AND command NOT IN ('Daemon', 'Binlog Dump')")"
        if [ -n "$kills" ]; then printf '%s\n' "$kills" | q --force >/dev/null 2>&1 || true; fi

        # dump_views SCHEMA FILE: the schema's views as SQL (mariadb-dump writes each view's real definition).
        dump_views() {
          views="$(q -e "SELECT table_name FROM information_schema.views WHERE table_schema = '$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")'")"
          : > "$2"
          if [ -n "$views" ]; then
            printf 'USE `%s`;\n' "$(printf '%s' "$1" | sed 's/`/``/g')" > "$2"
            printf '%s\n' "$views" | tr '\n' '\0' | xargs -0 "$dumper" --user=root --no-data --skip-triggers --no-create-db \
              --skip-comments --default-character-set=utf8mb4 "$1" >> "$2"
          fi
        }

        phase=aside
        rollback() {
          set +e
          echo "rolling back: putting the server's own databases and accounts back" >&2
          ok=0
          if [ "$phase" = finish ]; then
            echo "warning: restored, but the set-aside schemas svold_${id}_* could not all be dropped: drop them by hand" >&2
            rm -rf "$work"; exit 0
          fi
          if [ "$phase" = replay ]; then
            # Every schema now there that is neither a system schema nor set aside was created by the replay.
            gen "SELECT CONCAT('DROP DATABASE \`', REPLACE(schema_name, '\`', '\`\`'), '\`;') FROM information_schema.schemata
                 WHERE schema_name NOT IN ($system) AND schema_name NOT LIKE 'svold\\_${id}\\_%'" || ok=1
          fi
          if [ -e "$work/copied" ]; then
            gen "SELECT CONCAT('DROP TABLE IF EXISTS mysql.\`', t, '\`; RENAME TABLE \`$sys\`.\`', t, '\` TO mysql.\`', t, '\`;')
                 FROM (SELECT REPLACE(table_name, '\`', '\`\`') t FROM information_schema.tables WHERE table_schema = '$sys'
                 AND table_name NOT LIKE 'sv\\_%') x" || ok=1
          fi
          # Schemas moved aside come back with their tables, then their triggers and views.
          for n in $(q -e "SELECT n FROM \`$sys\`.sv_schemas ORDER BY n" 2>/dev/null); do
            [ -e "$work/moving_$n" ] || continue
            gen "SELECT CONCAT('CREATE DATABASE IF NOT EXISTS \`', REPLACE(name, '\`', '\`\`'), '\` CHARACTER SET ', cs, ' COLLATE ', coll, ';')
                 FROM \`$sys\`.sv_schemas WHERE n = $n" || ok=1
            gen "SELECT CONCAT('RENAME TABLE ', GROUP_CONCAT(CONCAT('\`svold_${id}_$n\`.\`', REPLACE(t.table_name, '\`', '\`\`'), '\` TO \`',
                 REPLACE(s.name, '\`', '\`\`'), '\`.\`', REPLACE(t.table_name, '\`', '\`\`'), '\`') SEPARATOR ', '), ';')
                 FROM information_schema.tables t JOIN \`$sys\`.sv_schemas s ON s.n = $n WHERE t.table_schema = 'svold_${id}_$n'
                 HAVING COUNT(*) > 0" || ok=1
            if [ -e "$work/dropped_$n" ]; then
              q < "$work/triggers_$n.sql" || ok=1
              q < "$work/views_$n.sql" || ok=1
            fi
          done
          if [ -e "$work/copied" ]; then { q < "$work/views_mysql.sql" && q -e 'FLUSH PRIVILEGES'; } || ok=1; fi
          # Events came back as rows of mysql.event, which the event scheduler does not read again until the server
          # restarts; an ALTER EVENT (same definer, same status) makes it schedule each one now.
          if [ -e "$work/copied" ]; then
            gen "SELECT CONCAT('ALTER DEFINER = ', QUOTE(LEFT(definer, CHAR_LENGTH(definer) - CHAR_LENGTH(SUBSTRING_INDEX(definer, '@', -1)) - 1)),
                 '@', QUOTE(SUBSTRING_INDEX(definer, '@', -1)), ' EVENT \`', REPLACE(db, '\`', '\`\`'), '\`.\`',
                 REPLACE(name, '\`', '\`\`'), '\` ', CASE status WHEN 'ENABLED' THEN 'ENABLE' WHEN 'DISABLED' THEN 'DISABLE'
                 ELSE 'DISABLE ON SLAVE' END, ';') FROM mysql.event" || ok=1
          fi
          if [ "$ok" = 0 ]; then
            gen "SELECT CONCAT('DROP DATABASE \`', schema_name, '\`;') FROM information_schema.schemata
                 WHERE schema_name LIKE 'svold\\_${id}\\_%'" || ok=1
          fi
          if [ "$ok" = 0 ]; then echo "rolled back: the server holds what it held before the restore" >&2; rm -rf "$work"; exit 11; fi
          echo "ROLLBACK INCOMPLETE: the server's own data is in the schemas svold_${id}_*; move it back by hand" >&2
          echo "what was recorded before the restore is kept in $work" >&2; exit 12
        }
        trap 'rc=$?; if [ "$rc" != 0 ] && [ "$rc" != 10 ] && [ "$rc" != 11 ] && [ "$rc" != 12 ]; then rollback; fi; rm -rf "$work"' EXIT

        # 2. Set aside: a copy of the mysql schema's tables (accounts, grants, routines, events), then every other
        #    schema's tables are moved (RENAME TABLE, no copy) into svold_<id>_<n>; triggers and views are kept as SQL.
        q -e "CREATE DATABASE \`$sys\`; CREATE TABLE \`$sys\`.sv_schemas (n INT PRIMARY KEY, name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, cs VARCHAR(64), coll VARCHAR(64));
          INSERT INTO \`$sys\`.sv_schemas SELECT ROW_NUMBER() OVER (ORDER BY schema_name), schema_name, default_character_set_name,
          default_collation_name FROM information_schema.schemata WHERE schema_name NOT IN ($system) AND schema_name NOT LIKE 'svold\\_%'"
        dump_views mysql "$work/views_mysql.sql"
        gen "SELECT CONCAT('CREATE TABLE \`$sys\`.\`', t, '\` LIKE mysql.\`', t, '\`; INSERT INTO \`$sys\`.\`', t, '\` SELECT * FROM mysql.\`', t, '\`;')
             FROM (SELECT REPLACE(table_name, '\`', '\`\`') t FROM information_schema.tables WHERE table_schema = 'mysql'
             AND table_type = 'BASE TABLE' AND table_name NOT IN ('general_log', 'slow_log', 'transaction_registry')) x"
        : > "$work/copied"
        for n in $(q -e "SELECT n FROM \`$sys\`.sv_schemas ORDER BY n"); do
          name="$(q -e "SELECT name FROM \`$sys\`.sv_schemas WHERE n = $n")"
          "$dumper" --user=root --no-data --no-create-info --no-create-db --triggers --skip-routines --skip-events --skip-comments \
            --default-character-set=utf8mb4 --databases "$name" > "$work/triggers_$n.sql"
          dump_views "$name" "$work/views_$n.sql"
          q -e "CREATE DATABASE \`svold_${id}_$n\`"
          : > "$work/moving_$n"
          gen "SELECT CONCAT('DROP TRIGGER \`', REPLACE(trigger_schema, '\`', '\`\`'), '\`.\`', REPLACE(trigger_name, '\`', '\`\`'), '\`;')
               FROM information_schema.triggers WHERE trigger_schema = (SELECT name FROM \`$sys\`.sv_schemas WHERE n = $n)"
          : > "$work/dropped_$n"
          gen "SELECT CONCAT('RENAME TABLE ', GROUP_CONCAT(CONCAT('\`', REPLACE(s.name, '\`', '\`\`'), '\`.\`', REPLACE(t.table_name, '\`', '\`\`'),
               '\` TO \`svold_${id}_$n\`.\`', REPLACE(t.table_name, '\`', '\`\`'), '\`') SEPARATOR ', '), ';')
               FROM information_schema.tables t JOIN \`$sys\`.sv_schemas s ON s.n = $n AND t.table_schema = s.name
               WHERE t.table_type <> 'VIEW' HAVING COUNT(*) > 0"
          gen "SELECT CONCAT('DROP DATABASE \`', REPLACE(name, '\`', '\`\`'), '\`;') FROM \`$sys\`.sv_schemas WHERE n = $n"
        done

        # 3. Replay; then the kept accounts (root, healthcheck, mariadb.sys, MARIADB_USER) get their own rows back.
        phase=replay
        "$client" --user=root --max-allowed-packet=1G --default-character-set=utf8mb4 < "$dump" >/dev/null
        q -e "REPLACE INTO mysql.global_priv SELECT * FROM \`$sys\`.global_priv WHERE User IN ($keep);
          DELETE FROM mysql.proxies_priv WHERE User = 'root';
          INSERT IGNORE INTO mysql.proxies_priv SELECT * FROM \`$sys\`.proxies_priv WHERE User = 'root';
          FLUSH PRIVILEGES"
        q -e 'SELECT 1' >/dev/null

        # 4. Done: what was set aside goes.
        phase=finish
        gen "SELECT CONCAT('DROP DATABASE \`', schema_name, '\`;') FROM information_schema.schemata
             WHERE schema_name LIKE 'svold\\_${id}\\_%'"
        """#
}
