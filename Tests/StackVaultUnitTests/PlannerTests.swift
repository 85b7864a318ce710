import Foundation
@testable import StackVaultCore
import StackVaultStrategies
import StackVaultTestKit
import Testing

@Suite struct PlannerTests {
    let registry = try! BuiltinStrategies.registry()

    func plan(_ containers: [ContainerDetails]) async throws -> BackupPlan {
        try await Planner(docker: FakeDockerEngine(containers: containers), strategies: registry).makePlan()
    }

    /// A stack taken down while the plan is made (`docker compose down` between the listing and the inspect) does
    /// not fail the plan of the other stacks: its container is left out.
    @Test func aLabelledContainerRemovedWhilePlanningIsLeftOut() async throws {
        let docker = FakeDockerEngine(containers: [
            .fake(name: "app_db_1", project: "app", service: "db",
                  labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD": "s3cret"]),
            .fake(name: "gone_db_1", project: "gone", service: "db",
                  labels: ["backup.enable": "true", "backup.database.pg_dumpall": "true"],
                  environment: ["POSTGRES_PASSWORD": "s3cret"]),
        ])
        docker.removeWhenInspected("gone_db_1")
        let plan = try await Planner(docker: docker, strategies: try BuiltinStrategies.registry()).makePlan()
        #expect(plan.stacks.map(\.name) == ["app"])
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

    /// A stopped container's tmpfs is empty: a path on one, below one, or holding one is a plan error that names
    /// the label, the service and the container, and nothing is stopped.
    @Test(arguments: [
        (path: "/scratch", tmpfs: "/scratch", says: "is on the tmpfs mount /scratch"),
        (path: "/run/app", tmpfs: "/run", says: "is on the tmpfs mount /run"),
        (path: "/data", tmpfs: "/data/cache", says: "contains the tmpfs mount /data/cache"),
    ])
    func aPathOnOrAroundATmpfsIsRefused(path: String, tmpfs: String, says: String) async throws {
        let plan = try await plan([
            .fake(name: "app_cache_1", project: "app", service: "cache",
                  labels: ["backup.enable": "true", "backup.volume-path.scratch": path],
                  mounts: [ContainerMount(type: "tmpfs", destination: tmpfs),
                           ContainerMount(type: "volume", destination: "/other")]),
        ])
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.errors.count == 1)
        let error = try #require(service.errors.first)
        for part in ["backup.volume-path.scratch=\(path)", "service cache", "container app_cache_1", says,
                     "emptied when the container stops"] {
            #expect(error.contains(part), "\(part) missing in: \(error)")
        }
        #expect(service.components.isEmpty)
        #expect(service.stop == false)
        #expect(plan.hasErrors)
    }

    /// A directory with a mount point inside (a volume or bind mount below a layer directory, Docker's own
    /// `/etc/hosts` in `/etc`) backs up, but no restore could replace it without removing the mount point: a plan
    /// error naming label, service, container and mount, and a restore refuses it before anything changes (a trial
    /// lost most of `/etc` to a restore that removed files and then failed on `/etc/hosts`).
    @Test func aDirectoryHoldingAMountPointIsRefusedByPlanAndRestore() async throws {
        let inspect = #"""
            {"Id": "abc", "Name": "/app_web_1", "State": {"Running": true},
             "Config": {"Image": "busybox", "Env": [], "Labels": {"backup.enable": "true",
               "backup.volume-path.etc": "/etc", "backup.volume-path.app": "/srv/app",
               "backup.volume-path.data": "/srv/app/data",
               "com.docker.compose.project": "app", "com.docker.compose.service": "web"}},
             "HostsPath": "/var/lib/docker/containers/abc/hosts", "HostnamePath": "/var/lib/docker/containers/abc/hostname",
             "ResolvConfPath": "/var/lib/docker/containers/abc/resolv.conf",
             "Mounts": [{"Type": "volume", "Name": "app_data", "Destination": "/srv/app/data"}]}
            """#
        let container = try DockerClient.containerDetails(fromInspect: Data(inspect.utf8))
        #expect(container.dockerFiles == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"])
        // A container never started has no HostsPath yet; Docker mounts the files at its first start all the same
        // (a retrial backed up /etc of a created container, whose archive then could not be restored).
        let created = inspect.replacingOccurrences(of: "\"HostsPath\"", with: "\"NotHostsPath\"")
        #expect(try DockerClient.containerDetails(fromInspect: Data(created.utf8)).dockerFiles
            == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"])
        let plan = try await plan([container])
        let errors = try #require(plan.stacks.first?.services.first?.errors)
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.contains { $0.contains("backup.volume-path.etc=/etc") && $0.contains("container app_web_1")
            && $0.contains("/etc/hosts (a file Docker mounts into every container itself)") }, "\(errors)")
        #expect(errors.contains { $0.contains("backup.volume-path.app=/srv/app")
            && $0.contains("/srv/app/data (the volume app_data)") && $0.contains("could not be restored") }, "\(errors)")
        for path in ["/etc", "/srv/app"] {
            #expect(throws: StackVaultError.self) {
                try DirectoryReplacement.method(for: path, mounts: container.mounts, dockerFiles: container.dockerFiles)
            }
        }
        // The mounted directory itself, and a directory beside Docker's files, are fine.
        #expect(try DirectoryReplacement.method(for: "/srv/app/data", mounts: container.mounts,
                                                dockerFiles: container.dockerFiles) != .writableLayer)
        #expect(try DirectoryReplacement.method(for: "/etc/ssl", mounts: container.mounts,
                                                dockerFiles: container.dockerFiles) == .writableLayer)
    }

    @Test func tmpfsMountsElsewhereAndVolumesAreFine() async throws {
        let plan = try await plan([
            .fake(name: "files", labels: ["backup.enable": "true", "backup.volume-path.data": "/data",
                                          "backup.volume-path.cachedir": "/cache"],
                  mounts: [ContainerMount(type: "volume", destination: "/data"),
                           ContainerMount(type: "tmpfs", destination: "/tmp"),
                           ContainerMount(type: "tmpfs", destination: "/cache-old")]),
        ])
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.errors.isEmpty)
        #expect(service.strategies.map(\.path) == ["/cache", "/data"])
        #expect(service.stop)
    }

    /// `--tmpfs /scratch` and Compose `tmpfs: [/scratch]` appear only in `HostConfig.Tmpfs`, not in `Mounts`.
    @Test func theComposeTmpfsFormIsSeenFromTheInspectJSON() async throws {
        let inspect = #"""
            {"Id": "abc", "Name": "/app_cache_1", "State": {"Running": true},
             "Config": {"Image": "busybox", "Env": ["A=1"], "Labels": {"backup.enable": "true",
               "backup.volume-path.scratch": "/scratch", "com.docker.compose.project": "app",
               "com.docker.compose.service": "cache"}},
             "HostConfig": {"Tmpfs": {"/scratch": "", "/run:size=1m": ""}},
             "Mounts": [{"Type": "volume", "Destination": "/data"}]}
            """#
        let container = try DockerClient.containerDetails(fromInspect: Data(inspect.utf8))
        #expect(container.mounts == [ContainerMount(type: "volume", destination: "/data"),
                                     ContainerMount(type: "tmpfs", destination: "/run"),
                                     ContainerMount(type: "tmpfs", destination: "/scratch")])
        let plan = try await plan([container])
        let error = try #require(plan.stacks.first?.services.first?.errors.first)
        #expect(error.contains("backup.volume-path.scratch") && error.contains("tmpfs mount /scratch"))
        // Restore sees it too, instead of taking /scratch for a directory in the container's own layer.
        #expect(throws: StackVaultError.self) {
            try DirectoryReplacement.method(for: "/scratch", mounts: container.mounts)
        }
    }
}

@Suite struct HelperPlanTests {
    @Test func lddOutputListsEveryLibraryAndTheLoaderButNotTheVDSO() throws {
        let output = """
            \tlinux-vdso.so.1 (0x00007ffc1d5f2000)
            \tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007f0b1c0a0000)
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b1be00000)
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b1c3a0000)
            """
        #expect(try HelperImage.libraries(fromLdd: output) == [
            "/lib/x86_64-linux-gnu/libcurl.so.4", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
        ])
        #expect(throws: StackVaultError.self) {
            try HelperImage.libraries(fromLdd: "\tlibzstd.so.1 => not found\n")
        }
    }

    @Test func theBuiltImageTagChangesWithTheVersionAndTheBinary() {
        #expect(HelperImage.builtTag(version: "0.1.0", hash: 0xabc) == "stackvault-helper:0.1.0-000000000000")
        #expect(HelperImage.builtTag(version: "0.1.0", hash: 0x0123_4567_89ab_cdef) == "stackvault-helper:0.1.0-0123456789ab")
        #expect(HelperImage.builtTag(version: "0.2.0", hash: 1) != HelperImage.builtTag(version: "0.1.0", hash: 1))
    }

    @Test func dockersPathStatIsReadAsDirectoryOrResolvedLink() {
        let directory = DockerClient.pathStat(fromJSON: ["mode": NSNumber(value: UInt64(2_147_484_141)), "linkTarget": ""])
        #expect(directory == ContainerPathStat(isDirectory: true))
        let link = DockerClient.pathStat(fromJSON: ["mode": NSNumber(value: UInt64(134_218_239)), "linkTarget": "/data/v1"])
        #expect(link == ContainerPathStat(isDirectory: false, isSymlink: true, linkTarget: "/data/v1"))
    }

    @Test func directoriesOnMountsUseTheHelperAndTheRestTheArchiveAPIWithAWarning() {
        let mounts = [ContainerMount(type: "volume", destination: "/data"), ContainerMount(type: "tmpfs", destination: "/run")]
        let image = HelperImage.override(image: "x:1")
        #expect(DirectoryCopy.choose(path: "/data/v1", mounts: mounts, helper: image) == .helper(image))
        guard case .archiveAPI(let why) = DirectoryCopy.choose(path: "/etc", mounts: mounts, helper: image) else {
            Issue.record("/etc is in the container's layer")
            return
        }
        #expect(why.contains("own layer") && why.contains("extended attributes"))
        guard case .archiveAPI(let none) = DirectoryCopy.choose(path: "/data", mounts: mounts,
                                                                helper: .unavailable(reason: "no binary")) else {
            Issue.record("no helper image")
            return
        }
        #expect(none.contains("no binary") && none.contains("POSIX ACLs"))
    }

    @Test func planResolvesLinksAndNamesLabelServiceAndContainerForBadPaths() async throws {
        let container = ContainerDetails(
            id: "id-app", name: "app-files-1", image: "busybox", isRunning: true,
            labels: ["backup.enable": "true", "com.docker.compose.project": "app", "com.docker.compose.service": "files",
                     "backup.volume-path.cur": "/data/cur", "backup.volume-path.gone": "/data/gone",
                     "backup.volume-path.file": "/data/file"],
            environment: [:], mounts: [ContainerMount(type: "volume", destination: "/data")])
        let docker = FakeDockerEngine(containers: [container])
        docker.setPathStat(ContainerPathStat(isDirectory: false, isSymlink: true, linkTarget: "/data/v1"),
                           for: "app-files-1", path: "/data/cur")
        docker.setPathStat(nil, for: "app-files-1", path: "/data/gone")
        docker.setPathStat(ContainerPathStat(isDirectory: false), for: "app-files-1", path: "/data/file")
        let plan = try await Planner(docker: docker, strategies: try BuiltinStrategies.registry()).makePlan()
        let service = try #require(plan.stacks.first?.services.first)
        #expect(service.strategies.first { $0.name == "cur" }?.resolvedPath == "/data/v1")
        #expect(service.errors.contains(
            "label backup.volume-path.gone=/data/gone of service files (container app-files-1): /data/gone does not "
                + "exist in the container; create the directory or correct the label"), "\(service.errors)")
        #expect(service.errors.contains { $0.contains("backup.volume-path.file=/data/file") && $0.contains("not a directory") })
        #expect(plan.helperImage?.contains("fake://docker cannot run helper containers") == true, "\(plan.helperImage ?? "")")
    }
}
