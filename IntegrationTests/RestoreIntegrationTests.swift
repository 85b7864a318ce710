import Foundation
import StackVaultCore
import Testing

extension Integration {
    /// `list`, `verify` and `restore` against real containers: a seeded stack is backed up (to S3 when the test
    /// S3 server answers, and to a directory), destroyed, restored, and compared row by row and file by file;
    /// damaged and malicious archives are refused with the host unchanged.
    @Suite struct RestoreTests {
        static let project = "svtest_restore"

        /// Every file below `$1` as `path type mode uid:gid mtime size links md5`, then the directory itself.
        static let treeListing = #"""
            cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r f; do
              if [ -L "$f" ]; then echo "$f link $(readlink "$f") $(stat -c '%u:%g' "$f")";
              elif [ -d "$f" ]; then echo "$f dir $(stat -c '%a %u:%g %Y' "$f")";
              else echo "$f file $(stat -c '%a %u:%g %Y %s %h' "$f") $(md5sum < "$f" | cut -c1-32)"; fi
            done
            echo ". root $(stat -c '%a %u:%g %Y' .)"
            """#

        static func listTree(_ container: String, _ path: String) throws -> String {
            try Shell.run(["docker", "exec", container, "sh", "-c", treeListing, "sh", path]).stdout
        }

        /// Every table of every non-template database, with its row count and a digest of its rows; and the roles.
        static let pgFingerprint = #"""
            export PGPASSWORD="$POSTGRES_PASSWORD"; q() { psql -X -U "$POSTGRES_USER" -tA "$@"; }
            q -d postgres -c "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1" | while IFS= read -r db; do
              q -d "$db" -c "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
                             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1" |
              while IFS= read -r t; do
                echo "$db $t $(q -d "$db" -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\n'
                                              ORDER BY x::text)), '-') FROM $t x")"
              done
            done
            echo "roles: $(q -d postgres -c "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles")"
            """#

        /// Every table of every non-system database with its row count and `CHECKSUM TABLE ... EXTENDED`.
        static let mariaFingerprint = #"""
            export MYSQL_PWD="$MARIADB_ROOT_PASSWORD"; q() { mariadb --default-character-set=utf8mb4 -uroot -N -B "$@"; }
            q -e "SELECT CONCAT('\`', table_schema, '\`.\`', table_name, '\`') FROM information_schema.tables
                  WHERE table_type = 'BASE TABLE' AND table_schema NOT IN
                  ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1" |
            while IFS= read -r t; do echo "$t $(q -e "SELECT COUNT(*) FROM $t") $(q -e "CHECKSUM TABLE $t EXTENDED")"; done
            echo "users: $(q -e "SELECT GROUP_CONCAT(CONCAT(user, '@', host) ORDER BY user, host) FROM mysql.user")"
            """#

        struct Snapshot: Equatable {
            var postgres: String
            var mariadb: String
            var data: String
            var config: String
        }

        struct Stack {
            let compose: ComposeProject
            let db: String
            let maria: String
            let files: String

            static func up(_ project: String) throws -> Stack {
                let compose = try ComposeProject.up("full-stack.yml", project: project)
                let stack = Stack(compose: compose, db: try compose.container("db"),
                                  maria: try compose.container("mariadb"), files: try compose.container("files"))
                try Docker.waitForPostgres(stack.db, user: "app", password: "app-secret-pw")
                try Docker.waitForMariaDB(stack.maria, password: "root-secret-pw")
                return stack
            }

            func snapshot() throws -> Snapshot {
                Snapshot(
                    postgres: try Docker.exec(db, RestoreTests.pgFingerprint),
                    mariadb: try Docker.exec(maria, RestoreTests.mariaFingerprint),
                    data: try RestoreTests.listTree(files, "/data"),
                    config: try RestoreTests.listTree(files, "/config"))
            }

            func psql(_ sql: String, database: String = "postgres") throws {
                try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=app-secret-pw", db, "psql", "-X", "-q", "-v",
                               "ON_ERROR_STOP=1", "-U", "app", "-d", database], input: sql)
            }

            func mariadb(_ sql: String) throws {
                try Shell.run(["docker", "exec", "-i", "-e", "MYSQL_PWD=root-secret-pw", maria, "mariadb",
                               "--default-character-set=utf8mb4", "-uroot"], input: sql)
            }
        }

        static func seed(_ stack: Stack) throws {
            try stack.psql("""
                CREATE DATABASE shop2;
                \\c shop2
                CREATE TABLE items (id int PRIMARY KEY, name text, payload bytea, created timestamptz);
                INSERT INTO items SELECT g, 'item ' || g || ' ✓ ü ' || repeat('ß', g % 7), decode(md5(g::text), 'hex'),
                    timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 20000) g;
                CREATE TABLE "Odd Table ☃" (k text PRIMARY KEY, v jsonb);
                INSERT INTO "Odd Table ☃" VALUES ('ключ', '{"a": [1, 2, "три"]}'), ('nul''s', 'null');
                CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
                GRANT SELECT ON items TO reader;
                """)
            try stack.mariadb("""
                CREATE DATABASE inventory;
                USE inventory;
                CREATE TABLE parts (id INT PRIMARY KEY, label VARCHAR(100) CHARACTER SET utf8mb4, blob_data BLOB)
                    DEFAULT CHARSET=utf8mb4;
                INSERT INTO parts SELECT seq, CONCAT('part ', seq, ' 😀 ü'), UNHEX(MD5(seq)) FROM seq_1_to_5000;
                CREATE TABLE big_blob (id INT PRIMARY KEY, b LONGBLOB);
                INSERT INTO big_blob VALUES (1, REPEAT(UNHEX('00FF7F80'), 50000));
                CREATE USER 'auditor'@'%' IDENTIFIED BY 'auditor-pw';
                GRANT SELECT ON inventory.* TO 'auditor'@'%';
                """)
            try Docker.exec(stack.files, #"""
                set -e
                mkdir -p "/data/sub dir/ünïcödé" /data/empty /data/.hidden-dir /config/nested
                printf 'hello\n' > /data/hello.txt
                head -c 2000000 /dev/urandom > /data/random.bin
                printf 'x%.0s' $(seq 1 2000) > "/data/sub dir/ünïcödé/$(printf 'n%.0s' $(seq 1 150)).txt"
                printf 'odd\n' > "/data/odd 'single' \"double\" * ? & \$dollar"
                printf 'dash\n' > /data/-leading-dash
                printf 'dot\n' > /data/.hidden-dir/.dotfile
                ln -s hello.txt /data/link-to-hello
                ln -s ../does/not/exist /data/dangling-link
                ln /data/hello.txt /data/hardlink-to-hello
                chmod 751 /data/random.bin; chmod 700 /data/.hidden-dir; chmod 1777 /data/empty
                chown 1234:5678 /data/hello.txt; chown -h 4321:8765 /data/link-to-hello
                : > /data/zero-bytes
                printf 'setting=1\n' > /config/app.conf; chmod 600 /config/app.conf
                printf 'deep\n' > /config/nested/deep.conf
                find /data /config -exec touch -h -d '2024-02-29 12:34:56' {} + 2>/dev/null || true
                find /data /config ! -type l -exec touch -d '2024-02-29 12:34:56' {} +
                touch -d '2001-02-03 04:05:06' /data/random.bin
                chmod 755 /data; chown 99:99 /config
                """#)
        }

        /// Changes everything the restore must put back, and adds what it must remove.
        static func destroy(_ stack: Stack) throws {
            try stack.psql("""
                DROP DATABASE shop2;
                DROP ROLE reader;
                CREATE DATABASE extra;
                \\c appdb
                DELETE FROM stackvault_seed WHERE id = 1;
                UPDATE stackvault_seed SET name = 'changed' WHERE id = 2;
                INSERT INTO stackvault_seed VALUES (99, 'new');
                """)
            try stack.psql("CREATE TABLE leftover (x int); INSERT INTO leftover VALUES (1);", database: "extra")
            try stack.mariadb("""
                DROP DATABASE inventory;
                DROP USER 'auditor'@'%';
                CREATE DATABASE extra;
                CREATE TABLE extra.leftover (x INT);
                UPDATE shop.stackvault_seed SET name = 'changed' WHERE id = 2;
                DELETE FROM shop.stackvault_seed WHERE id = 3;
                """)
            try Docker.exec(stack.files, #"""
                set -e
                rm -rf "/data/sub dir" /data/hello.txt /data/link-to-hello
                printf 'tampered\n' > /data/random.bin; chmod 777 /data/random.bin
                mkdir -p /data/new-dir && printf 'new\n' > /data/new-dir/new.txt && printf 'x' > /data/.new-hidden
                chown 0:0 /data/-leading-dash; printf 'changed=2\n' > /config/app.conf; rm -rf /config/nested
                chmod 700 /data
                """#)
        }

        /// The S3 target to use, when the test S3 server answers (always in CI, where it must).
        static func s3Target() -> (url: String, environment: [String: String])? {
            guard S3TestServer.usable else { return nil }
            let server = S3TestServer.current
            return ("s3://\(server.bucket)/restore-it-\(UUID().uuidString.prefix(8).lowercased())",
                    server.environment())
        }

        /// Removes what a test stored under an S3 target.
        static func removeS3(_ url: String) {
            _ = try? S3TestServer.current.aws(["s3", "rm", "--recursive", "--only-show-errors", url + "/"],
                                              check: false)
        }

        static func name(of container: String) throws -> String {
            String(try Docker.inspect(container, "{{.Name}}").drop { $0 == "/" })
        }

        static func helpersLeft() throws -> String {
            try Shell.run(["docker", "ps", "-aq", "--filter", "label=\(HelperImage.containerLabel)"]).stdout
        }

        static func tmpLeftovers(_ container: String) throws -> String {
            try Docker.exec(container, "ls /tmp | grep stackvault-restore || true")
        }

        @Test func roundTripRestoresEveryRowAndFileAlsoIntoAFreshStack() throws {
            try TestBed.requireDocker()
            let stack = try Stack.up(Self.project)
            defer { stack.compose.down() }
            try Self.seed(stack)
            let original = try stack.snapshot()
            #expect(original.postgres.contains("shop2 public.items 20000 "), "\(original.postgres)")
            #expect(original.postgres.contains("\"Odd Table ☃\" 2 "), "\(original.postgres)")
            #expect(original.mariadb.contains("`inventory`.`parts` 5000 "), "\(original.mariadb)")
            #expect(original.data.contains("./hardlink-to-hello file 644 1234:5678 1709210096 6 2 "), "\(original.data)")

            let directory = try TestBed.temporaryDirectory("restore")
            defer { try? FileManager.default.removeItem(at: directory) }
            let fileTarget = "file://\(directory.path)"
            let backup = try StackVaultCLI.run(["backup", "--stack", Self.project, "--target", fileTarget])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            // The round trip goes through S3 when there is one: that is where backups usually live.
            let s3 = Self.s3Target()
            let (target, environment) = s3 ?? (fileTarget, [:])
            defer { if let s3 { Self.removeS3(s3.url) } }
            if s3 != nil {
                let toS3 = try StackVaultCLI.run(["backup", "--stack", Self.project, "--target", target],
                                                 environment: environment)
                #expect(toS3.ok, "\(toS3.stdout)\n\(toS3.stderr)")
            }

            // list and verify see it; a dry run says what would happen and changes nothing.
            let list = try StackVaultCLI.run(["list", "--stack", Self.project, "--target", target], environment: environment)
            #expect(list.ok && list.stdout.contains("at backup") && list.stdout.contains("backup-\(Self.project)-"),
                    "\(list.stdout)\n\(list.stderr)")
            let verify = try StackVaultCLI.run(["verify", "--latest", "--stack", Self.project, "--target", target],
                                               environment: environment)
            #expect(verify.ok && verify.stdout.contains("PASSED"), "\(verify.stdout)\n\(verify.stderr)")
            #expect(verify.stdout.contains("db/database/pg_dumpall.sql") && verify.stdout.contains("ok, complete dump"))
            try Self.destroy(stack)
            let destroyed = try stack.snapshot()
            #expect(destroyed.postgres != original.postgres && destroyed.mariadb != original.mariadb
                && destroyed.data != original.data && destroyed.config != original.config)
            #expect(destroyed.postgres.contains("extra public.leftover 1 ") && !destroyed.postgres.contains("shop2"))
            let dryRun = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target,
                                                "--dry-run"], environment: environment)
            #expect(dryRun.ok, "\(dryRun.stdout)\n\(dryRun.stderr)")
            for expected in ["-> container \(try Self.name(of: stack.db))", "EXISTING DATA IS REPLACED",
                             "replace the content of /data", "Dry run: nothing was changed."] {
                #expect(dryRun.stdout.contains(expected), "\(expected) in \(dryRun.stdout)")
            }
            let unconfirmed = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target],
                                                    environment: environment)
            #expect(unconfirmed.status == 1 && unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stderr)")
            #expect(try stack.snapshot() == destroyed, "dry run and unconfirmed run changed nothing")

            // Clients keep connections open, as applications do; one holds a lock in a transaction.
            try Shell.run(["docker", "exec", "-d", "-e", "PGPASSWORD=app-secret-pw", stack.db, "psql", "-U", "app",
                           "-d", "appdb", "-c", "SELECT pg_sleep(600)"])
            try Shell.run(["docker", "exec", "-d", "-e", "MYSQL_PWD=root-secret-pw", stack.maria, "mariadb", "-uroot",
                           "-e", "START TRANSACTION; SELECT COUNT(*) FROM shop.stackvault_seed; SELECT SLEEP(600);"])
            try Docker.waitUntil(stack.maria, "mariadb -uroot -N -e \"SELECT 1 FROM information_schema.processlist "
                + "WHERE info LIKE 'SELECT SLEEP%'\" | grep -q 1", env: ["MYSQL_PWD": "root-secret-pw"], seconds: 20)

            // The restore puts back every row and every file, and removes what came after the backup.
            let startedBefore = (db: try Docker.startedAt(stack.db), files: try Docker.startedAt(stack.files))
            let restore = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--target", target,
                                                 "--yes"], environment: environment)
            #expect(restore.ok, "\(restore.stdout)\n\(restore.stderr)")
            #expect(restore.stdout.contains("4 of 4 component(s) restored"), "\(restore.stdout)")
            let restored = try stack.snapshot()
            #expect(restored.postgres == original.postgres)
            #expect(restored.mariadb == original.mariadb)
            #expect(restored.data == original.data)
            #expect(restored.config == original.config)
            #expect(!restored.postgres.contains("extra") && !restored.mariadb.contains("extra"))
            #expect(try Docker.startedAt(stack.db) == startedBefore.db, "the database container kept running")
            #expect(try Docker.startedAt(stack.files) != startedBefore.files, "the files container was restarted")
            #expect(try Docker.isRunning(stack.files))
            #expect(try Self.helpersLeft().isEmpty, "helper containers are removed")
            #expect(try Self.tmpLeftovers(stack.db).isEmpty && Self.tmpLeftovers(stack.maria).isEmpty)
            #expect(try Self.listTree(stack.files, "/data").contains("./.stackvault") == false)
            for secret in ["app-secret-pw", "root-secret-pw"] {
                #expect(!restore.stdout.contains(secret) && !restore.stderr.contains(secret))
            }
            // The containers' own credentials still work, so the next backup runs.
            let again = try StackVaultCLI.run(["backup", "--stack", Self.project, "--target", fileTarget])
            #expect(again.ok, "\(again.stdout)\n\(again.stderr)")

            // Into a second, fresh stack from the same archive (its own volumes and initial data).
            let fresh = try Stack.up("\(Self.project)_copy")
            defer { fresh.compose.down() }
            let copy = try StackVaultCLI.run(["restore", "--latest", "--stack", Self.project, "--into-stack",
                                              fresh.compose.name, "--target", target, "--yes"], environment: environment)
            #expect(copy.ok, "\(copy.stdout)\n\(copy.stderr)")
            #expect(copy.stdout.contains("-> container \(try Self.name(of: fresh.files))"), "\(copy.stdout)")
            #expect(try fresh.snapshot() == original)
            #expect(try stack.snapshot() == original, "the source stack is not touched")
            #expect(try Self.helpersLeft().isEmpty)
        }

        /// A standalone container whose directory lives in its own writable layer (no volume).
        static func standalone(_ name: String) throws -> String {
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           TestBed.busyboxImage, "sleep", "1000000"])
            try Docker.exec(name, #"""
                set -e; mkdir -p /data/sub; printf 'one\n' > /data/a.txt; printf 'two\n' > /data/sub/b.txt
                ln -s a.txt /data/link; chmod 640 /data/a.txt; chown 1000:1000 /data/sub
                """#)
            return name
        }

        @Test func damagedAndMaliciousArchivesAreRefusedWithTheHostUnchanged() throws {
            try TestBed.requireDocker()
            let name = try Self.standalone("svtest-restore-refuse")
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let directory = try TestBed.temporaryDirectory("refuse")
            defer { try? FileManager.default.removeItem(at: directory) }
            let target = "file://\(directory.path)"
            let backup = try StackVaultCLI.run(["backup", "--stack", name, "--target", target])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            let good = try #require(TestBed.hostFiles(directory).first)
            let original = try Self.listTree(name, "/data")
            try Docker.exec(name, "printf 'after backup\\n' > /data/a.txt; rm /data/sub/b.txt; touch /data/new")
            let changed = try Self.listTree(name, "/data")
            let started = try Docker.startedAt(name)

            // Damaged copies, under archive names newer than the good one.
            let bytes = try Data(contentsOf: TestBed.hostFolder(directory).appendingPathComponent(good))
            var flipped = bytes
            flipped[flipped.count / 2] ^= 0x01
            func archiveName(_ time: String) -> String {
                "backup-\(name)-\(time)-\(UUID().uuidString.lowercased()).tar.zst"
            }
            let damaged = [("flipped", archiveName("29990101-000000"), flipped),
                           ("truncated", archiveName("29990101-000001"), bytes.prefix(bytes.count * 3 / 5)),
                           ("traversal", archiveName("29990101-000002"), try Self.craftedTraversalArchive(stack: name))]
            for (_, archive, data) in damaged {
                try data.write(to: directory.appendingPathComponent(archive))
            }
            let list = try StackVaultCLI.run(["list", "--stack", name, "--target", target, "--json"])
            #expect(list.ok)
            let listed = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
            let names = (listed?["archives"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names == damaged.map(\.1).reversed() + [good], "newest first: \(list.stdout)")

            for (label, archive, _) in damaged {
                let verify = try StackVaultCLI.run(["verify", archive, "--target", target])
                #expect(verify.status == 1 && verify.stdout.contains("FAILED"), "\(label): \(verify.stdout)\n\(verify.stderr)")
                let restore = try StackVaultCLI.run(["restore", archive, "--target", target, "--yes"])
                #expect(restore.status == 1, "\(label): \(restore.stdout)\n\(restore.stderr)")
                #expect(restore.stderr.contains("refusing to restore") && restore.stderr.contains("nothing was changed"),
                        "\(label): \(restore.stderr)")
                #expect(try Self.listTree(name, "/data") == changed, "\(label) changed the data")
                #expect(try Docker.startedAt(name) == started, "\(label) stopped the container")
            }
            let traversal = try StackVaultCLI.run(["verify", damaged[2].1, "--target", target])
            #expect(traversal.stdout.contains("'..' component"), "\(traversal.stdout)")
            #expect(try Docker.exec(name, "ls /evil* /tmp/evil* 2>/dev/null || true").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: "/tmp/evil-from-stackvault"))
            #expect(try Self.helpersLeft().isEmpty)

            // While another StackVault holds the stack's lock (a backup running elsewhere), a restore changes nothing.
            let lockName = try Docker.createForeignLock(stack: name, expires: Date().addingTimeInterval(300))
            let locked = try StackVaultCLI.run(["restore", good, "--target", target, "--yes"])
            try Shell.run(["docker", "rm", "-f", lockName], check: false)
            #expect(locked.status == 1, "\(locked.stdout)\n\(locked.stderr)")
            #expect(locked.stdout.contains("stack \(name) is locked: another StackVault (elsewhere/1/abcd")
                && locked.stdout.contains("running a backup of it") && locked.stdout.contains("nothing was changed"),
                "\(locked.stdout)")
            #expect(try Self.listTree(name, "/data") == changed)
            #expect(try Docker.startedAt(name) == started)

            // The good archive restores the directory of the container's own layer (no volume, no helper).
            let restore = try StackVaultCLI.run(["restore", good, "--target", target, "--yes"])
            #expect(restore.ok, "\(restore.stdout)\n\(restore.stderr)")
            #expect(restore.stdout.contains("1 of 1 component(s) restored"))
            #expect(try Self.listTree(name, "/data") == original)
            #expect(try Docker.isRunning(name))
        }

        /// An archive that looks like StackVault's (index, manifest) but whose entries climb out with `../`.
        static func craftedTraversalArchive(stack: String) throws -> Data {
            let directory = try TestBed.temporaryDirectory("crafted")
            defer { try? FileManager.default.removeItem(at: directory) }
            let script = #"""
                import io, json, sys, tarfile
                stack, out = sys.argv[1], sys.argv[2]
                root = stack + "/volumes/data"
                def add(t, name, data=b"", kind=tarfile.REGTYPE):
                    info = tarfile.TarInfo(name); info.type = kind; info.size = len(data); info.mode = 0o644
                    t.addfile(info, io.BytesIO(data) if data else None)
                with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
                    add(t, "stackvault-index.json", json.dumps({"formatVersion": 1, "stack": stack, "components": [
                        {"service": stack, "type": "volume-path", "archivePath": root, "kind": "tree"}]}).encode())
                    add(t, root, kind=tarfile.DIRTYPE)
                    add(t, root + "/../../../../../../tmp/evil-from-stackvault", b"pwned\n")
                    add(t, root + "/../../../../../../evil", b"pwned\n")
                    add(t, "stackvault.json", json.dumps({"formatVersion": 1, "tool": "stackvault",
                        "toolVersion": "0", "host": "h", "stack": stack, "archiveName": "x", "compression": "zstd",
                        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z", "warnings": [],
                        "components": [{"service": stack, "container": stack, "type": "volume-path", "name": "data",
                        "sourcePath": "/data", "archivePath": root, "kind": "tree", "sizeBytes": 12, "entries": 3,
                        "sha256": "0" * 64}]}).encode())
                """#
            let tar = directory.appendingPathComponent("crafted.tar").path
            try Shell.run(["python3", "-c", script, stack, tar])
            try Shell.run(["zstd", "-q", "--rm", tar])
            return try Data(contentsOf: URL(fileURLWithPath: tar + ".zst"))
        }
    }
}
