import Foundation
import StackVaultCore
import Testing

/// Docker Swarm stacks (`docker stack deploy`) on a single-node swarm: discovery by stack and service labels (also
/// `deploy.labels`), services scaled to 0 and back instead of stopped task containers, restore, and a StackVault
/// killed while a service is at 0.
///
/// The swarm is initialised by each test when the engine is in none, and left again afterwards (with the
/// `docker_gwbridge` network it creates); a swarm that is already active is used as it is and left alone.
extension Integration {
    @Suite struct SwarmTests {
        static let postgres = ["PGPASSWORD": "app-secret-pw"]

        /// Runs `body` on an engine that is a swarm manager.
        static func withSwarm(_ body: () async throws -> Void) async throws {
            try TestBed.requireDocker()
            let state = try Shell.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let initialised = state != "active"
            if initialised {
                try Shell.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])
            }
            defer {
                if initialised {
                    _ = try? Shell.run(["docker", "swarm", "leave", "--force"], check: false)
                    _ = try? Shell.run(["docker", "network", "rm", "docker_gwbridge"], check: false)
                }
            }
            try await body()
        }

        /// A stack deployed from `Fixtures/swarm-stack.yml` under a unique name; `remove()` takes it and its volumes
        /// away.
        struct Stack {
            let name = "svswarm\(UUID().uuidString.prefix(8).lowercased())"

            static func deploy() async throws -> Stack {
                let stack = Stack()
                try Shell.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c",
                               TestBed.fixtures.appendingPathComponent("swarm-stack.yml").path, stack.name])
                for (service, count) in [("db", 1), ("files", 2), ("tagged", 1)] {
                    try await stack.waitUntilRunning(service, count: count)
                }
                try Docker.waitForPostgres(try stack.task("db"), user: "app", password: "app-secret-pw")
                return stack
            }

            func remove() async {
                _ = try? Shell.run(["docker", "stack", "rm", name], check: false)
                for _ in 0..<120 {
                    let left = (try? Shell.run(["docker", "ps", "-aq", "--filter",
                                                "label=com.docker.stack.namespace=\(name)"]).stdout) ?? ""
                    if left.isEmpty { break }
                    try? await Task.sleep(for: .milliseconds(500))
                }
                for volume in ["files-data", "tagged-data"] {
                    _ = try? Shell.run(["docker", "volume", "rm", "\(name)_\(volume)"], check: false)
                }
            }

            /// `DesiredState CurrentState` of every task of the service that Swarm lists (history included).
            func tasks(_ service: String) throws -> [String] {
                try Shell.run(["docker", "service", "ps", "--no-trunc", "--format",
                               "{{.DesiredState}} {{.CurrentState}}",
                               "\(name)_\(service)"]).stdout.split(separator: "\n").map(String.init)
            }

            func waitUntilRunning(_ service: String, count: Int) async throws {
                for _ in 0..<240 {
                    let tasks = try tasks(service)
                    if tasks.filter({ $0.hasPrefix("Running Running") }).count == count { return }
                    try await Task.sleep(for: .milliseconds(500))
                }
                throw TestFailure("\(name)_\(service) did not run \(count) task(s): \(try tasks(service))")
            }

            /// A running task container of the service on this node.
            func task(_ service: String) throws -> String {
                let ids = try Shell.run(["docker", "ps", "-q", "--filter",
                                         "label=com.docker.swarm.service.name=\(name)_\(service)"]).stdout
                    .split(separator: "\n").map(String.init)
                guard let id = ids.first else { throw TestFailure("no running task of \(name)_\(service)") }
                return id
            }

            /// `<replicas> <stackvault.scaled-from>`, or only `<replicas>` without that label.
            func replicasAndRecord(_ service: String) throws -> String {
                try Shell.run(["docker", "service", "inspect", "-f",
                               "{{.Spec.Mode.Replicated.Replicas}} {{index .Spec.Labels \"stackvault.scaled-from\"}}",
                               "\(name)_\(service)"]).stdout.replacingOccurrences(of: "<no value>", with: "")
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }

            func rows() throws -> String {
                try Docker.exec(try task("db"), "psql -U app -d appdb -tAc 'SELECT id, name FROM seed ORDER BY id'",
                                env: SwarmTests.postgres)
            }

            /// Paths and contents of the files in the two backed-up volumes, as the tasks see them.
            func files() throws -> String {
                let list = "find \"$0\" -type f | sort | while read -r f; do echo \"$f: $(cat \"$f\")\"; done"
                return try Shell.run(["docker", "exec", try task("files"), "sh", "-c", list, "/data"]).stdout
                    + Shell.run(["docker", "exec", try task("tagged"), "sh", "-c", list, "/srv"]).stdout
            }

            /// Every listed task of each service runs: none was added (a replacement) or left over.
            func expectOnlyRunningTasks(_ log: String) throws {
                for (service, count) in [("files", 2), ("tagged", 1)] {
                    let tasks = try tasks(service)
                    #expect(tasks.count == count && tasks.allSatisfy { $0.hasPrefix("Running Running") },
                            "\(service): \(tasks)\n\(log.suffix(3000))")
                    #expect(try replicasAndRecord(service) == "\(count)", "the crash record is left")
                }
            }
        }

        /// Runs `body` with a freshly deployed stack and a temporary directory, in a swarm; both are removed on
        /// every path.
        static func withStack(_ body: (Stack, URL) async throws -> Void) async throws {
            try await withSwarm {
                let stack = try await Stack.deploy()
                let directory = try TestBed.temporaryDirectory("swarm")
                let outcome: Result<Void, any Error>
                do {
                    outcome = .success(try await body(stack, directory))
                } catch {
                    outcome = .failure(error)
                }
                await stack.remove()
                try? FileManager.default.removeItem(at: directory)
                try outcome.get()
            }
        }

        @Test func stackIsBackedUpAndRestoredWithServicesScaledDownAndBack() async throws {
            try await Self.withStack { stack, directory in try await run(stack, directory: directory) }
        }

        func run(_ stack: Stack, directory: URL) async throws {
            let target = directory.appendingPathComponent("target")
            try Docker.exec(try stack.task("db"), "psql -U app -d appdb -c \"CREATE TABLE seed (id int PRIMARY KEY, "
                + "name text); INSERT INTO seed VALUES (1, 'alpha'), (2, 'beta')\"", env: Self.postgres)
            try Docker.exec(try stack.task("files"),
                            "echo hello > /data/a.txt; mkdir -p /data/sub; echo deep > /data/sub/b")
            try Docker.exec(try stack.task("tagged"), "echo tagged > /srv/t.txt")
            let original = (rows: try stack.rows(), files: try stack.files())

            // plan: one stack named by its namespace, services by their Compose names; deploy.labels are seen and
            // said to come from the service.
            let plan = try StackVaultCLI.run(["plan", "--json"])
            let document = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any] ?? [:]
            let stacks = document["stacks"] as? [[String: Any]] ?? []
            let ours = try #require(stacks.first { $0["name"] as? String == stack.name }, "\(plan.stdout)")
            let services = ours["services"] as? [[String: Any]] ?? []
            #expect(services.compactMap { $0["service"] as? String } == ["db", "files", "tagged"])
            let tagged = try #require(services.first { $0["service"] as? String == "tagged" })
            #expect((tagged["labelSources"] as? [String: String])?["backup.volume-path.srv"] == "service")
            #expect((tagged["swarmService"] as? [String: Any])?["replicas"] as? Int == 1)
            let files = try #require(services.first { $0["service"] as? String == "files" })
            #expect((files["labelSources"] as? [String: String])?["backup.volume-path.data"] == "container")
            #expect(!stacks.contains { ($0["name"] as? String ?? "").contains("\(stack.name)_") }, "\(plan.stdout)")

            // Two backups: one stack name, the former number of tasks afterwards, no replacement task.
            for _ in 1...2 {
                let backup = try StackVaultCLI.run(["backup", "--stack", stack.name, "--target", target.path],
                                                   environment: ["LOG_FORMAT": "text"])
                #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
                #expect(backup.stderr.contains("scaling Swarm service \(stack.name)_files from 2 to 0"))
                try stack.expectOnlyRunningTasks(backup.stderr)
            }
            let archives = TestBed.hostFiles(target).filter { $0.hasSuffix(".tar.zst") }
            #expect(archives.count == 2 && archives.allSatisfy { $0.hasPrefix("backup-\(stack.name)-2") },
                    "\(archives)")
            let readers = try Shell.run(["docker", "ps", "-aq", "--filter", "label=\(SwarmScaleGuard.readerLabel)"])
            #expect(readers.stdout.isEmpty, "reader containers are left")
            // Swarm's rollback point is the service as it runs, not the spec at 0 replicas: a `docker service
            // rollback` after a backup changes nothing (before, it scaled the service to 0).
            let previous = try Shell.run(["docker", "service", "inspect", "-f",
                                          "{{.PreviousSpec.Mode.Replicated.Replicas}} "
                                              + "{{index .PreviousSpec.Labels \"stackvault.scaled-from\"}}",
                                          "\(stack.name)_files"]).stdout.replacingOccurrences(of: "<no value>", with: "")
            #expect(previous.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "rollback point: \(previous)")
            try Shell.run(["docker", "service", "rollback", "--detach", "\(stack.name)_files"])
            try await Task.sleep(for: .seconds(2))
            try stack.expectOnlyRunningTasks("after docker service rollback")

            // Change everything, then restore the latest archive.
            try Docker.exec(try stack.task("db"), "psql -U app -d appdb -c \"DELETE FROM seed WHERE id = 1; "
                + "INSERT INTO seed VALUES (3, 'later')\"", env: Self.postgres)
            try Docker.exec(try stack.task("files"),
                            "echo changed > /data/a.txt; rm -r /data/sub; echo x > /data/extra")
            try Docker.exec(try stack.task("tagged"), "rm /srv/t.txt")
            #expect(try stack.rows() != original.rows && stack.files() != original.files)
            let restore = try StackVaultCLI.run(["restore", "--latest", "--stack", stack.name, "--target", target.path,
                                                 "--yes"], environment: ["LOG_FORMAT": "text"])
            #expect(restore.ok, "\(restore.stdout)\n\(restore.stderr)")
            #expect(restore.stdout.contains("3 of 3 component(s) restored"), "\(restore.stdout)")
            #expect(restore.stdout.contains("Scaled to 0 during the restore and back"), "\(restore.stdout)")
            #expect(try stack.rows() == original.rows)
            #expect(try stack.files() == original.files)
            try stack.expectOnlyRunningTasks(restore.stderr)

            // A labelled service with no task on this node is not backed up here, and `plan` says so.
            try Shell.run(["docker", "service", "scale", "--detach", "\(stack.name)_tagged=0"])
            for _ in 0..<120 where !(try Shell.run(["docker", "ps", "-q", "--filter",
                                                     "label=com.docker.swarm.service.name=\(stack.name)_tagged"])
                .stdout.isEmpty) {
                try await Task.sleep(for: .milliseconds(500))
            }
            let after = try StackVaultCLI.run(["plan", "--stack", stack.name])
            #expect(after.stdout.contains("Note: Swarm service \(stack.name)_tagged is labelled backup.enable=true but "
                + "has no running task on this node (0 replica(s))"), "\(after.stdout)")
        }

        /// A service whose tasks Swarm cannot start again after the copy (its image is gone): the backup fails
        /// within seconds with Swarm's own reason, not after the 300 s wait, and does not suggest a `docker service
        /// scale` that would change nothing.
        @Test func aScaleBackSwarmCannotStartFailsFastWithSwarmsReason() async throws {
            try await Self.withSwarm {
                let id = UUID().uuidString.prefix(8).lowercased()
                let (service, image) = ("svswarm-gone-\(id)", "svswarm-gone-\(id):1")
                defer {
                    _ = try? Shell.run(["docker", "service", "rm", service], check: false)
                    _ = try? Shell.run(["docker", "rmi", "-f", image], check: false)
                    _ = try? Shell.run(["docker", "volume", "rm", "-f", "\(service)-data"], check: false)
                }
                try Shell.run(["docker", "tag", TestBed.busyboxImage, image])
                try Shell.run(["docker", "service", "create", "--detach", "--name", service, "--label",
                               "stackvault.test=true", "--container-label", "backup.enable=true", "--container-label",
                               "backup.volume-path.data=/data", "--mount", "type=volume,src=\(service)-data,dst=/data",
                               image, "sleep", "1000000"])
                var running = false
                for _ in 0..<120 where !running {
                    running = !(try Shell.run(["docker", "ps", "-q", "--filter",
                                               "label=com.docker.swarm.service.name=\(service)"]).stdout.isEmpty)
                    if !running { try await Task.sleep(for: .milliseconds(500)) }
                }
                #expect(running, "the service never ran")
                // The tag goes; the running task keeps its image, a new task cannot find it.
                try Shell.run(["docker", "rmi", image])
                let directory = try TestBed.temporaryDirectory("swarm-gone")
                defer { try? FileManager.default.removeItem(at: directory) }
                let started = Date()
                let backup = try StackVaultCLI.run(["backup", "--stack", service, "--target",
                                                    "file://\(directory.path)"], environment: ["LOG_FORMAT": "text"])
                let took = Date().timeIntervalSince(started)
                let said = backup.stdout + backup.stderr
                #expect(!backup.ok, "\(said)")
                #expect(said.contains("Swarm cannot start its tasks") && said.contains("No such image"), "\(said)")
                #expect(took < 150, "the backup took \(Int(took)) s: it waited for tasks Swarm rejects")
                print("[swarm-gone] the backup failed after \(Int(took)) s naming Swarm's reason")
            }
        }

        @Test func serviceLeftAtZeroByAKilledRunIsScaledBack() async throws {
            try await Self.withStack { stack, directory in try await killAndRecover(stack, directory: directory) }
        }

        func killAndRecover(_ stack: Stack, directory: URL) async throws {
            let target = directory.appendingPathComponent("target").path
            let killed = try Integration.StopInterruptTests.Run(
                ["backup", "--stack", stack.name, "--target", target], environment: ["LOG_FORMAT": "text"],
                logPath: directory.appendingPathComponent("killed.log").path)
            try killed.waitForLog("scaling Swarm service \(stack.name)_files from 2 to 0")
            // The files tasks take their 3 s stop grace period to go: the run is waiting for them now.
            try await Task.sleep(for: .seconds(1))
            _ = killed.stop(SIGKILL, seconds: 10)
            #expect(try stack.replicasAndRecord("files") == "0 2", "\(killed.log.suffix(3000))")

            let next = try StackVaultCLI.run(["backup", "--stack", stack.name, "--target", target],
                                             environment: ["LOG_FORMAT": "text"])
            #expect(next.ok, "\(next.stdout)\n\(next.stderr)")
            #expect(next.stderr.contains("Swarm service \(stack.name)_files was left scaled to 0 by an interrupted "
                + "run of this host; scaling it back to 2"), "\(next.stderr.suffix(3000))")
            try stack.expectOnlyRunningTasks(next.stderr)
        }
    }
}
