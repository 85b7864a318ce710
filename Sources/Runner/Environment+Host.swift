import Foundation
import StackVaultCore

extension Environment {
    /// This host's name: `override` (a `--host` option), else `STACKVAULT_HOST`, else the Docker engine's name.
    func host(_ override: String? = nil) async throws -> String {
        if let override { return try ArchiveHost.validate(override, source: "--host") }
        return try await ArchiveHost.resolve(environment: variables) { try await docker.engineName() }
    }

    /// The target with its host folders: `<target>/<host>/` is the target URL with `/<host>` appended, so every
    /// backend (a directory, an S3 prefix) gives a host its own place without knowing about hosts.
    func catalog(_ target: String?) throws -> HostCatalog {
        let url = targetURL(target)
        let registry = storageRegistry
        let variables = variables
        return HostCatalog(root: try storage(target)) { host in
            try registry.backend(for: Self.url(url, inFolder: host), environment: variables)
        }
    }

    /// The stack locks' lease, `LOCK_TTL` seconds (default 60, at least 2): how long a lock lives without renewal,
    /// and how long a run waits for a Docker daemon that went away to start what it had stopped.
    func lockTTL() throws -> Duration {
        .seconds(try EnvironmentValue.integer("LOCK_TTL", variables["LOCK_TTL"], range: 2...Int.max, unit: "seconds")
            ?? 60)
    }

    /// A stack locker on this Docker engine with the `LOCK_TTL` lease (`docker`: what it needs to recover a dead
    /// run's stopped containers and remove its helpers).
    func stackLocker(withDocker: Bool = true) throws -> StackLocker {
        StackLocker(store: DockerLockStore(client: docker), ttl: try lockTTL(), logger: logger,
                    docker: withDocker ? docker : nil)
    }

    /// `url` with the path segment `folder` appended (`s3://bucket/prefix` -> `s3://bucket/prefix/host`).
    static func url(_ url: String, inFolder folder: String) -> String {
        url.hasSuffix("/") ? url + folder : url + "/" + folder
    }
}
