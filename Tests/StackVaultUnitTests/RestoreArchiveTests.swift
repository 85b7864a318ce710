import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
@testable import StackVaultStrategies
import StackVaultTestKit
import Testing

/// Reading archives for restore (a real archive written by the backup engine, checked with GNU tar), the dump
/// rewriting, and the restore engine's order of Docker calls against the fake engine.
@Suite struct RestoreArchiveTests {
    static let pgDump = "--\n-- PostgreSQL database cluster dump\n--\n\nCREATE ROLE app;\n"
        + "ALTER ROLE app WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:xyz';\nCREATE ROLE reader;\n"
        + "ALTER ROLE reader WITH LOGIN;\nCREATE ROLE newbie;\n\\connect template1\n"
        + "CREATE ROLE app;\nSELECT 1;\n--\n-- PostgreSQL database cluster dump complete\n--\n\n"

    /// A tar of `data/` (a file, a subdirectory, a symlink, a hard link) made by GNU tar, as Docker sends it.
    static func sampleTar(in directory: URL) throws -> [UInt8] {
        let script = """
            set -e; cd '\(directory.path)'; mkdir -p src/data/sub; printf 'hello\\n' > src/data/a.txt
            head -c 300000 /dev/urandom > 'src/data/sub/blob ü.bin'; ln -s a.txt src/data/link; ln src/data/a.txt src/data/hard
            chmod 751 src/data/sub; tar -C src --numeric-owner --owner=1234 --group=2345 -cf data.tar data
            """
        let made = try ArchiveTestSupport.shell(script)
        try #require(made.status == 0, "\(made.output)")
        return Array(try Data(contentsOf: directory.appendingPathComponent("data.tar")))
    }

    /// Backs up a fake stack (a pg_dumpall dump and a directory) into `directory` with the real engine.
    static func makeArchive(in directory: URL, dump: String = pgDump) async throws -> (path: String, docker: FakeDockerEngine) {
        let docker = FakeDockerEngine(containers: [
            .fake(name: "app_db_1", project: "app", service: "db",
                  labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD": "pw"]),
            .fake(name: "app_files_1", project: "app", service: "files",
                  labels: ["backup.enable": "true", "backup.volume-path.data": "/data"]),
        ])
        docker.setExecResult(.init(stdout: dump), for: "app_db_1")
        docker.setArchive(try sampleTar(in: directory), for: "app_files_1", path: "/data")
        let target = directory.appendingPathComponent("target")
        let stackBackup = StackBackup(
            docker: docker,
            storage: LocalDirectoryBackend(directory: target.path),
            compressor: try ZstdCompressor(settings: .init(level: 1, threads: 1)),
            configuration: BackupConfiguration(workDirectory: target.path, minimumFreeBytes: 0, hostName: "testhost"),
            logger: Logger(label: "test"))
        let plan = try await Planner(docker: docker, strategies: try BuiltinStrategies.registry()).makePlan()
        let result = await stackBackup.backup(try #require(plan.stacks.first))
        try #require(result.succeeded, "\(result.error ?? "")")
        return (target.appendingPathComponent(result.archive!).path, docker)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sv-restore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func zstd() throws -> any Compressor { try ZstdCompressor(settings: .init(level: 1, threads: 1)) }

    // MARK: - Reading a verified archive

    @Test func aGoodArchivePassesAndItsComponentsComeOutAsTarStreams() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (path, _) = try await Self.makeArchive(in: directory)
        let archive = try LocalArchive.open(localPath: path, compressor: try Self.zstd())
        let check = try await archive.verify(strategies: try BuiltinStrategies.registry())
        #expect(check.ok, "\(check.problems)")
        #expect(check.report.manifest?.components.count == 2)

        let dump = CollectingSink()
        try archive.readFile("db/database/pg_dumpall.sql", into: dump)
        #expect(String(decoding: dump.bytes, as: UTF8.self) == Self.pgDump)

        // The tree, renamed, as GNU tar lists it: owners, modes, links kept; hard link re-rooted.
        let tree = CollectingSink()
        try archive.writeTree("files/volumes/data", as: ".stage", layout: .whole, into: tree)
        let tarPath = directory.appendingPathComponent("out.tar").path
        try Data(tree.bytes).write(to: URL(fileURLWithPath: tarPath))
        let listing = try ArchiveTestSupport.shell(
            "tar --numeric-owner -tvf '\(tarPath)' | awk '{printf \"%s %s\", $1, $2; for (i = 6; i <= NF; i++) "
                + "printf \" %s\", $i; print \"\"}'").output
        #expect(listing.contains("drwxr-x--x 1234/2345 .stage/sub/"), "\(listing)")
        #expect(listing.contains("lrwxrwxrwx 1234/2345 .stage/link -> a.txt"), "\(listing)")
        #expect(listing.contains(".stage/hard link to .stage/a.txt") || listing.contains(".stage/a.txt link to .stage/hard"),
                "\(listing)")
        #expect(listing.contains(".stage/sub/blob ü.bin"), "\(listing)")
        #expect(!listing.contains("files/"), "\(listing)")
        let extract = directory.appendingPathComponent("x")
        try FileManager.default.createDirectory(at: extract, withIntermediateDirectories: true)
        #expect(try ArchiveTestSupport.shell("tar -C '\(extract.path)' -xf '\(tarPath)' && cmp '\(extract.path)/.stage/sub/blob ü.bin' "
            + "'\(directory.path)/src/data/sub/blob ü.bin'").status == 0)

        let placeholder = CollectingSink()
        try archive.writeTree("files/volumes/data", as: "data", layout: .replacingTop, into: placeholder)
        try Data(placeholder.bytes).write(to: URL(fileURLWithPath: tarPath))
        let replacing = try ArchiveTestSupport.shell("tar -tvf '\(tarPath)' | awk 'NR <= 2 {print $1, $3, $6}'").output
        #expect(replacing == "-rw------- 0 data\ndrwxr-xr-x 0 data/\n", "\(replacing)")

        let top = CollectingSink()
        try archive.writeTree("files/volumes/data", as: "data", layout: .topOnly, into: top)
        try Data(top.bytes).write(to: URL(fileURLWithPath: tarPath))
        #expect(try ArchiveTestSupport.shell("tar -tf '\(tarPath)'").output == "data/\n")

        #expect(throws: StackVaultError.self) {
            try archive.writeTree("files/volumes/data", as: "../x", layout: .whole, into: CollectingSink())
        }
        #expect(throws: StackVaultError.self) { try archive.readFile("nope.sql", into: CollectingSink()) }
    }

    @Test func flippedTruncatedAndIncompleteArchivesFailTheCheck() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = try BuiltinStrategies.registry()
        let (path, _) = try await Self.makeArchive(in: directory)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        var flipped = good
        flipped[flipped.count / 2] ^= 0x01
        for (label, data) in [("flipped", flipped), ("truncated", good.prefix(good.count * 2 / 3))] {
            let damaged = directory.appendingPathComponent(label).path
            try data.write(to: URL(fileURLWithPath: damaged))
            let check = try await LocalArchive.open(localPath: damaged, compressor: try Self.zstd())
                .verify(strategies: registry)
            #expect(!check.ok && !check.problems.isEmpty, "\(label)")
        }

        // A dump that does not end the way pg_dumpall ends, in an otherwise sound archive (the backup engine would
        // refuse such a dump; an archive written by something else need not).
        let cut = directory.appendingPathComponent("cut.tar.zst").path
        let writer = try ArchiveWriter(outputPath: cut, compressor: try Self.zstd())
        try writer.writeIndex(ArchiveIndex(stack: "app", components: [
            .init(service: "db", type: "pg_dumpall", archivePath: "db/database/pg_dumpall.sql", kind: .file,
                  container: "app_db_1"),
        ]))
        _ = try await writer.addFile(at: "db/database/pg_dumpall.sql", mode: 0o600) { sink in
            try Array("--\n-- PostgreSQL database cluster dump\n--\nCREATE TABLE t (".utf8).withUnsafeBytes {
                try sink.write($0)
            }
        }
        try await writer.finish(Manifest.Header(
            toolVersion: "0", host: "h", stack: "app", archiveName: "cut.tar.zst", compression: "zstd",
            startedAt: Date(), warnings: []))
        let check = try await LocalArchive.open(localPath: cut, compressor: try Self.zstd()).verify(strategies: registry)
        #expect(check.report.ok, "the archive itself is sound: \(check.report.problems)")
        #expect(!check.ok)
        #expect(check.problems.contains { $0.contains("'db/database/pg_dumpall.sql'") && $0.contains("truncated") },
                "\(check.problems)")
    }

    @Test func completenessChecksLookAtTheEndOfDumps() throws {
        let pg = PgDumpAllStrategy()
        let component = Manifest.ManifestComponent(service: "db", container: "c", type: "pg_dumpall",
                                                   archivePath: "db/database/pg_dumpall.sql", kind: .file,
                                                   sizeBytes: 1, entries: 1, sha256: "")
        #expect(pg.checkCompleteness(of: component, tail: Array(Self.pgDump.utf8)) == nil)
        #expect(pg.checkCompleteness(of: component, tail: Array("CREATE TABLE t (".utf8))?.contains("truncated")
            == true)
        let maria = MariaDBDumpStrategy()
        #expect(maria.checkCompleteness(of: component, tail: Array("...\n-- Dump completed on 2026-11-27\n".utf8))
            == nil)
        #expect(maria.checkCompleteness(of: component, tail: Array("INSERT INTO t VALUES (1".utf8)) != nil)
        #expect(VolumePathStrategy().checkCompleteness(of: component, tail: []) == nil)
    }

    // MARK: - Rewriting role statements

    @Test(arguments: [1, 3, 7, 4096])
    func roleStatementsOfExistingRolesBecomeCommentsOfTheSameLength(chunk: Int) throws {
        let out = CollectingSink()
        let filter = RoleStatementFilter(downstream: out, existingRoles: ["app", "reader", "\"Odd\"\"Role\""],
                                         loginRole: "app")
        let input = Array((Self.pgDump + "CREATE ROLE \"Odd\"\"Role\";\n").utf8)
        var offset = 0
        while offset < input.count {
            let end = min(offset + chunk, input.count)
            try input[offset..<end].withUnsafeBytes { try filter.write($0) }
            offset = end
        }
        try filter.finish()
        let text = String(decoding: out.bytes, as: UTF8.self)
        #expect(out.bytes.count == input.count)
        #expect(text.contains("\n--EATE ROLE app;\n--TER ROLE app WITH SUPERUSER"))
        #expect(text.contains("\n--EATE ROLE reader;\nALTER ROLE reader WITH LOGIN;\nCREATE ROLE newbie;\n"))
        // After the first \connect nothing is touched.
        #expect(text.contains("\\connect template1\nCREATE ROLE app;\nSELECT 1;"))
        #expect(text.hasSuffix("CREATE ROLE \"Odd\"\"Role\";\n"))
    }

    // MARK: - The restore engine against the fake Docker engine

    /// The fake engine, with exec results chosen by what the script does.
    final class ScriptedDocker: DockerEngine, @unchecked Sendable {
        let fake: FakeDockerEngine
        let respond: @Sendable (_ script: String) -> FakeDockerEngine.ExecResult
        private let lock = NSLock()
        private var scripts: [(container: String, script: String, arguments: [String])] = []

        init(_ fake: FakeDockerEngine, respond: @escaping @Sendable (String) -> FakeDockerEngine.ExecResult) {
            self.fake = fake
            self.respond = respond
        }

        var execs: [(container: String, script: String, arguments: [String])] { lock.withLock { scripts } }
        var endpointDescription: String { fake.endpointDescription }

        func exec(in container: String, command: [String], environment: [String], stdout: any ByteSink,
                  stderr: any ByteSink) async throws -> Int {
            _ = try await fake.exec(in: container, command: command, environment: environment, stdout: CollectingSink(),
                                    stderr: CollectingSink())
            let name = try await fake.inspectContainer(container).name
            lock.withLock { scripts.append((name, command[2], Array(command.dropFirst(4)))) }
            let result = respond(command[2])
            try result.stdout.withUnsafeBytes { try stdout.write($0) }
            try result.stderr.withUnsafeBytes { try stderr.write($0) }
            return result.exitCode
        }

        func listContainers(labelFilters: [String]) async throws -> [ContainerSummary] {
            try await fake.listContainers(labelFilters: labelFilters)
        }
        func inspectContainer(_ idOrName: String) async throws -> ContainerDetails {
            try await fake.inspectContainer(idOrName)
        }
        func getArchive(from container: String, path: String, into sink: any ByteSink) async throws {
            try await fake.getArchive(from: container, path: path, into: sink)
        }
        func putArchive(to container: String, path: String, body: @escaping @Sendable (any ByteSink) throws -> Void)
            async throws
        {
            try await fake.putArchive(to: container, path: path, body: body)
        }
        func stopContainer(_ id: String, timeoutSeconds: Int) async throws {
            try await fake.stopContainer(id, timeoutSeconds: timeoutSeconds)
        }
        func startContainer(_ id: String) async throws { try await fake.startContainer(id) }
        func createContainer(_ spec: ContainerCreateSpec) async throws -> String {
            try await fake.createContainer(spec)
        }
        func removeContainer(_ id: String, force: Bool) async throws { try await fake.removeContainer(id, force: force) }
        func imageExists(_ reference: String) async throws -> Bool { try await fake.imageExists(reference) }
    }

    static func restoreTarget() -> FakeDockerEngine {
        var files = ContainerDetails.fake(name: "app_files_1", project: "app", service: "files")
        files.mounts = [ContainerMount(type: "volume", destination: "/data")]
        return FakeDockerEngine(containers: [
            .fake(name: "app_db_1", project: "app", service: "db", environment: ["POSTGRES_PASSWORD": "pw"]), files,
        ])
    }

    static func respond(replayFails: Bool = false, swapFails: Bool = false,
                        replay: FakeDockerEngine.ExecResult? = nil)
        -> @Sendable (String) -> FakeDockerEngine.ExecResult
    {
        { script in
            if script.contains("--file=") && replayFails {
                return .init(stderr: "psql:/tmp/x.sql:12: ERROR:  boom", exitCode: 3)
            }
            if script.contains("--file="), let replay { return replay }
            if script.contains("quote_ident") { return .init(stdout: "current app\nrole reader\n") }
            if script == "id -u; id -g" { return .init(stdout: "70\n71\n") }
            if script.contains("mv --") && swapFails { return .init(stderr: "mv: no space left", exitCode: 1) }
            return .init()
        }
    }

    /// Backs up a fake stack, then restores the archive into fresh fake containers whose execs `respond` answers.
    static func restore(in directory: URL, respond: @escaping @Sendable (String) -> FakeDockerEngine.ExecResult)
        async throws -> (fake: FakeDockerEngine, docker: ScriptedDocker, results: [RestoreStepResult])
    {
        let archive = try LocalArchive.open(localPath: try await makeArchive(in: directory).path, compressor: try zstd())
        let fake = restoreTarget()
        let docker = ScriptedDocker(fake, respond: respond)
        let registry = try BuiltinStrategies.registry()
        let manifest = try #require(try await archive.verify(strategies: registry).report.manifest)
        let engine = RestoreEngine(docker: docker, strategies: registry, stopTimeoutSeconds: 1,
                                   logger: Logger(label: "test"))
        let plan = try await engine.plan(manifest: manifest, origin: "test", options: .init())
        return (fake, docker, try await engine.run(plan, source: archive))
    }

    @Test func aRestoreReplaysDumpsThenSwapsDirectoriesWhileTheContainerIsStopped() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (fake, docker, results) = try await Self.restore(in: directory, respond: Self.respond())
        #expect(results.map(\.outcome) == [.restored, .restored], "\(results)")

        let calls = fake.calls.map { $0.replacingOccurrences(of: #"helper-[0-9a-f]{8}"#, with: "helper",
                                                              options: .regularExpression) }
        #expect(calls == [
            "exec:app_db_1", "exec:app_db_1", "put:app_db_1:/tmp", "exec:app_db_1", "exec:app_db_1",
            "stop:app_files_1", "create:stackvault-restore-helper", "start:stackvault-restore-helper",
            "put:app_files_1:/data", "exec:stackvault-restore-helper", "put:app_files_1:/",
            "remove:stackvault-restore-helper", "start:app_files_1",
        ])
        let helper = try #require(fake.created.first)
        #expect(helper.volumesFrom == ["id-app_files_1"] && helper.networkDisabled && helper.user == "0")
        #expect(helper.labels[DirectoryReplacement.helperLabel] == "app_files_1")
        #expect(!fake.containers.contains { $0.name.hasPrefix("stackvault-restore-helper") }, "the helper is gone")

        // The dump went into /tmp as one file owned by the exec user, mode 0600, its role lines rewritten.
        let upload = try #require(fake.puts.first)
        let tarPath = directory.appendingPathComponent("upload.tar").path
        try Data(upload.tar).write(to: URL(fileURLWithPath: tarPath))
        let header = try ArchiveTestSupport.shell("tar --numeric-owner -tvf '\(tarPath)' | awk '{print $1, $2, $6}'")
            .output
        #expect(header.range(of: #"^-rw------- 70/71 stackvault-restore-[0-9a-f-]{36}\.sql\n$"#,
                             options: .regularExpression) != nil, "\(header)")
        let content = try ArchiveTestSupport.shell("tar -xOf '\(tarPath)'").output
        #expect(content.contains("--EATE ROLE app;\n--TER ROLE app WITH") && content.contains("--EATE ROLE reader;"))
        let replay = try #require(docker.execs.first { $0.script.contains("--file=") })
        let removal = try #require(docker.execs.last { $0.container == "app_db_1" })
        #expect(removal.script.hasPrefix("rm -f") && removal.arguments == Array(replay.arguments.prefix(1)))
        #expect(replay.arguments.count == 2 && replay.arguments[1].count == 8, "the dump and the restore id")
        #expect(replay.arguments.first?.hasPrefix("/tmp/stackvault-restore-") == true)
        // No secret in any exec argument.
        #expect(!docker.execs.contains { $0.script.contains("pw") && !$0.script.contains("$") })
    }

    @Test func aFailingReplayRemovesTheFileAndSkipsTheRest() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (fake, docker, results) = try await Self.restore(in: directory, respond: Self.respond(replayFails: true))
        #expect(results.map(\.outcome) == [.failed, .skipped])
        #expect(results[0].error?.contains("ERROR:  boom") == true, "\(results)")
        #expect(docker.execs.last?.script.hasPrefix("rm -f") == true, "the uploaded dump is removed")
        #expect(!fake.calls.contains("stop:app_files_1"), "nothing after the failed step is touched")
    }

    @Test func aGuardedReplaySaysWhetherItRefusedOrUndidItsChanges() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let refused = FakeDockerEngine.ExecResult(
            stderr: "refused: the login role app is not a superuser: it cannot replay a whole cluster", exitCode: 10)
        let (_, _, refusal) = try await Self.restore(in: directory, respond: Self.respond(replay: refused))
        #expect(refusal.map(\.outcome) == [.failed, .skipped])
        #expect(refusal[0].error?.contains("refused before anything was changed: the login role app is not a "
            + "superuser") == true, "\(refusal)")
        let echo = "INSERT INTO `t` VALUES (1,0x" + String(repeating: "ab", count: 500_000) + ");"
        let undone = FakeDockerEngine.ExecResult(
            stderr: "--------------\n\(echo)\n--------------\n\nERROR 2006 (HY000) at line 85: Server has gone away\n"
                + "rolling back: putting the server's own databases and accounts back\nrolled back: ...",
            exitCode: 11)
        let second = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: second) }
        let (_, _, undo) = try await Self.restore(in: second, respond: Self.respond(replay: undone))
        let error = try #require(undo[0].error)
        #expect(error.contains("everything it changed was undone") && error.contains("Server has gone away"))
        #expect(error.count < 4000, "the echoed statement is shortened: \(error.count) characters")
    }

    @Test func readableKeepsTheEndAndShortensLongLines() {
        let text = (1...100).map { "line \($0)" }.joined(separator: "\n") + "\n" + String(repeating: "x", count: 10_000)
            + "\nERROR: the real error\n"
        let out = ContainerShell.readable(text, cut: false)
        #expect(out.hasPrefix("[...]\nline 63\n") && out.hasSuffix("ERROR: the real error"), "\(out)")
        #expect(out.contains("[... 9500 bytes ...]") && out.count < 1500)
    }

    @Test func aMariaDBDumpFailureFromThePacketLimitSaysSo() {
        let diagnose = MariaDBDumpStrategy.dump.diagnose
        #expect(diagnose("mariadb-dump: Error 2013: Lost connection to server during query when dumping table "
            + "`blobs` at row: 0")?.contains("max_allowed_packet") == true)
        #expect(diagnose("Got packet bigger than 'max_allowed_packet' bytes")?.contains("configuration") == true)
        #expect(diagnose("mariadb-dump: Got error: 1045: Access denied for user 'root'@'localhost'") == nil)
        #expect(PgDumpAllStrategy.dump.diagnose("pg_dumpall: error: connection lost") == nil)
    }

    @Test func existingTablespacesAreNotCreatedAgain() throws {
        let out = CollectingSink()
        let filter = RoleStatementFilter(downstream: out, existingRoles: [], loginRole: "app",
                                         existingTablespaces: ["ts1"])
        let input = Array(("CREATE TABLESPACE ts1 OWNER app LOCATION '/srv/ts1';\n"
            + "CREATE TABLESPACE ts10 OWNER app LOCATION '/srv/ts10';\n\\connect template1\n").utf8)
        try input.withUnsafeBytes { try filter.write($0) }
        try filter.finish()
        #expect(String(decoding: out.bytes, as: UTF8.self) == "--EATE TABLESPACE ts1 OWNER app LOCATION '/srv/ts1';\n"
            + "CREATE TABLESPACE ts10 OWNER app LOCATION '/srv/ts10';\n\\connect template1\n")
    }

    @Test func aFailingSwapKeepsTheStagedCopyRemovesTheHelperAndRestartsTheContainer() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (fake, _, results) = try await Self.restore(in: directory, respond: Self.respond(swapFails: true))
        #expect(results.map(\.outcome) == [.restored, .failed])
        #expect(results[1].error?.contains("no space left") == true)
        #expect(results[1].error?.contains("is kept in /data/.stackvault-restore-") == true, "\(results)")
        #expect(fake.calls.suffix(2).map { $0.prefix(7) } == ["remove:", "start:a"], "\(fake.calls)")
        #expect(fake.isRunning("app_files_1"))
    }
}
