import Foundation
import Testing

extension Integration {
    /// Issue #15: a database restore never leaves the target with less than it had. Real PostgreSQL and MariaDB:
    /// template databases and tablespaces come back; rows larger than the clients' default packet limit are backed
    /// up and replayed; the target's own root, health-check and application accounts keep their credentials; a
    /// replay that fails half-way for a real reason (a limit of the target server) leaves the target exactly as it
    /// was; the same archive restored twice gives the same result.
    @Suite struct DatabaseRestoreSafetyTests {
        /// Every table of every database that accepts connections (templates included) with row count and digest;
        /// databases with their template flag and tablespace; roles with their password hash (the login role's
        /// only as `own`: a fresh stack has its own), memberships; tablespaces.
        static let pgFingerprint = #"""
            export PGPASSWORD="$POSTGRES_PASSWORD"; q() { psql -X -q -U "$POSTGRES_USER" -tA "$@"; }
            q -d template1 -c "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1" | while IFS= read -r db; do
              q -d "$db" -c "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
                             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1" |
              while IFS= read -r t; do
                echo "$db $t $(q -d "$db" -c "SET work_mem = '64MB'; SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text,
                  E'\n' ORDER BY x::text)), '-') FROM $t x")"
              done
            done
            echo "dbs: $(q -d template1 -c "SELECT string_agg(datname || ':' || datistemplate || ':' || spcname, ','
              ORDER BY datname) FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace")"
            echo "roles: $(q -d template1 -c "SELECT string_agg(rolname || ':' || CASE WHEN rolname = current_user
              THEN 'own' ELSE coalesce(rolpassword, '-') END || ':' || rolsuper || rolcanlogin, ',' ORDER BY rolname)
              FROM pg_authid")"
            echo "members: $(q -d template1 -c "SELECT string_agg(roleid::regrole || '>' || member::regrole, ','
              ORDER BY 1) FROM pg_auth_members")"
            echo "tablespaces: $(q -d template1 -c "SELECT string_agg(spcname, ',' ORDER BY 1) FROM pg_tablespace")"
            """#

        /// Every table of every non-system schema with row count and `CHECKSUM TABLE ... EXTENDED`; then the
        /// schemas, views, triggers, routines and events; `accounts` adds the accounts with their `global_priv` rows.
        static let mariaFingerprint = #"""
            export MYSQL_PWD="$MARIADB_ROOT_PASSWORD"; q() { mariadb --max-allowed-packet=1G -uroot -N -B "$@"; }
            q -e "SELECT CONCAT('\`', table_schema, '\`.\`', table_name, '\`') FROM information_schema.tables
                  WHERE table_type = 'BASE TABLE' AND table_schema NOT IN
                  ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1" |
            while IFS= read -r t; do echo "$t $(q -e "SELECT COUNT(*) FROM $t") $(q -e "CHECKSUM TABLE $t EXTENDED")"; done
            echo "schemas: $(q -e "SELECT GROUP_CONCAT(schema_name ORDER BY 1) FROM information_schema.schemata")"
            echo "views: $(q -e "SELECT GROUP_CONCAT(table_schema, '.', table_name, ':', view_definition ORDER BY 1)
              FROM information_schema.views WHERE table_schema <> 'sys'")"
            echo "triggers: $(q -e "SELECT GROUP_CONCAT(trigger_schema, '.', trigger_name, ':', action_statement
              ORDER BY 1) FROM information_schema.triggers")"
            echo "routines: $(q -e "SELECT GROUP_CONCAT(routine_schema, '.', routine_name ORDER BY 1)
              FROM information_schema.routines WHERE routine_schema <> 'sys'")"
            echo "events: $(q -e "SELECT GROUP_CONCAT(event_schema, '.', event_name ORDER BY 1) FROM information_schema.events")"
            if [ "${1:-}" = accounts ]; then
              echo "accounts: $(q -e "SELECT GROUP_CONCAT(CONCAT(user, '@', host, '=', priv) ORDER BY user, host)
                FROM mysql.global_priv")"
              echo "db grants: $(q -e "SELECT GROUP_CONCAT(CONCAT(user, '@', host, ':', db) ORDER BY 1) FROM mysql.db")"
            fi
            """#

        struct Stack {
            let compose: ComposeProject
            let db: String
            let maria: String
            let appPassword: String
            let rootPassword: String

            static func up(_ fixture: String, appPassword: String, rootPassword: String) throws -> Stack {
                let project = "svtest_h15_\(UUID().uuidString.prefix(8).lowercased())"
                let compose = try ComposeProject.up(fixture, project: project)
                let stack = Stack(compose: compose, db: try compose.container("db"),
                                  maria: try compose.container("mariadb"), appPassword: appPassword,
                                  rootPassword: rootPassword)
                try Docker.waitForPostgres(stack.db, user: "app", password: appPassword)
                try Docker.waitForMariaDB(stack.maria, password: rootPassword)
                return stack
            }

            func psql(_ sql: String, database: String = "postgres") throws {
                try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=\(appPassword)", db, "psql", "-X", "-q", "-v",
                               "ON_ERROR_STOP=1", "-U", "app", "-d", database], input: sql)
            }

            @discardableResult
            func mariadb(_ sql: String, user: String = "root", password: String? = nil,
                         check: Bool = true) throws -> CommandResult {
                try Shell.run(["docker", "exec", "-i", "-e", "MYSQL_PWD=\(password ?? rootPassword)", maria, "mariadb",
                               "--max-allowed-packet=1G", "-N", "-B", "-u\(user)"], input: sql, check: check)
            }

            func pg() throws -> String { try Docker.exec(db, DatabaseRestoreSafetyTests.pgFingerprint) }
            func maria(accounts: Bool = false) throws -> String {
                try Shell.run(["docker", "exec", maria, "sh", "-c", DatabaseRestoreSafetyTests.mariaFingerprint, "sh",
                               accounts ? "accounts" : ""]).stdout
            }
        }

        static func restore(_ archiveStack: String, into target: String? = nil, target url: String,
                            service: String) throws -> CommandResult {
            try StackVaultCLI.run(["restore", "--latest", "--stack", archiveStack, "--target", url, "--yes",
                                   "--service", service] + (target.map { ["--into-stack", $0] } ?? []))
        }

        static func output(_ result: CommandResult) -> String { result.stdout + "\n" + result.stderr }

        @Test func postgresTemplatesTablespacesAndAFailedReplayLeaveTheClusterAsItWas() async throws {
            try TestBed.requireDocker()
            let stack = try Stack.up("restore-safety-a.yml", appPassword: "app-secret-pw", rootPassword: "root-secret-pw")
            defer { stack.compose.down() }
            try Docker.exec(stack.db, "mkdir -p /var/lib/postgresql/ts_app && chown postgres /var/lib/postgresql/ts_app")
            try stack.psql("""
                CREATE DATABASE template_postgis IS_TEMPLATE true;
                CREATE TABLESPACE ts_app LOCATION '/var/lib/postgresql/ts_app';
                CREATE DATABASE spaced TABLESPACE ts_app;
                CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
                GRANT reader TO app;
                """)
            try stack.psql("CREATE TABLE spatial_ref (srid int PRIMARY KEY, name text); "
                + "INSERT INTO spatial_ref VALUES (4326, 'WGS 84');", database: "template_postgis")
            try stack.psql("CREATE TABLE placed (x int); INSERT INTO placed SELECT generate_series(1, 100);",
                           database: "spaced")
            // An index over 200k text keys: its sort spills to temporary files beyond a small temp_file_limit.
            try stack.psql("CREATE TABLE events (id int, key text); INSERT INTO events SELECT g, md5(g::text) "
                + "FROM generate_series(1, 200000) g; CREATE INDEX events_key ON events (key);", database: "appdb")
            let original = try stack.pg()
            #expect(original.contains("template_postgis:true:pg_default") && original.contains("spaced:false:ts_app"),
                    "\(original)")
            #expect(original.contains("template_postgis public.spatial_ref 1 "), "\(original)")

            let directory = try TestBed.temporaryDirectory("h15pg")
            defer { try? FileManager.default.removeItem(at: directory) }
            let target = "file://\(directory.path)"
            let backup = try StackVaultCLI.run(["backup", "--stack", stack.compose.name, "--target", target])
            #expect(backup.ok, "\(Self.output(backup))")

            // What came after the backup, the way a cluster changes.
            try stack.psql("""
                CREATE DATABASE later;
                CREATE ROLE newer LOGIN PASSWORD 'newer-pw';
                GRANT newer TO reader;
                ALTER ROLE reader PASSWORD 'reader-changed';
                """)
            try stack.psql("CREATE TABLE notes (t text); INSERT INTO notes VALUES ('kept');", database: "later")
            try stack.psql("DELETE FROM events WHERE id <= 10;", database: "appdb")
            let changed = try stack.pg()

            // A refusal changes nothing: databases left by an interrupted restore are not guessed about.
            try stack.psql("CREATE DATABASE svold_leftover;")
            let withLeftover = try stack.pg()
            let refused = try Self.restore(stack.compose.name, target: target, service: "db")
            #expect(refused.status == 1 && Self.output(refused).contains("refused before anything was changed")
                && Self.output(refused).contains("an earlier restore was interrupted"), "\(Self.output(refused))")
            #expect(try stack.pg() == withLeftover)
            try stack.psql("DROP DATABASE svold_leftover;")

            // Row 1 of the issue and a real failure half-way: the target's own temp_file_limit makes the dump's
            // CREATE INDEX fail after databases and roles were already replayed.
            try stack.psql("ALTER SYSTEM SET temp_file_limit = '1MB'; ALTER SYSTEM SET maintenance_work_mem = '1MB'; "
                + "SELECT pg_reload_conf();")
            let failing = try Self.restore(stack.compose.name, target: target, service: "db")
            #expect(failing.status == 1, "\(Self.output(failing))")
            #expect(Self.output(failing).contains("temp_file_limit")
                && Self.output(failing).contains("everything it changed was undone"), "\(Self.output(failing))")
            #expect(try stack.pg() == changed, "a failed replay leaves the cluster exactly as it was")
            try stack.psql("ALTER SYSTEM RESET temp_file_limit; ALTER SYSTEM RESET maintenance_work_mem; "
                + "SELECT pg_reload_conf();")
            // Roles that are not in the dump are kept by a restore (documented); this one goes so that the
            // comparison below is exact.
            try stack.psql("DROP ROLE newer;")

            // The same archive restored twice gives the backup's cluster, templates and tablespaces included.
            for round in 1...2 {
                let restore = try Self.restore(stack.compose.name, target: target, service: "db")
                #expect(restore.ok, "round \(round): \(Self.output(restore))")
                #expect(try stack.pg() == original, "round \(round)")
                #expect(!Self.output(restore).contains("app-secret-pw"))
            }
            #expect(try Docker.exec(stack.db, "ls /tmp | grep stackvault-restore || true").isEmpty)

            // Into a fresh cluster whose container lacks the tablespace's directory: it is created.
            let fresh = try Stack.up("restore-safety-b.yml", appPassword: "other-app-pw", rootPassword: "other-root-pw'q")
            defer { fresh.compose.down() }
            // A tablespace directory that holds files is refused, naming it; once it is gone it is created.
            try Docker.exec(fresh.db, "mkdir -p /var/lib/postgresql/ts_app && touch /var/lib/postgresql/ts_app/junk")
            let freshBefore = try fresh.pg()
            let occupied = try Self.restore(stack.compose.name, into: fresh.compose.name, target: target, service: "db")
            #expect(occupied.status == 1 && Self.output(occupied).contains("/var/lib/postgresql/ts_app, which is not empty"),
                    "\(Self.output(occupied))")
            #expect(try fresh.pg() == freshBefore)
            try Docker.exec(fresh.db, "rm -rf /var/lib/postgresql/ts_app")
            let copy = try Self.restore(stack.compose.name, into: fresh.compose.name, target: target, service: "db")
            #expect(copy.ok, "\(Self.output(copy))")
            #expect(Self.output(copy).contains("created the directory /var/lib/postgresql/ts_app"), "\(Self.output(copy))")
            #expect(try fresh.pg() == original)
            try Docker.waitForPostgres(fresh.db, user: "app", password: "other-app-pw")
        }

        @Test func mariadbLargeRowsOwnCredentialsAndAFailedReplay() async throws {
            try TestBed.requireDocker()
            let source = try Stack.up("restore-safety-a.yml", appPassword: "app-secret-pw", rootPassword: "root-secret-pw")
            defer { source.compose.down() }
            // Row 2 of the issue: a 40 MiB row in a server whose packet limit was raised to 1 GiB.
            try source.mariadb("SET GLOBAL max_allowed_packet = 1073741824;")
            try source.mariadb("""
                USE shop;
                CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB);
                INSERT INTO blobs VALUES (1, REPEAT(UNHEX('00FF7F80'), 10 << 20)), (2, REPEAT('x', 12 << 20));
                CREATE TABLE cache (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE = MEMORY;
                INSERT INTO cache SELECT seq, REPEAT('c', 200) FROM seq_1_to_2000;
                CREATE TABLE parts (id INT PRIMARY KEY, label VARCHAR(20), parent INT, FOREIGN KEY (parent) REFERENCES parts (id));
                INSERT INTO parts VALUES (1, 'root', NULL), (2, 'leaf', 1);
                CREATE VIEW leaves AS SELECT id, label FROM parts WHERE parent IS NOT NULL;
                CREATE TRIGGER upper_label BEFORE INSERT ON parts FOR EACH ROW SET NEW.label = UPPER(NEW.label);
                CREATE PROCEDURE count_parts() SELECT COUNT(*) FROM parts;
                CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM cache WHERE id < 0;
                CREATE DATABASE ledger;
                CREATE TABLE ledger.entries (id INT PRIMARY KEY, amount DECIMAL(10, 2));
                INSERT INTO ledger.entries VALUES (1, 10.50), (2, -3.25);
                CREATE USER 'auditor'@'%' IDENTIFIED BY 'auditor-pw';
                GRANT SELECT ON ledger.* TO 'auditor'@'%';
                """)
            let original = try source.maria()
            #expect(original.contains("`shop`.`blobs` 2 ") && original.contains("`ledger`.`entries` 2 "), "\(original)")

            let directory = try TestBed.temporaryDirectory("h15maria")
            defer { try? FileManager.default.removeItem(at: directory) }
            let target = "file://\(directory.path)"
            let backup = try StackVaultCLI.run(["backup", "--stack", source.compose.name, "--target", target])
            #expect(backup.ok, "\(Self.output(backup))")

            // Rows 3 and 4: into another stack with its own root password, the default 16 MiB packet limit, a
            // health-check account and data of its own.
            let other = try Stack.up("restore-safety-b.yml", appPassword: "other-app-pw", rootPassword: "other-root-pw'q")
            defer { other.compose.down() }
            try other.mariadb("""
                CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY 'hc-pw';
                CREATE DATABASE own;
                CREATE TABLE own.things (id INT PRIMARY KEY);
                INSERT INTO own.things VALUES (1), (2), (3);
                SET GLOBAL event_scheduler = ON;
                CREATE EVENT own.pulse ON SCHEDULE EVERY 1 SECOND DO DO 1;
                """)
            let otherBefore = try other.maria(accounts: true)

            // A real failure half-way: the target's max_heap_table_size is too small for the MEMORY table `cache`,
            // which the dump fills after the mysql schema and other tables were replayed.
            try other.mariadb("SET GLOBAL max_heap_table_size = 65536;")
            let failing = try Self.restore(source.compose.name, into: other.compose.name, target: target,
                                           service: "mariadb")
            #expect(failing.status == 1, "\(Self.output(failing))")
            let failure = Self.output(failing)
            #expect(failure.contains("The table 'cache' is full") && failure.contains("everything it changed was undone"),
                    "\(failure)")
            #expect(failure.contains("raised the server's max_allowed_packet"), "\(failure)")
            #expect(failure.count < 40_000, "long echoed statements are shortened: \(failure.count) characters")
            #expect(try other.maria(accounts: true) == otherBefore, "a failed replay leaves the server exactly as it was")
            // The target's own event runs again after the undo (the scheduler was told, not only its table).
            let pulse = "SELECT LAST_EXECUTED FROM information_schema.events WHERE event_name = 'pulse'"
            let lastRun = try other.mariadb(pulse).stdout
            try await Task.sleep(for: .seconds(3))
            #expect(try other.mariadb(pulse).stdout != lastRun, "the event pulse is scheduled again")
            try other.mariadb("SET GLOBAL max_heap_table_size = 16777216;")

            for round in 1...2 {
                let restore = try Self.restore(source.compose.name, into: other.compose.name, target: target,
                                               service: "mariadb")
                #expect(restore.ok, "round \(round): \(Self.output(restore))")
                #expect(try other.maria() == original, "round \(round)")
                // The target's own accounts keep their credentials; other accounts take the backup's.
                #expect(try other.mariadb("SELECT 1").ok, "root logs in with the target's own password")
                #expect(try other.mariadb("SELECT 1", user: "healthcheck", password: "hc-pw").ok)
                #expect(try other.mariadb("SELECT 1", user: "shopper", password: "other-shopper-pw").ok)
                #expect(try other.mariadb("SELECT COUNT(*) FROM ledger.entries", user: "auditor",
                                          password: "auditor-pw").stdout.contains("2"))
                #expect(!(try other.mariadb("SELECT 1", password: "root-secret-pw", check: false).ok))
                for secret in ["root-secret-pw", "other-root-pw"] { #expect(!Self.output(restore).contains(secret)) }
            }
            // The target's next backup runs with its own credentials.
            let again = try StackVaultCLI.run(["backup", "--stack", other.compose.name, "--target", target])
            #expect(again.ok, "\(Self.output(again))")
            #expect(try Docker.exec(other.maria, "ls /tmp | grep stackvault-restore || true").isEmpty)
        }
    }
}
