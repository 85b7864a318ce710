public import Foundation
public import StackVaultCore

/// What the metrics server answers, without the network: `GET /metrics` and `GET /healthz`.
public struct MetricsEndpoint: Sendable {
    /// An HTTP response.
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let metrics: BackupMetrics
    /// The daemon's health now (`HealthCheck.evaluate` over its state).
    public let health: @Sendable () async -> HealthReport
    /// When the daemon's next scheduled run is due (`DaemonState.nextRunDue`), read at each scrape.
    public let nextRun: (@Sendable () async -> Date?)?

    public init(metrics: BackupMetrics, health: @escaping @Sendable () async -> HealthReport,
                nextRun: (@Sendable () async -> Date?)? = nil) {
        self.metrics = metrics
        self.health = health
        self.nextRun = nextRun
    }

    /// The response to `method` on `uri` (a query string is ignored).
    public func respond(method: String, uri: String) async -> Response {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            ?? uri
        guard path == "/metrics" || path == "/healthz" else {
            return Self.text(404, "not found: \(path); StackVault serves /metrics and /healthz\n")
        }
        guard method == "GET" || method == "HEAD" else {
            return Self.text(405, "method \(method) not allowed: use GET\n")
        }
        if path == "/metrics" {
            if let nextRun { metrics.recordNextRun(await nextRun()) }
            return Response(status: 200, contentType: BackupMetrics.contentType, body: metrics.exposition())
        }
        let report = await health()
        return Self.text(report.healthy ? 200 : 503, report.message + "\n")
    }

    static func text(_ status: Int, _ body: String) -> Response {
        Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(body.utf8))
    }
}
