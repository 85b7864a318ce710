import Foundation
import Testing

extension Integration {
    /// Several hosts, one target: each host's archives in its own folder, retention and restore per host.
    @Suite struct HostsTests {
        /// A target for the test: a fresh directory, or a fresh prefix of the test bucket.
        struct Target {
            var url: String
            var environment: [String: String]
            var cleanUp: () -> Void
            /// Puts the local archive file `path` at the top of the target, where earlier versions stored archives.
            var putUnfiled: (_ path: String, _ name: String) throws -> Void
            /// Moves `host`'s archive `name` out of the target into the local file `path`.
            var take: (_ host: String, _ name: String, _ path: String) throws -> Void
        }

        static func fileTarget() throws -> Target {
            let directory = try TestBed.temporaryDirectory("hosts")
            return Target(
                url: "file://\(directory.path)", environment: [:],
                cleanUp: { try? FileManager.default.removeItem(at: directory) },
                putUnfiled: { path, name in
                    try FileManager.default.copyItem(atPath: path, toPath: directory.appendingPathComponent(name).path)
                },
                take: { host, name, path in
                    try FileManager.default.moveItem(
                        atPath: directory.appendingPathComponent(host).appendingPathComponent(name).path, toPath: path)
                })
        }

        static func s3Target() throws -> Target {
            try TestBed.requireS3()
            let server = S3TestServer.current
            let url = "s3://\(server.bucket)/hosts-it-\(UUID().uuidString.prefix(8).lowercased())"
            return Target(
                url: url, environment: server.environment(),
                cleanUp: { _ = try? server.aws(["s3", "rm", "--recursive", "--only-show-errors", url + "/"], check: false) },
                putUnfiled: { path, name in try server.aws(["s3", "cp", "--only-show-errors", path, "\(url)/\(name)"]) },
                take: { host, name, path in
                    try server.aws(["s3", "mv", "--only-show-errors", "\(url)/\(host)/\(name)", path])
                })
        }

        /// A standalone busybox container with a `volume-path`: its own stack, named after it.
        static func container(_ name: String) throws {
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           TestBed.busyboxImage, "sh", "-c", "mkdir -p /data && exec sleep 1000000"])
            try Docker.waitUntil(name, "test -d /data")
        }

        static func json(_ text: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        }

        /// Runs backups of `stack` as the hosts of `order`, one after the other, with keep-last 2; before each, the
        /// container's /data/who says which run it is. Returns each host's archives, oldest first.
        static func backUp(_ stack: String, order: [String], target: Target) throws -> [String: [String]] {
            var written: [String: [String]] = [:]
            for (index, host) in order.enumerated() {
                try Docker.exec(stack, "printf '\(host)-\(index)' > /data/who")
                let run = try StackVaultCLI.run(
                    ["backup", "--stack", stack, "--target", target.url, "--json"],
                    environment: target.environment.merging(
                        ["STACKVAULT_HOST": host, "RETENTION_KEEP_LAST": "2"]) { $1 })
                #expect(run.ok, "\(host) run \(index): \(run.stdout)\n\(run.stderr)")
                let stacks = try json(run.stdout)["stacks"] as? [[String: Any]]
                let archive = try #require(stacks?.first?["archive"] as? String, "\(run.stdout)")
                written[host, default: []].append(archive)
                sleep(1)  // archive names carry whole seconds
            }
            return written
        }

        /// `list --all-hosts --json`: (host or "-", archive name) pairs.
        static func listAll(_ target: Target, stack: String) throws -> [(host: String, name: String)] {
            let list = try StackVaultCLI.run(["list", "--all-hosts", "--stack", stack, "--target", target.url,
                                              "--json"], environment: target.environment)
            #expect(list.ok, "\(list.stdout)\n\(list.stderr)")
            let archives = try json(list.stdout)["archives"] as? [[String: Any]] ?? []
            return archives.map { (($0["host"] as? String) ?? "-", $0["name"] as? String ?? "") }
        }

        static func restore(_ stack: String, target: Target, host: String, extra: [String] = []) throws -> String {
            let run = try StackVaultCLI.run(["restore", "--target", target.url, "--yes"] + extra,
                                            environment: target.environment.merging(["STACKVAULT_HOST": host]) { $1 })
            #expect(run.ok, "\(run.stdout)\n\(run.stderr)")
            return try Docker.exec(stack, "cat /data/who")
        }

        @Test(arguments: ["file", "s3"])
        func hostsSharingATargetKeepAndRestoreTheirOwnArchives(_ kind: String) throws {
            try TestBed.requireDocker()
            let stack = "svtest-hosts-\(kind)"
            try Self.container(stack)
            defer { _ = try? Shell.run(["docker", "rm", "-f", stack], check: false) }

            for order in [["alpha", "beta", "alpha", "beta"], ["alpha", "beta", "beta"]] {
                let target = kind == "file" ? try Self.fileTarget() : try Self.s3Target()
                defer { target.cleanUp() }
                let written = try Self.backUp(stack, order: order, target: target)

                // Each host keeps its own last two; neither removed the other's.
                let listed = try Self.listAll(target, stack: stack)
                for (host, names) in written {
                    #expect(Set(listed.filter { $0.host == host }.map(\.name)) == Set(names.suffix(2)),
                            "\(order) \(host): \(listed)")
                }
                #expect(listed.count == written.values.map { min($0.count, 2) }.reduce(0, +), "\(order): \(listed)")

                // `status --all-hosts` sees both hosts from the target alone.
                let status = try StackVaultCLI.run(["status", "--all-hosts", "--json", "--target", target.url],
                                                   environment: target.environment)
                let rows = try Self.json(status.stdout)["stacks"] as? [[String: Any]] ?? []
                #expect(rows.compactMap { $0["host"] as? String } == ["alpha", "beta"], "\(status.stdout)")
                #expect(rows.first?["lastArchive"] as? String == written["alpha"]?.last, "\(status.stdout)")

                // On alpha, --latest restores alpha's last data; --host beta restores beta's.
                let lastAlpha = order.indices.last { order[$0] == "alpha" }!
                let lastBeta = order.indices.last { order[$0] == "beta" }!
                try Docker.exec(stack, "printf 'changed' > /data/who")
                #expect(try Self.restore(stack, target: target, host: "alpha", extra: ["--latest", "--stack", stack])
                        == "alpha-\(lastAlpha)")
                #expect(try Self.restore(stack, target: target, host: "alpha",
                                         extra: ["--latest", "--stack", stack, "--host", "beta"])
                        == "beta-\(lastBeta)")
                // Naming beta's archive on alpha without --host is refused, and says how.
                let foreign = try StackVaultCLI.run(
                    ["verify", written["beta"]!.last!, "--target", target.url],
                    environment: target.environment.merging(["STACKVAULT_HOST": "alpha"]) { $1 })
                #expect(foreign.status != 0 && foreign.stderr.contains("--host beta"), "\(foreign.stderr)")
            }
        }

        /// An archive at the top of the target, where earlier versions stored it, is listed, verified and restored.
        @Test(arguments: ["file", "s3"])
        func archivesFromBeforeHostFoldersStayReadable(_ kind: String) throws {
            try TestBed.requireDocker()
            let stack = "svtest-hosts-old-\(kind)"
            try Self.container(stack)
            defer { _ = try? Shell.run(["docker", "rm", "-f", stack], check: false) }
            let target = kind == "file" ? try Self.fileTarget() : try Self.s3Target()
            defer { target.cleanUp() }
            let work = try TestBed.temporaryDirectory("hosts-old")
            defer { try? FileManager.default.removeItem(at: work) }

            // An archive written by the old layout: the same file, at the top of the target.
            let written = try Self.backUp(stack, order: ["old-server"], target: target)
            let name = try #require(written["old-server"]?.first)
            let copy = work.appendingPathComponent(name).path
            try target.take("old-server", name, copy)
            try target.putUnfiled(copy, name)
            #expect(try Self.listAll(target, stack: stack).map { "\($0.host) \($0.name)" } == ["- \(name)"])

            let env = target.environment.merging(["STACKVAULT_HOST": "new-server"]) { $1 }
            let list = try StackVaultCLI.run(["list", "--target", target.url], environment: env)
            #expect(list.ok && list.stdout.contains(name) && list.stderr.contains("before archives had host folders"),
                    "\(list.stdout)\n\(list.stderr)")
            let verify = try StackVaultCLI.run(["verify", name, "--target", target.url, "--json"], environment: env)
            #expect(verify.ok, "\(verify.stdout)\n\(verify.stderr)")
            #expect(try Self.json(verify.stdout)["host"] as? String == "old-server", "the manifest names its host")
            // Never pruned by a host: it belongs to none.
            let newPrune = try StackVaultCLI.run(["prune", "--keep-last", "1", "--target", target.url], environment: env)
            #expect(newPrune.ok, "\(newPrune.stderr)")
            #expect(try Self.listAll(target, stack: stack).count == 1)
            // --latest never picks it; naming it restores it.
            let latest = try StackVaultCLI.run(["restore", "--latest", "--stack", stack, "--target", target.url,
                                                "--yes"], environment: env)
            #expect(latest.status != 0 && latest.stderr.contains("from before host folders"), "\(latest.stderr)")
            try Docker.exec(stack, "printf 'changed' > /data/who")
            #expect(try Self.restore(stack, target: target, host: "new-server", extra: [name]) == "old-server-0")
        }
    }
}
