import Foundation
import Testing

extension Integration {
    @Suite struct PlanTests {
        struct PlanDocument: Decodable {
            struct Stack: Decodable {
                var name: String
                var services: [Service]
            }

            struct Service: Decodable {
                var service: String
                var container: String
                var strategies: [Strategy]
                var stop: Bool
                var warnings: [String]
                var errors: [String]
            }

            struct Strategy: Decodable, Equatable {
                var type: String
                var name: String?
                var path: String?
                var archivePath: String?
            }

            var stacks: [Stack]
            var target: String?

            func stack(_ name: String) -> Stack? { stacks.first { $0.name == name } }
        }

        @Test func planOfRealComposeStacks() throws {
            try TestBed.requireDocker()
            let full = try ComposeProject.up("full-stack.yml", project: "svtest_plan_full")
            defer { full.down() }
            let mixed = try ComposeProject.up("mixed.yml", project: "svtest_plan_mixed")
            defer { mixed.down() }
            let bad = try ComposeProject.up("bad-label.yml", project: "svtest_plan_bad")
            defer { bad.down() }
            let nothing = try ComposeProject.up("nothing.yml", project: "svtest_plan_nothing")
            defer { nothing.down() }
            let standalone = "svtest-plan-standalone"
            try Shell.run(["docker", "rm", "-f", standalone], check: false)
            try Shell.run(["docker", "run", "-d", "--name", standalone, "--label", "stackvault.test=true", "--label", "backup.enable=true",
                           "--label", "backup.volume-path.bin=/bin", TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", standalone], check: false) }

            let result = try StackVaultCLI.run(["plan", "--json", "--target", "file:///tmp/sv-plan-target"])
            // The bad-label stack has errors: exit code 1, and the JSON is still printed.
            #expect(result.status == 1, "plan exit code: \(result.stderr)")
            let plan = try JSONDecoder().decode(PlanDocument.self, from: Data(result.stdout.utf8))
            #expect(plan.target == "file:///tmp/sv-plan-target")

            let fullStack = try #require(plan.stack("svtest_plan_full"))
            #expect(fullStack.services.map(\.service) == ["db", "files", "mariadb"])  // web has no backup.enable
            let db = fullStack.services[0]
            #expect(db.strategies == [.init(type: "pg_dumpall", archivePath: "db/database/pg_dumpall.sql")])
            #expect(!db.stop)
            #expect(db.errors.isEmpty)
            let files = fullStack.services[1]
            #expect(files.stop)
            #expect(Set(files.strategies.map { "\($0.name ?? "")=\($0.path ?? "")" }) == ["data=/data", "config=/config"])
            let maria = fullStack.services[2]
            #expect(maria.strategies.map(\.type) == ["mariadb-dump"])
            #expect(maria.strategies.first?.archivePath == "mariadb/mariadb_dump/all_databases.sql")
            #expect(!maria.stop)

            let mixedService = try #require(plan.stack("svtest_plan_mixed")?.services.first)
            #expect(mixedService.stop)
            #expect(mixedService.strategies.map(\.type) == ["volume-path"])
            #expect(mixedService.warnings.contains { $0.contains("pg_dumpall skipped") })

            let badService = try #require(plan.stack("svtest_plan_bad")?.services.first)
            #expect(!badService.errors.isEmpty)
            #expect(badService.errors.allSatisfy { $0.contains("backup.volume-path.") })
            #expect(badService.warnings.contains { $0.contains("backup.frobnicate") })

            #expect(plan.stack("svtest_plan_nothing") == nil)

            let alone = try #require(plan.stack(standalone))
            #expect(alone.services.map(\.service) == [standalone])
            #expect(alone.services.first?.strategies == [
                .init(type: "volume-path", name: "bin", path: "/bin", archivePath: "\(standalone)/volumes/bin"),
            ])

            // The human-readable form names the same things.
            let text = try StackVaultCLI.run(["plan"])
            #expect(text.stdout.contains("Stack svtest_plan_full"))
            #expect(text.stdout.contains("ERROR"))
            // Nothing was changed on the host.
            #expect(try Docker.isRunning(try full.container("files")))
        }

        @Test func unreachableDockerExitsWithTwo() throws {
            try TestBed.requireDocker()
            let result = try StackVaultCLI.run(["plan"], environment: ["DOCKER_HOST": "unix:///nonexistent/docker.sock"])
            #expect(result.status == 2)
            #expect(result.stderr.contains("cannot connect to the Docker daemon at unix:///nonexistent/docker.sock"))
        }

        /// A wrong value stops `backup` and `daemon` with exit code 2 and a message naming the variable and what is
        /// accepted; it is never replaced by the default (`STOP_TIMEOUT=abc` once ran with 30 s).
        @Test(arguments: [
            ("STOP_TIMEOUT", "abc", "whole number of seconds, from 0 to 3600"),
            ("LOG_LEVEL", "verbose", "one of trace, debug, info"),
            ("ZSTD_LEVEL", "abc", "whole number, from -"),
            ("ZSTD_LEVEL", "99", "whole number, from -"),
            ("ZSTD_THREADS", "many", "whole number of threads"),
            ("MIN_FREE_SPACE", "infg", "not a size"),
            ("AGE_RECIPIENTS", "", "set but empty"),
        ])
        func aBadSettingExitsWith2NamingIt(variable: String, value: String, says: String) throws {
            let target = try TestBed.temporaryDirectory("bad-setting")
            defer { try? FileManager.default.removeItem(at: target) }
            for command in ["backup", "daemon"] {
                // `timeout`: a daemon that wrongly accepted the value would otherwise run on; `--stack` with no such
                // stack: a backup that wrongly accepted it touches no container of the shared test bed.
                let run = try Shell.run(["timeout", "60", TestBed.binary, command, "--stack", "svtest-no-such-stack",
                                         "--target", "file://\(target.path)"],
                                        environment: [variable: value, "CRON_SCHEDULE": "0 3 1 1 *",
                                                      "STATE_FILE": target.appendingPathComponent("state.json").path],
                                        check: false)
                #expect(run.status == 2, "\(command) with \(variable)='\(value)': \(run.stdout)\n\(run.stderr)")
                #expect(run.stderr.contains("\(variable)") && run.stderr.contains(says),
                        "\(command) with \(variable)='\(value)': \(run.stderr)")
            }
        }
    }
}
