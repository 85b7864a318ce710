import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
import StackVaultStrategies
import StackVaultTestKit
import Testing

@Suite struct StackBackupTests {
    static let pgDump = "-- PostgreSQL database cluster dump\nCREATE TABLE t();\n--\n"
        + "-- PostgreSQL database cluster dump complete\n--\n\n"

    /// A tar of a small directory `data/` made by GNU tar, as Docker's archive API would send it.
    static func sampleTar() throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sv-engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data/sub"),
                                                withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("hello\n".utf8).write(to: dir.appendingPathComponent("data/hello.txt"))
        try Data(repeating: 7, count: 100_000).write(to: dir.appendingPathComponent("data/sub/blob"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["tar", "-C", dir.path, "-cf", "-", "data"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Array(data)
    }

    struct Fixture {
        let docker: FakeDockerEngine
        let target: URL
        let stackBackup: StackBackup

        init(minimumFree: Int64 = 0) throws {
            docker = FakeDockerEngine(containers: [
                .fake(name: "app_db_1", project: "app", service: "db",
                      labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                      environment: ["POSTGRES_PASSWORD": "pw"]),
                .fake(name: "app_files_1", project: "app", service: "files",
                      labels: ["backup.enable": "true", "backup.volume-path.data": "/data"]),
                .fake(name: "app_cold_1", project: "app", service: "cold", running: false,
                      labels: ["backup.enable": "true", "backup.volume-path.data": "/data"]),
            ])
            docker.setExecResult(.init(stdout: StackBackupTests.pgDump), for: "app_db_1")
            let tar = try StackBackupTests.sampleTar()
            docker.setArchive(tar, for: "app_files_1", path: "/data")
            docker.setArchive(tar, for: "app_cold_1", path: "/data")
            target = FileManager.default.temporaryDirectory.appendingPathComponent("sv-target-\(UUID().uuidString)")
            stackBackup = StackBackup(
                docker: docker,
                storage: LocalDirectoryBackend(directory: target.path),
                compressor: try ZstdCompressor(settings: .init(level: 1, threads: 1)),
                configuration: BackupConfiguration(workDirectory: target.path, minimumFreeBytes: minimumFree,
                                                   hostName: "testhost"),
                logger: Logger(label: "test"))
        }

        func run() async throws -> StackOutcome {
            let plan = try await Planner(docker: docker, strategies: try BuiltinStrategies.registry()).makePlan()
            return await stackBackup.backup(try #require(plan.stacks.first))
        }

        var files: [String] { (try? FileManager.default.contentsOfDirectory(atPath: target.path)) ?? [] }
    }

    @Test func dumpsFirstThenStopsCopiesAndStartsOnlyWhatItStopped() async throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        let result = try await fixture.run()
        #expect(result.succeeded, "\(result.error ?? "")")
        #expect(fixture.docker.calls == [
            "exec:app_db_1", "stop:app_files_1", "archive:app_cold_1:/data", "archive:app_files_1:/data",
            "start:app_files_1",
        ])
        #expect(fixture.docker.isRunning("app_files_1"))
        #expect(!fixture.docker.isRunning("app_cold_1"), "an already stopped container stays stopped")
        #expect(fixture.files.count == 1)
        let archive = try #require(result.archive)
        #expect(fixture.files == [archive])
        let report = try ArchiveVerifier.verify(path: fixture.target.appendingPathComponent(archive).path,
                                                compressor: ZstdCompressor(settings: .init()))
        #expect(report.ok, "\(report.problems)")
        #expect(Set(report.manifest?.components.map(\.archivePath) ?? []) == [
            "db/database/pg_dumpall.sql", "files/volumes/data", "cold/volumes/data",
        ])
        #expect(report.manifest?.host == "testhost")
    }

    @Test func aFailedCopyStillStartsTheContainerAndLeavesNoArchive() async throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        fixture.docker.fail("archive", on: "app_files_1", message: "Docker could not read /data: disk on fire")
        let result = try await fixture.run()
        #expect(!result.succeeded)
        #expect(result.error?.contains("disk on fire") == true)
        #expect(result.containersStopped == 1, "a failed stack still reports what it stopped")
        #expect(fixture.docker.calls.last == "start:app_files_1")
        #expect(fixture.docker.isRunning("app_files_1"))
        #expect(fixture.files.isEmpty, "left behind: \(fixture.files)")
    }

    @Test func aContainerThatWillNotStartIsReportedLoudly() async throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        fixture.docker.fail("start", on: "app_files_1", message: "Docker could not start: port is taken")
        let result = try await fixture.run()
        #expect(!result.succeeded)
        #expect(result.error?.contains("could not start again") == true)
        #expect(result.error?.contains("port is taken") == true)
        #expect(fixture.docker.calls.filter { $0 == "start:app_files_1" }.count == 3, "three tries")
    }

    @Test func tooLittleFreeSpaceRefusesTheStackBeforeTouchingContainers() async throws {
        let fixture = try Fixture(minimumFree: Int64.max)
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        let result = try await fixture.run()
        #expect(!result.succeeded)
        #expect(result.error?.contains("free") == true)
        #expect(fixture.docker.calls.isEmpty)
    }

    @Test(arguments: [
        (FakeDockerEngine.ExecResult(stdout: "", stderr: "", exitCode: 0), "empty"),
        (FakeDockerEngine.ExecResult(stdout: "-- PostgreSQL database cluster dump\nCREATE", exitCode: 0), "truncated"),
        (FakeDockerEngine.ExecResult(stdout: "", stderr: "FATAL: password authentication failed", exitCode: 1),
         "password authentication failed"),
    ])
    func badDumpsFailTheStack(exec: FakeDockerEngine.ExecResult, expected: String) async throws {
        let fixture = try Fixture()
        defer { try? FileManager.default.removeItem(at: fixture.target) }
        fixture.docker.setExecResult(exec, for: "app_db_1")
        let result = try await fixture.run()
        #expect(!result.succeeded)
        #expect(result.error?.contains(expected) == true, "\(result.error ?? "")")
        #expect(!fixture.docker.calls.contains("stop:app_files_1"), "a failed dump ends the stack before any stop")
        #expect(fixture.files.isEmpty)
    }
}
