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

    /// `url` with the path segment `folder` appended (`s3://bucket/prefix` -> `s3://bucket/prefix/host`).
    static func url(_ url: String, inFolder folder: String) -> String {
        url.hasSuffix("/") ? url + folder : url + "/" + folder
    }
}
