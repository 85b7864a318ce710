import Foundation
import StackVaultCore
import Testing

/// Where the real services are, from the environment (scripts/testbed/up.sh writes .testbed/env).
///
/// Outside CI a missing Docker engine disables the suites with a visible reason; with CI=true nothing is
/// disabled, so a missing service fails the run.
enum TestBed {
    static let environment = ProcessInfo.processInfo.environment
    static let isCI = ["true", "1"].contains((environment["CI"] ?? "").lowercased())

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static var fixtures: URL { repositoryRoot.appendingPathComponent("IntegrationTests/Fixtures") }

    static var postgresImage: String { environment["STACKVAULT_TEST_POSTGRES_IMAGE"] ?? "stackvault-test/postgres:15" }
    static var mariadbImage: String { environment["STACKVAULT_TEST_MARIADB_IMAGE"] ?? "stackvault-test/mariadb:10.11" }
    static var busyboxImage: String { environment["STACKVAULT_TEST_BUSYBOX_IMAGE"] ?? "stackvault-test/busybox:latest" }

    /// The stackvault executable built by `swift build`.
    static var binary: String {
        if let path = environment["STACKVAULT_BIN"], !path.isEmpty { return path }
        return repositoryRoot.appendingPathComponent(".build/debug/stackvault").path
    }

    /// True when a Docker engine answers (or when in CI, where its absence must fail the tests).
    static let dockerUsable: Bool = {
        if isCI { return true }
        return (try? Shell.run(["docker", "info", "--format", "{{.ServerVersion}}"], check: false).ok) ?? false
    }()

    /// Fails loudly when Docker, the images or the binary are missing.
    static func requireDocker() throws {
        let info = try Shell.run(["docker", "info", "--format", "{{.ServerVersion}}"], check: false)
        guard info.ok else {
            throw TestFailure("no Docker engine answers (run scripts/testbed/up.sh): \(info.stderr)")
        }
        for image in [postgresImage, mariadbImage, busyboxImage] {
            guard try Shell.run(["docker", "image", "inspect", image], check: false).ok else {
                throw TestFailure("test image \(image) is missing (run scripts/testbed/build-images.sh)")
            }
        }
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestFailure("\(binary) is missing: run `swift build` first (scripts/test.sh does)")
        }
    }

    /// The Docker engine's name (`docker info` `Name`): the host whose folder of a target (`<target>/<host>/`)
    /// StackVault writes to when STACKVAULT_HOST is not set.
    static let engineHost: String = {
        let info = try? Shell.run(["docker", "info", "--format", "{{.Name}}"], check: false)
        return info?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }()

    /// This host's folder of the local target `target`.
    static func hostFolder(_ target: URL) -> URL { target.appendingPathComponent(engineHost) }

    /// The files in this host's folder of `target` (none when it does not exist yet).
    static func hostFiles(_ target: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: hostFolder(target).path)) ?? []
    }

    /// The sidecar image (`STACKVAULT_TEST_IMAGE`, default `stackvault-test/stackvault:dev`), built once per test
    /// process from the test binary by `scripts/build-image.sh` (which caches by tag).
    static func sidecarImage() throws -> String {
        try sidecarImageBuild.get()
    }

    private static let sidecarImageBuild: Result<String, TestFailure> = {
        let image = environment["STACKVAULT_TEST_IMAGE"] ?? "stackvault-test/stackvault:dev"
        let script = repositoryRoot.appendingPathComponent("scripts/build-image.sh").path
        let build = try? Shell.run(["bash", script, "--binary", binary, "--tag", image], check: false)
        guard let build, build.ok else {
            return .failure(TestFailure("scripts/build-image.sh failed to build \(image):\n"
                + (build?.stderr.suffix(4000) ?? "could not run bash")))
        }
        return .success(image)
    }()

    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "stackvault-it-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A Compose project brought up from a fixture, torn down (with its volumes) by `down()`.
struct ComposeProject {
    let name: String
    let file: URL

    static func up(_ fixture: String, project: String) throws -> ComposeProject {
        let compose = ComposeProject(name: project, file: TestBed.fixtures.appendingPathComponent(fixture))
        compose.down()
        try compose.run(["up", "-d"])
        return compose
    }

    func run(_ arguments: [String], check: Bool = true) throws {
        try Shell.run(["docker-compose", "-p", name, "-f", file.path] + arguments, check: check)
    }

    func down() {
        try? run(["down", "-v", "--remove-orphans", "-t", "2"], check: false)
    }

    /// The container id of `service`.
    func container(_ service: String) throws -> String {
        let ids = try Shell.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=\(name)",
                                 "--filter", "label=com.docker.compose.service=\(service)"]).stdout
            .split(separator: "\n").map(String.init)
        guard let id = ids.first else { throw TestFailure("no container for service \(service) of \(name)") }
        return id
    }
}

/// Docker helpers for assertions.
enum Docker {
    @discardableResult
    static func exec(_ container: String, _ script: String, env: [String: String] = [:]) throws -> String {
        var arguments = ["docker", "exec"]
        for (key, value) in env { arguments += ["-e", "\(key)=\(value)"] }
        return try Shell.run(arguments + [container, "sh", "-c", script]).stdout
    }

    static func inspect(_ container: String, _ format: String) throws -> String {
        try Shell.run(["docker", "inspect", "-f", format, container]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func isRunning(_ container: String) throws -> Bool { try inspect(container, "{{.State.Running}}") == "true" }
    static func startedAt(_ container: String) throws -> String { try inspect(container, "{{.State.StartedAt}}") }

    /// Waits until `probe` succeeds inside the container.
    static func waitUntil(_ container: String, _ probe: String, env: [String: String] = [:], seconds: Int = 90) throws {
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        var last = ""
        while Date() < deadline {
            var arguments = ["docker", "exec"]
            for (key, value) in env { arguments += ["-e", "\(key)=\(value)"] }
            let result = try Shell.run(arguments + [container, "sh", "-c", probe], check: false)
            if result.ok { return }
            last = result.stderr
            usleep(300_000)
        }
        throw TestFailure("\(container) did not become ready (\(probe)): \(last)")
    }

    static func waitForPostgres(_ container: String, user: String, password: String) throws {
        try waitUntil(container, "psql -U \(user) -d postgres -tAc 'select 1'", env: ["PGPASSWORD": password])
    }

    static func waitForMariaDB(_ container: String, password: String) throws {
        try waitUntil(container, "mariadb -uroot -e 'select 1'", env: ["MYSQL_PWD": password])
    }
}

/// Runs the stackvault binary.
enum StackVaultCLI {
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try Shell.run([TestBed.binary] + arguments, environment: environment, check: false)
    }
}

extension Docker {
    /// The container's `Config.Env`.
    static func environment(_ container: String) throws -> [String: String] {
        let lines = try Shell.run(["docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", container])
            .stdout.split(separator: "\n")
        var env: [String: String] = [:]
        for line in lines {
            if let eq = line.firstIndex(of: "=") { env[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
        }
        return env
    }
}

/// The top-level integration suite: everything in it runs one test at a time (real containers on 2 cores).
@Suite(.serialized, .enabled(if: TestBed.dockerUsable, "no Docker engine answers; run scripts/testbed/up.sh"))
enum Integration {}

extension Docker {
    /// A lock on `stack` as another StackVault would hold it, running a backup: a holder this host cannot check
    /// (another PID namespace, no container), so it counts until `expires`. Returns the lock's container name.
    @discardableResult
    static func createForeignLock(stack: String, expires: Date) throws -> String {
        let lockName = StackLocker.lockName(for: stack)
        try Shell.run(["docker", "create", "--name", lockName, "--label", "stackvault.test=true",
                       "--label", "org.stackvault.lock=1", "--label", "org.stackvault.lock.stack=\(stack)",
                       "--label", "org.stackvault.lock.holder=elsewhere/1/abcd",
                       "--label", "org.stackvault.lock.holder-pid=1",
                       "--label", "org.stackvault.lock.holder-pidns=pid:[0]",
                       "--label", "org.stackvault.lock.acquired=\(Date().formatted(.iso8601))",
                       "--label", "org.stackvault.lock.expires=\(expires.formatted(.iso8601))",
                       "--network", "none", DockerLockStore.image, "x"])
        return lockName
    }
}
