import Logging
import ServiceLifecycle
import StackVaultCore

/// The daemon's watch over the host's stack locks: every `interval` (`LOCK_TTL`, 60 s) it breaks stale locks and
/// starts what their dead holders had stopped (`StackLocker.recoverAbandonedLocks`), so containers stopped by a
/// `docker exec ... stackvault backup` that was killed (OOM, SIGKILL) run again within `LOCK_TTL`, not at the next
/// scheduled run. What could not be started is kept in the state file (`containersLeftStopped`), which makes
/// `health` unhealthy. It also removes the drill and helper containers of StackVault processes that are gone
/// (`removeOrphanedContainers`). The daemon's start does the same once, before anything else (`DaemonCommand`).
struct LockSweepService: Service {
    let locker: StackLocker
    let state: DaemonStateStore
    let interval: Duration

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: interval)
                    let failures = await locker.recoverAbandonedLocks()
                    await state.update { $0.containersLeftStopped = failures.isEmpty ? nil : failures }
                    if let docker = locker.docker { _ = await locker.removeOrphanedContainers(docker: docker) }
                }
            }
        } catch is CancellationError {
            // Shutdown.
        }
    }
}
