/// Where the Docker daemon listens, from `DOCKER_HOST` (`unix:///path`, `tcp://host:port`).
public struct DockerEndpoint: Sendable, Equatable, CustomStringConvertible {
    public static let defaultSocket = "/var/run/docker.sock"

    /// The unix socket, when the daemon is reached that way.
    public var socketPath: String?
    /// `http://localhost` for sockets, `http://host:port` for TCP.
    public var baseURL: String
    public var description: String

    /// Parses a `DOCKER_HOST` value; nil or empty means the default socket.
    public init(dockerHost: String?) throws {
        let value = (dockerHost ?? "").trimmingCharacters(in: .whitespaces)
        if value.isEmpty {
            self.socketPath = Self.defaultSocket
            self.baseURL = "http://localhost"
            self.description = "unix://\(Self.defaultSocket)"
        } else if value.hasPrefix("unix://") {
            let path = String(value.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw StackVaultError(.invalidConfiguration,
                    "DOCKER_HOST '\(value)' must name an absolute socket path, e.g. unix:///var/run/docker.sock")
            }
            self.socketPath = path
            self.baseURL = "http://localhost"
            self.description = value
        } else if value.hasPrefix("tcp://") || value.hasPrefix("http://") {
            var rest = value.hasPrefix("tcp://") ? String(value.dropFirst("tcp://".count))
                : String(value.dropFirst("http://".count))
            while rest.hasSuffix("/") { rest.removeLast() }
            guard !rest.isEmpty, !rest.contains("/") else {
                throw StackVaultError(.invalidConfiguration, "DOCKER_HOST '\(value)' must look like tcp://host:2375")
            }
            self.socketPath = nil
            self.baseURL = "http://\(rest.contains(":") ? rest : rest + ":2375")"
            self.description = value
        } else {
            throw StackVaultError(.invalidConfiguration,
                "DOCKER_HOST '\(value)' is not supported: use unix:///path/to/docker.sock or tcp://host:port")
        }
    }
}

import Foundation
