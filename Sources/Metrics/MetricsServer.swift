public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import StackVaultCore

/// The HTTP listener of `METRICS_ADDR`: SwiftNIO's HTTP/1.1 server pipeline in front of a `MetricsEndpoint`.
///
/// `bind` listens at once (so a bad address or a port in use stops the daemon at start); `run`, as a `Service` of
/// the daemon's service group, serves until graceful shutdown (SIGTERM/SIGINT) or cancellation, then closes the
/// socket and every connection.
public struct MetricsServer: Service {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let listener: NIOAsyncChannel<Connection, Never>
    private let endpoint: MetricsEndpoint
    private let logger: Logger
    /// The address bound (with the port chosen by the system when 0 was asked for).
    public let boundAddress: String

    private init(listener: NIOAsyncChannel<Connection, Never>, endpoint: MetricsEndpoint, logger: Logger) {
        self.listener = listener
        self.endpoint = endpoint
        self.logger = logger
        let local = listener.channel.localAddress
        self.boundAddress = local.map { address in
            let ip = address.ipAddress ?? "?"
            return (ip.contains(":") ? "[\(ip)]" : ip) + ":\(address.port ?? 0)"
        } ?? "?"
    }

    /// Listens on `address`; throws an invalid-configuration error naming `METRICS_ADDR` when it cannot.
    public static func bind(_ address: MetricsAddress, endpoint: MetricsEndpoint, logger: Logger) async throws
        -> MetricsServer
    {
        do {
            let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
            return MetricsServer(listener: listener, endpoint: endpoint, logger: logger)
        } catch {
            throw StackVaultError(.invalidConfiguration, "cannot serve metrics on METRICS_ADDR=\(address): \(error); "
                + "choose a free port or another address")
        }
    }

    public func run() async throws {
        let listener = self.listener, endpoint = self.endpoint, logger = self.logger
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingDiscardingTaskGroup { group in
                    try await listener.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await Self.serve(connection, endpoint: endpoint, logger: logger) }
                        }
                    }
                    group.cancelAll()
                }
            }
        } catch is CancellationError {
            // Shutdown.
        } catch {
            // The backups matter more than their metrics: keep the daemon running.
            logger.error("the metrics endpoint stopped: \(error)")
            try? await gracefulShutdown()
        }
    }

    /// Answers the requests of one connection, in order, until the client closes it or asks to.
    private static func serve(_ connection: Connection, endpoint: MetricsEndpoint, logger: Logger) async {
        do {
            try await connection.executeThenClose { requests, responses in
                var head: HTTPRequestHead?
                for try await part in requests {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        continue
                    case .end:
                        guard let request = head else { continue }
                        head = nil
                        let response = await endpoint.respond(method: request.method.rawValue, uri: request.uri)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: response.contentType)
                        headers.add(name: "Content-Length", value: "\(response.body.count)")
                        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
                        try await responses.write(.head(HTTPResponseHead(
                            version: request.version, status: HTTPResponseStatus(statusCode: response.status),
                            headers: headers)))
                        if request.method != .HEAD {
                            try await responses.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await responses.write(.end(nil))
                        if !request.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended: \(error)")
        }
    }
}
