import Foundation
import Testing

extension Integration {
    /// `stackvault drill` against real PostgreSQL, MariaDB and busybox containers: green, red with the database's
    /// own error, a missing image, and SIGTERM; nothing of a drill is left behind, and the live stack is untouched.
    @Suite struct DrillTests {
        let id = String(UUID().uuidString.lowercased().prefix(8))

        /// Drill containers, and anonymous volumes that no container uses.
        static func leftovers() throws -> (containers: [String], volumes: Set<String>) {
            let containers = try Shell.run(["docker", "ps", "-aq", "--filter", "label=stackvault.drill"]).stdout
                .split(separator: "\n").map(String.init)
            let volumes = try Shell.run(["docker", "volume", "ls", "-q", "--filter", "dangling=true"]).stdout
                .split(separator: "\n").map(String.init).filter { $0.count == 64 }
            return (containers, Set(volumes))
        }

        static func postgres(_ name: String, extraLabels: [String] = [], image: String = TestBed.postgresImage)
            throws
        {
            try Shell.run(["docker", "rm", "-f", "-v", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.database.pg_dumpall=true",
                           "-e", "POSTGRES_PASSWORD=live-\(name)"] + extraLabels + [image])
            try Docker.waitForPostgres(name, user: "postgres", password: "live-\(name)")
        }

        static func psql(_ name: String, _ sql: String, database: String = "postgres") throws {
            try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=live-\(name)", name, "psql", "-q", "-v",
                           "ON_ERROR_STOP=1", "-U", "postgres", "-d", database], input: sql)
        }

        @Test func aGoodArchiveDrillsGreenWithCountsAndLeavesNothing() throws {
            try TestBed.requireDocker()
            let pg = "svtest-drill-pg-\(id)", maria = "svtest-drill-maria-\(id)", files = "svtest-drill-files-\(id)"
            defer {
                for name in [pg, maria, files] { _ = try? Shell.run(["docker", "rm", "-f", "-v", name], check: false) }
                _ = try? Shell.run(["docker", "volume", "rm", "-f", "\(files)-data"], check: false)
            }
            try Self.postgres(pg)
            try Self.psql(pg, #"""
                CREATE DATABASE shop;
                \c shop
                CREATE TABLE items (id int PRIMARY KEY, name text);
                INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3000) g;
                CREATE SCHEMA "Odd ""S""";
                CREATE TABLE "Odd ""S""".empty (a int);
                CREATE TABLE parent (a int); CREATE TABLE child (b int) INHERITS (parent);
                INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (3, 3);
                """#)
            try Shell.run(["docker", "rm", "-f", maria], check: false)
            try Shell.run(["docker", "run", "-d", "--name", maria, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.database.mariadb-dump=true",
                           "-e", "MARIADB_ROOT_PASSWORD=live-\(maria)", TestBed.mariadbImage])
            try Docker.waitForMariaDB(maria, password: "live-\(maria)")
            try Shell.run(["docker", "exec", "-i", "-e", "MYSQL_PWD=live-\(maria)", maria, "mariadb", "-uroot"],
                          input: """
                CREATE DATABASE `we``ird`; USE `we``ird`;
                CREATE TABLE t (id INT PRIMARY KEY, s TEXT);
                INSERT INTO t SELECT seq, CONCAT('it''s (', seq, ');') FROM seq_1_to_2500;
                """)
            try Shell.run(["docker", "run", "-d", "--init", "--name", files, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           "-v", "\(files)-data:/data", TestBed.busyboxImage, "sleep", "100000"])
            try Docker.exec(files, "mkdir -p /data/a && echo hello > /data/a/f && ln -s f /data/a/l && chmod 640 /data/a/f")

            let target = try TestBed.temporaryDirectory("drill-good")
            defer { try? FileManager.default.removeItem(at: target) }
            let backup = try StackVaultCLI.run(["backup", "--stack", pg, "--stack", maria, "--stack", files,
                                                "--target", "file://\(target.path)"])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            let before = try Self.leftovers()
            let started = (pg: try Docker.startedAt(pg), maria: try Docker.startedAt(maria))

            for (stack, expected) in [(pg, ["3003 row(s)", "table(s)"]), (maria, ["database(s) exist", "table(s)"]),
                                      (files, ["tree digest"])]
            {
                let drill = try StackVaultCLI.run(["drill", "--latest", "--stack", stack,
                                                   "--target", "file://\(target.path)"])
                #expect(drill.status == 0, "\(drill.stdout)\n\(drill.stderr)")
                #expect(drill.stdout.contains("drill passed"))
                for text in expected { #expect(drill.stdout.contains(text), "\(stack): \(drill.stdout)") }
            }
            // The JSON report: one check per component, each passed, the counts compared.
            let json = try StackVaultCLI.run(["drill", "--latest", "--stack", pg, "--json",
                                              "--target", "file://\(target.path)"])
            let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect(report?["passed"] as? Bool == true, "\(json.stdout)")
            let checks = report?["checks"] as? [[String: Any]] ?? []
            #expect(checks.count == 1 && checks.allSatisfy { $0["passed"] as? Bool == true })

            let after = try Self.leftovers()
            #expect(after.containers.isEmpty, "drill containers left: \(after.containers)")
            #expect(after.volumes.subtracting(before.volumes).isEmpty, "volumes left: \(after.volumes)")
            // The live databases were never stopped.
            #expect(try Docker.startedAt(pg) == started.pg && Docker.startedAt(maria) == started.maria)
        }

        @Test func aDumpThatCannotReplayDrillsRedWithThePostgresErrorAndTheStackUntouched() throws {
            try TestBed.requireDocker()
            let pg = "svtest-drill-bad-\(id)"
            defer { _ = try? Shell.run(["docker", "rm", "-f", "-v", pg], check: false) }
            try Self.postgres(pg)
            // A CHECK constraint calls a function whose body names a table without its schema: it works live, and
            // the dump verifies, but pg_dump's replay runs with an empty search_path, so loading the table fails.
            try Self.psql(pg, """
                CREATE TABLE ref (a int); INSERT INTO ref VALUES (1);
                CREATE FUNCTION pos(x int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT x >= (SELECT min(a) FROM ref)';
                CREATE TABLE t (a int CHECK (pos(a)));
                INSERT INTO t SELECT g FROM generate_series(1, 100) g;
                """)
            let target = try TestBed.temporaryDirectory("drill-bad")
            defer { try? FileManager.default.removeItem(at: target) }
            #expect(try StackVaultCLI.run(["backup", "--stack", pg, "--target", "file://\(target.path)"]).ok)
            let verify = try StackVaultCLI.run(["verify", "--latest", "--stack", pg, "--target", "file://\(target.path)"])
            #expect(verify.status == 0, "the archive verifies: \(verify.stdout)")
            let started = try Docker.startedAt(pg)

            let drill = try StackVaultCLI.run(["drill", "--latest", "--stack", pg, "--target", "file://\(target.path)"])
            #expect(drill.status == 1, "\(drill.stdout)\n\(drill.stderr)")
            #expect(drill.stdout.contains("FAILED") && drill.stdout.contains("DRILL FAILED"))
            #expect(drill.stdout.contains("relation \"ref\" does not exist"), "the database's own error: \(drill.stdout)")
            // The live stack: never stopped, its rows all there.
            #expect(try Docker.startedAt(pg) == started)
            let rows = try Docker.exec(pg, "psql -U postgres -tAc 'SELECT count(*) FROM t'", env: ["PGPASSWORD": "live-\(pg)"])
            #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "100")
            #expect(try Self.leftovers().containers.isEmpty)
        }

        /// A replay that loses rows without an error, constructed with real PostgreSQL behaviour: an extension's
        /// configuration table (`pg_extension_config_dump`) has its rows in the dump, and `CREATE EXTENSION` in the
        /// replay creates the extension's BEFORE INSERT trigger before those rows are copied in, so the trigger
        /// (which drops even keys; the live rows were inserted with triggers off, `session_replication_role =
        /// replica`) silently filters them. The drill must name the table and both counts.
        @Test func aTableWhoseReplayLosesRowsIsReportedWithTheTableAndBothCounts() throws {
            try TestBed.requireDocker()
            let name = "svtest-drill-lose-\(id)", image = "svtest-drill-pgext:\(id)"
            defer {
                _ = try? Shell.run(["docker", "rm", "-f", "-v", name, "\(name)-build"], check: false)
                _ = try? Shell.run(["docker", "rmi", "-f", image], check: false)
            }
            // The PostgreSQL image plus the extension's files, so that the live server and the drill's have it.
            try Shell.run(["docker", "run", "-d", "--name", "\(name)-build", "--label", "stackvault.test=true",
                           "-e", "POSTGRES_PASSWORD=x", TestBed.postgresImage])
            let files = [
                "svdrop.control": "comment = 'drops even keys on insert'\ndefault_version = '1.0'\n"
                    + "relocatable = false\nschema = public\n",
                "svdrop--1.0.sql": """
                    CREATE TABLE svdrop_config (k int PRIMARY KEY, v text);
                    SELECT pg_catalog.pg_extension_config_dump('svdrop_config', '');
                    CREATE FUNCTION svdrop_filter() RETURNS trigger LANGUAGE plpgsql AS
                      'BEGIN IF NEW.k % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END';
                    CREATE TRIGGER svdrop_filter BEFORE INSERT ON svdrop_config
                      FOR EACH ROW EXECUTE FUNCTION svdrop_filter();

                    """,
            ]
            for (file, text) in files {
                try Shell.run(["docker", "exec", "-i", "\(name)-build", "sh", "-c",
                               "cat > \"$(pg_config --sharedir)/extension/\(file)\""], input: text)
            }
            try Shell.run(["docker", "commit", "\(name)-build", image])
            try Shell.run(["docker", "rm", "-f", "-v", "\(name)-build"])
            try Self.postgres(name, image: image)
            try Self.psql(name, """
                CREATE EXTENSION svdrop;
                SET session_replication_role = replica;
                INSERT INTO svdrop_config SELECT g, 'v' || g FROM generate_series(1, 10) g;
                CREATE TABLE kept (a int); INSERT INTO kept SELECT generate_series(1, 7);
                """)
            let live = try Docker.exec(name, "psql -tA -U postgres -c 'SELECT count(*) FROM svdrop_config'",
                                       env: ["PGPASSWORD": "live-\(name)"])
            #expect(live.trimmingCharacters(in: .whitespacesAndNewlines) == "10", "\(live)")
            let target = try TestBed.temporaryDirectory("drill-lose")
            defer { try? FileManager.default.removeItem(at: target) }
            let backup = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")

            let drill = try StackVaultCLI.run(["drill", "--latest", "--stack", name, "--target", "file://\(target.path)"])
            #expect(drill.status == 1, "\(drill.stdout)\n\(drill.stderr)")
            #expect(drill.stdout.contains("table postgres.public.svdrop_config: 10 rows in the dump, 5 after the replay"), "\(drill.stdout)")
            #expect(!drill.stdout.contains("public.kept"), "a table that kept its rows is reported:\n\(drill.stdout)")
            // A restore drills first, so it refuses the same archive and the live rows stay as they are.
            let restore = try StackVaultCLI.run(["restore", "--latest", "--stack", name, "--yes",
                                                 "--target", "file://\(target.path)"])
            #expect(restore.status == 1, "\(restore.stdout)\n\(restore.stderr)")
            #expect((restore.stdout + restore.stderr).contains("svdrop_config: 10 rows in the dump, 5 after the replay"),
                    "\(restore.stdout)\n\(restore.stderr)")
            let after = try Docker.exec(name, "psql -tA -U postgres -c 'SELECT count(*) FROM svdrop_config'",
                                        env: ["PGPASSWORD": "live-\(name)"])
            #expect(after.trimmingCharacters(in: .whitespacesAndNewlines) == "10", "the refused restore changed rows")
            #expect(try Self.leftovers().containers.isEmpty)
        }

        @Test func aMissingImageFailsTheDrillNamingIt() throws {
            try TestBed.requireDocker()
            let name = "svtest-drill-img-\(id)", image = "svtest-drill-image:\(id)"
            defer {
                _ = try? Shell.run(["docker", "rm", "-f", "-v", name], check: false)
                _ = try? Shell.run(["docker", "rmi", "-f", image], check: false)
            }
            // An image of its own (its own id), gone by the time of the drill.
            try Shell.run(["docker", "run", "--name", "\(name)-build", "--label", "stackvault.test=true",
                           TestBed.busyboxImage, "sh", "-c", "echo \(id) > /marker"])
            try Shell.run(["docker", "commit", "\(name)-build", image])
            try Shell.run(["docker", "rm", "-f", "\(name)-build"])
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           "-v", "/data", image, "sleep", "100000"])
            try Docker.exec(name, "echo x > /data/x")
            let target = try TestBed.temporaryDirectory("drill-img")
            defer { try? FileManager.default.removeItem(at: target) }
            #expect(try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"]).ok)
            try Shell.run(["docker", "rm", "-f", "-v", name])
            try Shell.run(["docker", "rmi", "-f", image])

            let drill = try StackVaultCLI.run(["drill", "--latest", "--stack", name, "--target", "file://\(target.path)"])
            #expect(drill.status == 1, "\(drill.stdout)\n\(drill.stderr)")
            #expect(drill.stdout.contains(image) && drill.stdout.contains("no longer exists"), "\(drill.stdout)")
            #expect(try Self.leftovers().containers.isEmpty)

            // Several stacks in one call: a good one beside it still drills green, and the call says 1 of 2 passed.
            let good = "svtest-drill-good-\(id)"
            defer { _ = try? Shell.run(["docker", "rm", "-f", "-v", good], check: false) }
            try Shell.run(["docker", "run", "-d", "--init", "--name", good, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           "-v", "/data", TestBed.busyboxImage, "sleep", "100000"])
            try Docker.exec(good, "echo y > /data/y")
            #expect(try StackVaultCLI.run(["backup", "--stack", good, "--target", "file://\(target.path)"]).ok)
            let both = try StackVaultCLI.run(["drill", "--latest", "--json", "--target", "file://\(target.path)"])
            #expect(both.status == 1, "\(both.stdout)\n\(both.stderr)")
            let document = try #require(
                (try? JSONSerialization.jsonObject(with: Data(both.stdout.utf8))) as? [String: Any], "\(both.stdout)")
            let reports = document["reports"] as? [[String: Any]] ?? []
            #expect(document["passed"] as? Bool == false)
            #expect(Set(reports.compactMap { $0["stack"] as? String }) == [name, good], "\(both.stdout)")
            #expect(reports.first { $0["stack"] as? String == good }?["passed"] as? Bool == true, "\(both.stdout)")
            #expect(both.stderr.contains("1 of 2 drill(s) passed"), "\(both.stderr)")
            let chosen = try StackVaultCLI.run(["drill", "--latest", "--stack", good, "--stack", "svtest-nope-\(id)",
                                                "--target", "file://\(target.path)"])
            #expect(chosen.status == 2, "\(chosen.stdout)\n\(chosen.stderr)")
            #expect(chosen.stdout.contains("drill passed"), "\(chosen.stdout)")
            #expect(chosen.stderr.contains("svtest-nope-\(id)"), "\(chosen.stderr)")
            #expect(try Self.leftovers().containers.isEmpty)
        }

        @Test func sigtermDuringADrillLeavesNothingBehind() throws {
            try TestBed.requireDocker()
            let pg = "svtest-drill-term-\(id)"
            defer { _ = try? Shell.run(["docker", "rm", "-f", "-v", pg], check: false) }
            try Self.postgres(pg)
            let target = try TestBed.temporaryDirectory("drill-term")
            defer { try? FileManager.default.removeItem(at: target) }
            #expect(try StackVaultCLI.run(["backup", "--stack", pg, "--target", "file://\(target.path)"]).ok)
            let before = try Self.leftovers()

            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestBed.binary)
            process.arguments = ["drill", "--latest", "--stack", pg, "--target", "file://\(target.path)"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // SIGTERM once the drill container exists (its server is still initialising then).
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, try Self.leftovers().containers.isEmpty, process.isRunning { usleep(100_000) }
            #expect(!(try Self.leftovers().containers.isEmpty), "the drill made no container")
            let status = Shell.signal(process, SIGTERM, seconds: 60)
            #expect(status != nil && status != 0, "the drill exit status after SIGTERM: \(String(describing: status))")
            let after = try Self.leftovers()
            #expect(after.containers.isEmpty, "drill containers left: \(after.containers)")
            #expect(after.volumes.subtracting(before.volumes).isEmpty, "volumes left")
        }
    
        @Test func theDaemonDrillsOnItsScheduleRecordsItAndHealthFailsOnARedDrill() throws {
            try TestBed.requireDocker()
            let good = "svtest-drill-dgood-\(id)", bad = "svtest-drill-dbad-\(id)"
            defer { for name in [good, bad] { _ = try? Shell.run(["docker", "rm", "-f", "-v", name], check: false) } }
            try Self.postgres(good)
            try Self.psql(good, "CREATE TABLE t (a int); INSERT INTO t SELECT g FROM generate_series(1, 42) g;")
            try Self.postgres(bad)
            try Self.psql(bad, """
                CREATE TABLE ref (a int); INSERT INTO ref VALUES (1);
                CREATE FUNCTION pos(x int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT x >= (SELECT min(a) FROM ref)';
                CREATE TABLE t (a int CHECK (pos(a))); INSERT INTO t VALUES (5);
                """)
            let directory = try TestBed.temporaryDirectory("daemon-drill")
            let target = directory.appendingPathComponent("target")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            let backup = try StackVaultCLI.run(["backup", "--stack", good, "--stack", bad,
                                                "--target", "file://\(target.path)"])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")

            let port = Int.random(in: 20000..<60000)
            let daemon = try Integration.DaemonTests.Daemon("drill", stacks: [good, bad], environment: [
                "DRILL_SCHEDULE": "0 4 1 1 *", "DRILL_ON_START": "true", "DRILL_MAX_AGE": "86400",
                "METRICS_ADDR": "127.0.0.1:\(port)",
            ], directory: directory)
            defer { daemon.cleanUp() }
            let state = try daemon.waitForState(seconds: 180, "both drills") { ($0.drills ?? [:]).count == 2 }
            #expect(state.drillSchedule == "0 4 1 1 *" && state.drillMaxAgeSeconds == 86400)
            #expect(state.drills?[good]?.passed == true, "\(daemon.log.suffix(3000))")
            #expect(state.drills?[good]?.lastSuccessAt != nil)
            let red = try #require(state.drills?[bad])
            #expect(!red.passed && red.problems.joined().contains("relation \"ref\" does not exist"), "\(red)")

            // `list` shows each stack's drilled archive (from the daemon's state file).
            let list = try StackVaultCLI.run(["list", "--target", "file://\(target.path)"],
                                             environment: ["STATE_FILE": daemon.stateFile.path])
            let lines = list.stdout.split(separator: "\n")
            #expect(lines.contains { $0.contains(good) && $0.contains("passed ") }, "\(list.stdout)")
            #expect(lines.contains { $0.contains(bad) && $0.contains("FAILED ") }, "\(list.stdout)")
            // So does `status`, the fleet view, for this host's stacks.
            let status = try StackVaultCLI.run(["status", "--json", "--target", "file://\(target.path)"],
                                               environment: ["STATE_FILE": daemon.stateFile.path])
            let stacks = ((try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any])?[
                "stacks"] as? [[String: Any]] ?? []
            let drillOf = { (stack: String) in
                stacks.first { $0["stack"] as? String == stack }?["lastDrill"] as? [String: Any]
            }
            #expect(drillOf(good)?["passed"] as? Bool == true, "\(status.stdout)")
            #expect(drillOf(bad)?["passed"] as? Bool == false, "\(status.stdout)")

            let health = try StackVaultCLI.run(["health"], environment: ["STATE_FILE": daemon.stateFile.path])
            #expect(health.status == 1, "\(health.stdout)\n\(health.stderr)")
            #expect((health.stdout + health.stderr).contains("restore drill of stack \(bad)"))

            let metrics = try Integration.MetricsTests.fetch("http://127.0.0.1:\(port)/metrics").body
            let labels = { (stack: String) in "{host=\"\(TestBed.engineHost)\",stack=\"\(stack)\"}" }
            #expect(metrics.contains("stackvault_stack_drill_failures_total\(labels(bad)) 1"), "\(metrics)")
            #expect(metrics.contains("stackvault_stack_last_drill_success_timestamp_seconds\(labels(good))"))
            #expect(daemon.stop() == 0)
            #expect(try Self.leftovers().containers.isEmpty)
        }

        @Test func aRestoreDrillsFirstAndRefusesADumpThatDoesNotReplayLeavingTheTargetAsItWas() throws {
            try TestBed.requireDocker()
            let pg = "svtest-drill-restore-\(id)"
            defer { _ = try? Shell.run(["docker", "rm", "-f", "-v", pg], check: false) }
            try Self.postgres(pg)
            try Self.psql(pg, """
                CREATE TABLE ref (a int); INSERT INTO ref VALUES (1);
                CREATE FUNCTION pos(x int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT x >= (SELECT min(a) FROM ref)';
                CREATE TABLE t (a int CHECK (pos(a))); INSERT INTO t SELECT g FROM generate_series(1, 100) g;
                """)
            let target = try TestBed.temporaryDirectory("drill-restore")
            defer { try? FileManager.default.removeItem(at: target) }
            #expect(try StackVaultCLI.run(["backup", "--stack", pg, "--target", "file://\(target.path)"]).ok)
            try Self.psql(pg, "INSERT INTO t VALUES (101); CREATE DATABASE after_backup;")
            let databases = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
            let state = { () throws -> String in
                try Docker.exec(pg, "psql -U postgres -tAc 'SELECT count(*) FROM t' && psql -U postgres -tAc \"\(databases)\"",
                                env: ["PGPASSWORD": "live-\(pg)"])
            }
            let before = try state()

            let restore = try StackVaultCLI.run(["restore", "--latest", "--stack", pg, "--yes",
                                                 "--target", "file://\(target.path)"])
            #expect(restore.status == 1, "\(restore.stdout)\n\(restore.stderr)")
            #expect(restore.stderr.contains("refusing to restore") && restore.stderr.contains("relation \"ref\" does not exist"),
                    "\(restore.stderr)")
            #expect(try state() == before, "the target changed")
            #expect(try Self.leftovers().containers.isEmpty)
        }

        @Test func directoriesWithACLsXattrsAndASymlinkedLabelPathDrillGreen() throws {
            try TestBed.requireDocker()
            let name = "svtest-drill-acl-\(id)", volume = "svtest-drill-acl-\(id)-data"
            defer {
                _ = try? Shell.run(["docker", "rm", "-f", "-v", name], check: false)
                _ = try? Shell.run(["docker", "volume", "rm", "-f", volume], check: false)
            }
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           "--label", "backup.volume-path.lnk=/link", "-v", "\(volume):/data", TestBed.busyboxImage,
                           "sh", "-c", "ln -s /data /link && sleep 100000"])
            try Docker.exec(name, "echo hello > /data/f && mkdir /data/d && echo x > /data/d/g")
            // An access ACL (its mask becomes the group bits stat shows), a default ACL and an xattr, set on the host.
            let mountpoint = try Shell.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try Shell.run(["setfacl", "-m", "u:1234:rwx", "\(mountpoint)/f"])
            try Shell.run(["setfacl", "-d", "-m", "u:1234:rx", "\(mountpoint)/d"])
            try Shell.run(["setfattr", "-n", "user.drill", "-v", "1", "\(mountpoint)/f"])

            let target = try TestBed.temporaryDirectory("drill-acl")
            defer { try? FileManager.default.removeItem(at: target) }
            let backup = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            let drill = try StackVaultCLI.run(["drill", "--latest", "--stack", name, "--target", "file://\(target.path)"])
            #expect(drill.status == 0, "\(drill.stdout)\n\(drill.stderr)")
            #expect(drill.stdout.components(separatedBy: "tree digest").count == 3, "both directories: \(drill.stdout)")
            #expect(try Self.leftovers().containers.isEmpty)
        }
    }
}
