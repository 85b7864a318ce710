import StackVaultCore
import StackVaultStrategies
import StackVaultTestKit
import Testing

@Suite struct PlannerTests {
    let registry = try! BuiltinStrategies.registry()

    func plan(_ containers: [ContainerDetails]) async throws -> BackupPlan {
        try await Planner(docker: FakeDockerEngine(containers: containers), strategies: registry).makePlan()
    }

    @Test func groupsByComposeProjectAndNamesServices() async throws {
        let plan = try await plan([
            .fake(name: "app_db_1", project: "app", service: "db",
                  labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD": "s3cret"]),
            .fake(name: "app_files_1", project: "app", service: "files",
                  labels: ["backup.enable": "true", "backup.volume-path.data": "/data",
                           "backup.volume-path.config": "/config/"]),
            .fake(name: "app_web_1", project: "app", service: "web", labels: [:]),
            .fake(name: "loner", labels: ["backup.enable": "true", "backup.volume-path.x": "/srv/x"]),
            .fake(name: "other_web_1", project: "other", service: "web", labels: ["backup.enable": "false",
                                                                                  "backup.volume-path.x": "/x"]),
        ])
        #expect(plan.stacks.map(\.name) == ["app", "loner"])
        let app = try #require(plan.stack(named: "app"))
        #expect(app.services.map(\.service) == ["db", "files"])
        let db = app.services[0]
        #expect(db.strategies == [ComponentSpec(type: "pg_dumpall", archivePath: "db/database/pg_dumpall.sql")])
        #expect(db.stop == false)
        #expect(db.errors.isEmpty)
        let files = app.services[1]
        #expect(files.stop)
        #expect(files.strategies == [
            ComponentSpec(type: "volume-path", name: "config", path: "/config", archivePath: "files/volumes/config"),
            ComponentSpec(type: "volume-path", name: "data", path: "/data", archivePath: "files/volumes/data"),
        ])
        let loner = try #require(plan.stack(named: "loner"))
        #expect(loner.services.map(\.service) == ["loner"])
        #expect(!plan.hasErrors)
    }

    @Test func badLabelsAreErrorsNamingTheLabel() async throws {
        let plan = try await plan([
            .fake(name: "bad", labels: [
                "backup.enable": "true",
                "backup.volume-path.bad name!": "/data",
                "backup.volume-path.rel": "relative/path",
                "backup.volume-path.up": "/data/../etc",
                "backup.frobnicate": "yes",
            ]),
        ])
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.errors.count == 3)
        #expect(service.errors.contains { $0.contains("backup.volume-path.bad name!") && $0.contains("name") })
        #expect(service.errors.contains { $0.contains("backup.volume-path.rel") && $0.contains("absolute") })
        #expect(service.errors.contains { $0.contains("backup.volume-path.up") && $0.contains("..") })
        #expect(service.warnings.contains { $0.contains("backup.frobnicate") })
        #expect(plan.hasErrors)
    }

    @Test func dumpAndVolumeOnOneServiceStopsAndSkipsTheDump() async throws {
        let plan = try await plan([
            .fake(name: "pg", project: "mixed", service: "pg", labels: [
                "backup.enable": "true", "backup.database.pg_dumpall": "true",
                "backup.volume-path.pgdata": "/var/lib/postgresql/data",
            ], environment: ["POSTGRES_PASSWORD": "x"]),
        ])
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.stop)
        #expect(service.strategies.map(\.type) == ["volume-path"])
        #expect(service.warnings.contains { $0.contains("pg_dumpall skipped") })
        #expect(service.errors.isEmpty)
    }

    @Test func missingCredentialsAreErrors() async throws {
        let plan = try await plan([
            .fake(name: "pg", labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_USER": "app"]),
            .fake(name: "maria", labels: ["backup.enable": "true", "backup.database.mariadb-dump": "true"],
                  environment: ["MYSQL_USER": "shop", "MYSQL_PASSWORD": "not-root"]),
            .fake(name: "maria-file", labels: ["backup.enable": "true", "backup.database.mariadb-dump": "true"],
                  environment: ["MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/root"]),
            .fake(name: "pg-file", labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD_FILE": "/run/secrets/pg"]),
        ])
        let pg = try #require(plan.stack(named: "pg")?.services.first)
        #expect(pg.errors.count == 1)
        #expect(pg.errors[0].contains("POSTGRES_PASSWORD"))
        let maria = try #require(plan.stack(named: "maria")?.services.first)
        #expect(maria.errors.count == 1)
        #expect(maria.errors[0].contains("MARIADB_ROOT_PASSWORD"))
        #expect(plan.stack(named: "maria-file")?.hasErrors == false)
        #expect(plan.stack(named: "pg-file")?.hasErrors == false)
    }

    @Test func invalidBooleanAndStoppedDatabase() async throws {
        let plan = try await plan([
            .fake(name: "maybe", labels: ["backup.enable": "true", "backup.database.pg_dumpall": "maybe"],
                  environment: ["POSTGRES_PASSWORD": "x"]),
            .fake(name: "down", running: false,
                  labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD": "x"]),
            .fake(name: "empty", labels: ["backup.enable": "true"]),
        ])
        #expect(plan.stack(named: "maybe")?.services.first?.errors.first?.contains("maybe") == true)
        #expect(plan.stack(named: "down")?.services.first?.errors.first?.contains("not running") == true)
        let empty = try #require(plan.stack(named: "empty")?.services.first)
        #expect(empty.errors.isEmpty)
        #expect(empty.warnings.contains { $0.contains("nothing will be saved") })
    }

    @Test func replicasGetTheirContainerNameAsFolder() async throws {
        let plan = try await plan([
            .fake(name: "app_w_1", project: "app", service: "w",
                  labels: ["backup.enable": "true", "backup.volume-path.d": "/d"]),
            .fake(name: "app_w_2", project: "app", service: "w",
                  labels: ["backup.enable": "true", "backup.volume-path.d": "/d"]),
        ])
        let paths = plan.stacks[0].services.flatMap(\.strategies).map(\.archivePath)
        #expect(paths == ["app_w_1/volumes/d", "app_w_2/volumes/d"])
    }
}
