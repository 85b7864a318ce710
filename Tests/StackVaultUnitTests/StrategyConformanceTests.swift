import Foundation
import StackVaultCore
import StackVaultStrategies
import StackVaultTestKit
import Testing

/// Every built-in strategy runs the same `StrategyConformance` checks.
@Suite struct StrategyConformanceTests {
    static let mariaDump = "-- MariaDB dump 10.19\nCREATE TABLE t (a int);\n-- Dump completed on 2026-11-27 10:00:00\n"

    /// One fixture per built-in strategy type; a new strategy adds its own here.
    static func fixture(for type: String) throws -> StrategyConformance.Fixture? {
        switch type {
        case "pg_dumpall":
            let container = ContainerDetails.fake(name: "conf_pg_1", labels: ["backup.enable": "true"],
                                                  environment: ["POSTGRES_PASSWORD": "pw"])
            return .init(
                label: BackupLabel(key: "backup.database.pg_dumpall", value: "true"), container: container,
                primeSuccess: { $0.setExecResult(.init(stdout: StackBackupTests.pgDump), for: "conf_pg_1") },
                primeFailure: {
                    $0.setExecResult(.init(stderr: "FATAL: role does not exist", exitCode: 1), for: "conf_pg_1")
                },
                failureText: "FATAL: role does not exist", disablingValue: "false")
        case "mariadb-dump":
            let container = ContainerDetails.fake(name: "conf_maria_1", labels: ["backup.enable": "true"],
                                                  environment: ["MARIADB_ROOT_PASSWORD": "pw"])
            return .init(
                label: BackupLabel(key: "backup.database.mariadb-dump", value: "true"), container: container,
                primeSuccess: { $0.setExecResult(.init(stdout: Self.mariaDump), for: "conf_maria_1") },
                primeFailure: {
                    $0.setExecResult(.init(stderr: "Access denied for user 'root'", exitCode: 2), for: "conf_maria_1")
                },
                failureText: "Access denied for user 'root'", disablingValue: "false")
        case "volume-path":
            let container = ContainerDetails.fake(name: "conf_files_1", labels: ["backup.enable": "true"])
            let tar = try StackBackupTests.sampleTar()
            return .init(
                label: BackupLabel(key: "backup.volume-path.data", value: "/data"), container: container,
                primeSuccess: { $0.setArchive(tar, for: "conf_files_1", path: "/data") },
                primeFailure: {
                    $0.fail("archive", on: "conf_files_1", message: "Docker could not read /data: disk on fire")
                },
                failureText: "disk on fire")
        default:
            return nil
        }
    }

    @Test(arguments: BuiltinStrategies.all.map { $0.type })
    func builtInStrategyConforms(type: String) async throws {
        let strategy = try #require(BuiltinStrategies.all.first { $0.type == type })
        let fixture = try #require(try Self.fixture(for: type), "no conformance fixture for the strategy \(type)")
        try await StrategyConformance.run(strategy, fixture: fixture)
    }
}
