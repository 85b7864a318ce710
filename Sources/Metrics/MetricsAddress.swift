import Foundation
import StackVaultCore

/// Where the metrics endpoint listens: `METRICS_ADDR`, as `:9090` (every interface), `127.0.0.1:9090`,
/// `localhost:9090` or `[::1]:9090`.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; throws an invalid-configuration error that names `variable`.
    public init(_ text: String, variable: String = "METRICS_ADDR") throws {
        let value = text.trimmingCharacters(in: .whitespaces)
        func invalid(_ why: String) -> StackVaultError {
            StackVaultError(.invalidConfiguration, "\(variable)='\(text)' \(why): use HOST:PORT or :PORT, such as "
                + ":9090 (every interface) or 127.0.0.1:9090")
        }
        guard let colon = value.lastIndex(of: ":") else { throw invalid("has no port") }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        guard !host.contains(":") || value.hasPrefix("[") else {
            throw invalid("needs brackets around an IPv6 address")
        }
        guard let port = Int(value[value.index(after: colon)...]), (0...65535).contains(port) else {
            throw invalid("has no valid port (0-65535)")
        }
        self.init(host: host, port: port)
    }

    /// `METRICS_ADDR` from `environment`; nil when it is unset or empty (no metrics endpoint).
    public init?(environment: [String: String]) throws {
        guard let text = environment["METRICS_ADDR"], !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            return nil
        }
        try self.init(text)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
