import Foundation
import StackVaultCore
import Testing

extension Integration {
    @Suite struct BackupTests {
        /// Lists a directory tree as "path type mode size md5" lines, the same way on the host and in busybox.
        static let treeListing = #"""
            cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r f; do
              if [ -L "$f" ]; then echo "$f link $(readlink "$f")";
              elif [ -d "$f" ]; then echo "$f dir $(stat -c %a "$f")";
              else echo "$f file $(stat -c '%a %s' "$f") $(md5sum < "$f" | cut -c1-32)"; fi
            done
            """#

        static func listTree(inContainer container: String, path: String) throws -> String {
            try Shell.run(["docker", "exec", container, "sh", "-c", treeListing, "sh", path]).stdout
        }

        static func listTree(onHost path: String) throws -> String {
            try Shell.run(["sh", "-c", treeListing, "sh", path]).stdout
        }

        /// Seeds odd files into the busybox service's volumes.
        static func seedFiles(_ container: String) throws {
            try Docker.exec(container, #"""
                set -e
                mkdir -p "/data/sub dir/ünïcödé" /data/empty /config
                printf 'hello\n' > /data/hello.txt
                head -c 3000000 /dev/urandom > /data/random.bin
                printf 'x%.0s' $(seq 1 2000) > "/data/sub dir/ünïcödé/$(printf 'n%.0s' $(seq 1 150)).txt"
                ln -s hello.txt /data/link-to-hello
                ln /data/hello.txt /data/hardlink-to-hello
                chmod 751 /data/random.bin
                : > /data/zero-bytes
                printf 'setting=1\n' > /config/app.conf
                chmod 600 /config/app.conf
                """#)
        }

        @Test func fullStackBackupRestoresEverything() throws {
            try TestBed.requireDocker()
            let stack = try ComposeProject.up("full-stack.yml", project: "svtest_full")
            defer { stack.down() }
            let db = try stack.container("db"), maria = try stack.container("mariadb"), files = try stack.container("files")
            let dbEnv = try Docker.environment(db), mariaEnv = try Docker.environment(maria)
            let pgUser = dbEnv["POSTGRES_USER"] ?? "postgres", pgPassword = dbEnv["POSTGRES_PASSWORD"] ?? ""
            let rootPassword = mariaEnv["MARIADB_ROOT_PASSWORD"] ?? mariaEnv["MYSQL_ROOT_PASSWORD"] ?? ""
            try Docker.waitForPostgres(db, user: pgUser, password: pgPassword)
            try Docker.waitForMariaDB(maria, password: rootPassword)

            // Seed data: many rows, unicode, binary.
            let pgSeed = """
                CREATE DATABASE shop2;
                \\c shop2
                CREATE TABLE items (id int PRIMARY KEY, name text, payload bytea);
                INSERT INTO items SELECT g, 'item ' || g || ' ✓ ü', decode(md5(g::text), 'hex') FROM generate_series(1, 20000) g;
                """
            try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=\(pgPassword)", db, "psql", "-v",
                           "ON_ERROR_STOP=1", "-U", pgUser, "-d", "postgres"], input: pgSeed)
            let mariaSeed = """
                CREATE DATABASE IF NOT EXISTS inventory;
                USE inventory;
                CREATE TABLE parts (id INT PRIMARY KEY, label VARCHAR(100) CHARACTER SET utf8mb4, blob_data BLOB);
                INSERT INTO parts SELECT seq, CONCAT('part ', seq, ' 😀'), UNHEX(MD5(seq)) FROM seq_1_to_5000;
                """
            try Shell.run(["docker", "exec", "-i", "-e", "MYSQL_PWD=\(rootPassword)", maria, "mariadb", "--default-character-set=utf8mb4", "-uroot"],
                          input: mariaSeed)
            try Self.seedFiles(files)
            let originalData = try Self.listTree(inContainer: files, path: "/data")
            let originalConfig = try Self.listTree(inContainer: files, path: "/config")
            let pgQuery = "SELECT count(*), md5(string_agg(id || name || encode(payload, 'hex'), ',' ORDER BY id)) FROM items"
            let mariaQuery = "SELECT COUNT(*), MD5(GROUP_CONCAT(id, label, HEX(blob_data) ORDER BY id)) FROM inventory.parts"
            let pgBefore = try Docker.exec(db, "psql -U \(pgUser) -d shop2 -tAc \"\(pgQuery)\"", env: ["PGPASSWORD": pgPassword])
            let mariaBefore = try Docker.exec(maria, "mariadb --default-character-set=utf8mb4 -uroot -N -e \"SET SESSION group_concat_max_len = 100000000; \(mariaQuery)\"",
                                              env: ["MYSQL_PWD": rootPassword])
            let startedBefore = (db: try Docker.startedAt(db), maria: try Docker.startedAt(maria),
                                 files: try Docker.startedAt(files))

            let target = try TestBed.temporaryDirectory("full")
            defer { try? FileManager.default.removeItem(at: target) }
            let run = try StackVaultCLI.run(["backup", "--stack", "svtest_full", "--target", "file://\(target.path)"])
            #expect(run.ok, "backup failed: \(run.stdout)\n\(run.stderr)")
            #expect(run.stdout.contains("1 of 1 stack(s) backed up"))
            // No secret in the logs or the summary.
            for secret in [pgPassword, rootPassword] where !secret.isEmpty {
                #expect(!run.stdout.contains(secret) && !run.stderr.contains(secret))
            }

            // Dump containers kept running; the volume container was stopped and started again.
            #expect(try Docker.startedAt(db) == startedBefore.db)
            #expect(try Docker.startedAt(maria) == startedBefore.maria)
            #expect(try Docker.startedAt(files) != startedBefore.files)
            #expect(try Docker.isRunning(files))

            let archives = TestBed.hostFiles(target)
            #expect(archives.count == 1, "target holds \(archives)")
            let archive = try #require(archives.first)
            #expect(archive.range(of: #"^backup-svtest_full-\d{8}-\d{6}-[0-9a-f-]{36}\.tar\.zst$"#,
                                  options: .regularExpression) != nil)
            let archivePath = TestBed.hostFolder(target).appendingPathComponent(archive).path
            try Shell.run(["zstd", "-tq", archivePath])
            let extracted = target.appendingPathComponent("extracted")
            try FileManager.default.createDirectory(at: extracted, withIntermediateDirectories: true)
            try Shell.run(["tar", "--zstd", "-xpf", archivePath, "-C", extracted.path])

            // Volumes: every file's content, mode, links.
            #expect(try Self.listTree(onHost: extracted.appendingPathComponent("files/volumes/data").path) == originalData)
            #expect(try Self.listTree(onHost: extracted.appendingPathComponent("files/volumes/config").path)
                == originalConfig)
            let hello = extracted.appendingPathComponent("files/volumes/data/hello.txt").path
            let hard = extracted.appendingPathComponent("files/volumes/data/hardlink-to-hello").path
            let inodes = try Shell.run(["stat", "-c", "%i", hello, hard]).stdout.split(separator: "\n")
            #expect(inodes.count == 2 && inodes[0] == inodes[1], "hard link lost")

            // The manifest records every component.
            let manifest = try JSONSerialization.jsonObject(
                with: Data(contentsOf: extracted.appendingPathComponent("stackvault.json"))) as? [String: Any]
            let components = (manifest?["components"] as? [[String: Any]]) ?? []
            #expect(Set(components.compactMap { $0["archivePath"] as? String }) == [
                "db/database/pg_dumpall.sql", "mariadb/mariadb_dump/all_databases.sql",
                "files/volumes/data", "files/volumes/config",
            ])
            // ... with each service's image, and what each dump holds: every table's rows as the live servers
            // count them (system schemas left out: MariaDB updates its statistics tables on its own).
            for component in components {
                let container = try stack.container(component["service"] as? String ?? "")
                #expect(component["image"] as? String == (try Docker.inspect(container, "{{.Config.Image}}")))
                #expect(component["imageID"] as? String == (try Docker.inspect(container, "{{.Image}}")))
            }
            let decoded = try Manifest(jsonData: Data(contentsOf: extracted.appendingPathComponent("stackvault.json")))
            let pgContents = try #require(decoded.components.first { $0.type == "pg_dumpall" }?.contents)
            #expect(pgContents.databases.contains("shop2"))
            #expect(pgContents.tables.contains(.init(database: "shop2", schema: "public", name: "items", rows: 20000)))
            for table in pgContents.tables {
                let live = try Docker.exec(db, "psql -U \(pgUser) -d '\(table.database)' -tAc "
                    + "'SELECT count(*) FROM \"\(table.schema ?? "")\".\"\(table.name)\"'",
                    env: ["PGPASSWORD": pgPassword])
                #expect(live.trimmingCharacters(in: .whitespacesAndNewlines) == "\(table.rows)", "\(table.qualifiedName)")
            }
            let mariaContents = try #require(decoded.components.first { $0.type == "mariadb-dump" }?.contents)
            #expect(mariaContents.databases.contains("inventory") && mariaContents.databases.contains("mysql"))
            #expect(mariaContents.tables.contains(.init(database: "inventory", name: "parts", rows: 5000)))
            for table in mariaContents.tables where !["mysql", "sys"].contains(table.database) {
                let live = try Docker.exec(maria, "mariadb -uroot -N -e 'SELECT COUNT(*) FROM `\(table.database)`.`\(table.name)`'",
                                           env: ["MYSQL_PWD": rootPassword])
                #expect(live.trimmingCharacters(in: .whitespacesAndNewlines) == "\(table.rows)", "\(table.qualifiedName)")
            }

            // PostgreSQL: load the dump into a fresh server and compare.
            let freshPg = "svtest-restore-pg"
            try Shell.run(["docker", "rm", "-f", freshPg], check: false)
            try Shell.run(["docker", "run", "-d", "--name", freshPg, "--label", "stackvault.test=true", "-e", "POSTGRES_PASSWORD=fresh",
                           TestBed.postgresImage])
            defer { _ = try? Shell.run(["docker", "rm", "-f", freshPg], check: false) }
            try Docker.waitForPostgres(freshPg, user: "postgres", password: "fresh")
            let dump = try String(contentsOf: extracted.appendingPathComponent("db/database/pg_dumpall.sql"),
                                  encoding: .utf8)
            try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=fresh", freshPg, "psql", "-q", "-U", "postgres",
                           "-d", "postgres"], input: dump)
            let pgAfter = try Docker.exec(freshPg, "psql -U postgres -d shop2 -tAc \"\(pgQuery)\"",
                                          env: ["PGPASSWORD": "fresh"])
            #expect(pgAfter == pgBefore)
            #expect(pgBefore.hasPrefix("20000|"))

            // MariaDB: likewise.
            let freshMaria = "svtest-restore-maria"
            try Shell.run(["docker", "rm", "-f", freshMaria], check: false)
            try Shell.run(["docker", "run", "-d", "--name", freshMaria, "--label", "stackvault.test=true", "-e", "MARIADB_ROOT_PASSWORD=fresh",
                           TestBed.mariadbImage])
            defer { _ = try? Shell.run(["docker", "rm", "-f", freshMaria], check: false) }
            try Docker.waitForMariaDB(freshMaria, password: "fresh")
            try Shell.run(["sh", "-c", "docker exec -i -e MYSQL_PWD=fresh \(freshMaria) mariadb --default-character-set=utf8mb4 -uroot < '"
                + extracted.appendingPathComponent("mariadb/mariadb_dump/all_databases.sql").path + "'"])
            let mariaAfter = try Docker.exec(
                freshMaria, "mariadb --default-character-set=utf8mb4 -uroot -N -e \"SET SESSION group_concat_max_len = 100000000; \(mariaQuery)\"",
                env: ["MYSQL_PWD": "fresh"])
            #expect(mariaAfter == mariaBefore)
            #expect(mariaBefore.hasPrefix("5000\t"))
        }

        @Test func aFailingStackDoesNotStopTheOthers() throws {
            try TestBed.requireDocker()
            let good = try ComposeProject.up("mixed.yml", project: "svtest_good")
            defer { good.down() }
            let broken = try ComposeProject.up("wrong-password.yml", project: "svtest_broken")
            defer { broken.down() }
            let target = try TestBed.temporaryDirectory("isolation")
            defer { try? FileManager.default.removeItem(at: target) }
            let pg = try good.container(try Self.firstService(of: good))
            let pgEnv = try Docker.environment(pg)
            try Docker.waitForPostgres(pg, user: pgEnv["POSTGRES_USER"] ?? "postgres",
                                       password: pgEnv["POSTGRES_PASSWORD"] ?? "")
            let brokenContainer = try broken.container(try Self.firstService(of: broken))
            try Self.waitForDatabase(brokenContainer)

            let run = try StackVaultCLI.run(["backup", "--stack", "svtest_broken", "--stack", "svtest_good",
                                             "--target", "file://\(target.path)"])
            #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
            #expect(run.stdout.contains("FAILED"))
            #expect(run.stdout.contains("1 of 2 stack(s) backed up"))
            let archives = TestBed.hostFiles(target)
            #expect(archives.filter { $0.hasPrefix("backup-svtest_good-") }.count == 1)
            #expect(archives.filter { $0.contains("svtest_broken") }.isEmpty, "no archive for the failed stack: \(archives)")
            #expect(archives.allSatisfy { !$0.hasPrefix(".") }, "temporary files left: \(archives)")
            // The error carries the dump tool's own message.
            #expect(run.stdout.contains("password authentication failed") || run.stdout.contains("Access denied"),
                    "\(run.stdout)")
            #expect(try Docker.isRunning(pg))
        }

        @Test func sigtermDuringALargeCopyLeavesContainersRunning() throws {
            try TestBed.requireDocker()
            let name = "svtest-sigterm"
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true",
                           "--label", "backup.volume-path.big=/big", TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            try Docker.exec(name, "mkdir /big && for i in 1 2 3 4; do head -c 100000000 /dev/urandom > /big/f$i; done")
            let target = try TestBed.temporaryDirectory("sigterm")
            defer { try? FileManager.default.removeItem(at: target) }

            let process = Process()
            process.executableURL = URL(fileURLWithPath: TestBed.binary)
            // Level 19 makes the copy slow enough to interrupt it for sure.
            process.arguments = ["backup", "--stack", name, "--target", "file://\(target.path)", "--level", "19"]
            let logPath = target.appendingPathComponent("../sigterm-run.log").standardized.path
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            process.standardOutput = log
            process.standardError = log
            try process.run()
            // Wait until the container is stopped for the copy, then interrupt.
            let deadline = Date().addingTimeInterval(60)
            // `docker ps`, not `docker inspect`: the daemon holds the container's lock while its archive is read.
            func state() throws -> String {
                try Shell.run(["docker", "ps", "-a", "--filter", "name=^/\(name)$", "--format", "{{.State}}"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            while Date() < deadline, try state() == "running" { usleep(50_000) }
            #expect(try state() != "running", "the container was never stopped")
            usleep(500_000)
            let signalled = kill(process.processIdentifier, SIGTERM)
            #expect(signalled == 0)
            process.waitUntilExit()
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus != 0, "the run was not interrupted:\n\(output)")
            #expect(output.contains("cancelled"), "\(output)")
            #expect(try Docker.isRunning(name), "SIGTERM left the container stopped")
            let left = TestBed.hostFiles(target)
            #expect(left.isEmpty, "an interrupted run left \(left)")
        }

        /// `--tmpfs /scratch` (what Compose `tmpfs: [/scratch]` makes: `HostConfig.Tmpfs`, no `Mounts` entry) is
        /// emptied by a stop: the plan shows the error and the backup fails naming the label without ever stopping
        /// the container.
        @Test func aDirectoryOnATmpfsIsRefusedWithoutStoppingTheContainer() throws {
            try TestBed.requireDocker()
            let name = "svtest-inputfix-tmpfs"
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--tmpfs", "/scratch",
                           "--label", "backup.volume-path.scratch=/scratch", TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            try Docker.exec(name, "echo precious > /scratch/data.txt")
            let startedAt = try Docker.startedAt(name)
            let target = try TestBed.temporaryDirectory("tmpfs")
            defer { try? FileManager.default.removeItem(at: target) }

            let plan = try StackVaultCLI.run(["plan", "--target", "file://\(target.path)"])
            #expect((plan.stdout + plan.stderr).contains("backup.volume-path.scratch=/scratch of service"),
                    "\(plan.stdout)\n\(plan.stderr)")
            let run = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"])
            #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
            let output = run.stdout + run.stderr
            for part in ["backup.volume-path.scratch=/scratch", "container \(name)", "tmpfs mount /scratch",
                         "emptied when the container stops"] {
                #expect(output.contains(part), "\(part) missing in:\n\(output)")
            }
            #expect(try Docker.isRunning(name))
            #expect(try Docker.startedAt(name) == startedAt, "the container was stopped and started again")
            #expect(try Docker.exec(name, "cat /scratch/data.txt").contains("precious"))
            let left = try FileManager.default.contentsOfDirectory(atPath: target.path)
            #expect(left.isEmpty, "a refused run left \(left)")
        }

        @Test func passwordFileCredentialsDumpAndRestore() throws {
            try TestBed.requireDocker()
            let stack = try ComposeProject.up("pg-file-secret.yml", project: "svtest_pgfile")
            defer { stack.down() }
            let db = try stack.container("db")
            let password = try String(contentsOf: TestBed.fixtures.appendingPathComponent("secrets/pg_password.txt"),
                                      encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try Docker.waitForPostgres(db, user: "app", password: password)
            #expect(try Docker.environment(db)["POSTGRES_PASSWORD"] == nil, "the fixture must only have the _FILE form")

            let target = try TestBed.temporaryDirectory("pgfile")
            defer { try? FileManager.default.removeItem(at: target) }
            let run = try StackVaultCLI.run(["backup", "--stack", "svtest_pgfile", "--target", "file://\(target.path)"])
            #expect(run.ok, "\(run.stdout)\n\(run.stderr)")
            #expect(!run.stderr.contains(password) && !run.stdout.contains(password))
            let archive = try #require(TestBed.hostFiles(target).first)
            let dump = try Shell.run(["tar", "--zstd", "-xOf", TestBed.hostFolder(target).appendingPathComponent(archive).path,
                                      "db/database/pg_dumpall.sql"]).stdout

            let fresh = "svtest-restore-pgfile"
            try Shell.run(["docker", "rm", "-f", fresh], check: false)
            try Shell.run(["docker", "run", "-d", "--name", fresh, "--label", "stackvault.test=true",
                           "-e", "POSTGRES_PASSWORD=fresh", TestBed.postgresImage])
            defer { _ = try? Shell.run(["docker", "rm", "-f", fresh], check: false) }
            try Docker.waitForPostgres(fresh, user: "postgres", password: "fresh")
            try Shell.run(["docker", "exec", "-i", "-e", "PGPASSWORD=fresh", fresh, "psql", "-q", "-U", "postgres",
                           "-d", "postgres"], input: dump)
            let rows = try Docker.exec(fresh, "psql -U postgres -d appdb -tAc 'SELECT id, name FROM stackvault_seed ORDER BY id'",
                                       env: ["PGPASSWORD": "fresh"])
            #expect(rows == "1|alpha\n2|beta\n3|gamma ünïcode\n")
            // The role and its password came along: the restored server accepts the original credentials.
            try Docker.waitForPostgres(fresh, user: "app", password: password)
        }

        @Test func retentionPrunesAfterEachSuccessfulBackup() throws {
            try TestBed.requireDocker()
            let name = "svtest-retention"
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.bin=/bin",
                           TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let target = try TestBed.temporaryDirectory("retention")
            defer { try? FileManager.default.removeItem(at: target) }
            try FileManager.default.createDirectory(at: TestBed.hostFolder(target), withIntermediateDirectories: true)
            try Data("not ours".utf8).write(to: TestBed.hostFolder(target).appendingPathComponent("backup-\(name)-notes.txt"))
            var written: [String] = []
            for _ in 1...3 {
                let run = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"],
                                                environment: ["RETENTION_KEEP_LAST": "2"])
                #expect(run.ok, "\(run.stderr)")
                written.append(contentsOf: TestBed.hostFiles(target)
                    .filter { $0.hasSuffix(".tar.zst") && !written.contains($0) })
                sleep(1)  // archive names carry whole seconds
            }
            let left = TestBed.hostFiles(target).sorted()
            #expect(written.count == 3)
            #expect(Set(left) == Set(written.suffix(2) + ["backup-\(name)-notes.txt"]), "left: \(left)")

            let dry = try StackVaultCLI.run(["prune", "--keep-last", "1", "--dry-run", "--target", "file://\(target.path)"])
            #expect(dry.ok, "\(dry.stderr)")
            #expect(dry.stdout.contains("would remove"))
            #expect(TestBed.hostFiles(target).count == 3)
        }

        static func firstService(of project: ComposeProject) throws -> String {
            let services = try Shell.run(["docker-compose", "-p", project.name, "-f", project.file.path, "config",
                                          "--services"]).stdout.split(separator: "\n").map(String.init)
            guard let first = services.first else { throw TestFailure("no services in \(project.file.path)") }
            return first
        }

        /// Waits for whichever database the container runs (the fixture's entrypoint decides the password).
        static func waitForDatabase(_ container: String) throws {
            try Docker.waitUntil(container, "command -v pg_isready >/dev/null && pg_isready -q "
                + "|| mariadb-admin ping --silent 2>&1 | grep -q -e alive -e denied")
        }
    }
}
