import Foundation
import Logging
import ServiceLifecycle

/// Runs `work` once as a swift-service-lifecycle `Service`: SIGTERM and SIGINT cancel it, and whatever cleanup it
/// does on cancellation (starting stopped containers again) still runs before the process exits.
/// Returns the work's result, or nil if the group ended before the work did.
func runCancellably<T: Sendable>(logger: Logger, _ work: @escaping @Sendable () async -> T) async throws -> T? {
    let service = OneShotService(work)
    try await ServiceGroup(configuration: .init(
        services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
        cancellationSignals: [.sigterm, .sigint],
        logger: logger)).run()
    return service.result
}

/// The `Service` behind `runCancellably`.
private final class OneShotService<T: Sendable>: Service, @unchecked Sendable {
    private let work: @Sendable () async -> T
    private let lock = NSLock()
    private var stored: T?

    init(_ work: @escaping @Sendable () async -> T) {
        self.work = work
    }

    var result: T? { lock.withLock { stored } }

    func run() async throws {
        let value = await work()
        lock.withLock { stored = value }
    }
}
