public import Foundation
public import Logging

/// Where stack locks live. The store only has to create a named lock atomically (exactly one of several
/// concurrent creators wins) and keep a renewable lease; `StackLocker` decides when a lock is stale.
///
/// `DockerLockStore` keeps them in the Docker daemon, the one thing all StackVaults of a host share.
public protocol LockStore: Sendable {
    /// Creates the lock `name` unless one exists; returns its id, or nil when the name is taken.
    func create(name: String, record: LockRecord) async throws -> String?
    /// The lock `name` with its latest lease expiry (renewals included), nil if there is none.
    func read(name: String) async throws -> StoredLock?
    /// Extends the lease of lock `id` to `until`; false when the lock no longer exists (it was broken).
    func renew(id: String, holder: String, until: Date) async throws -> Bool
    /// Removes lock `id`; no error when it is already gone.
    func remove(id: String) async throws
    /// Whether container `id` exists and runs; nil when there is no such container.
    func isContainerRunning(_ id: String) async throws -> Bool?
    /// Replaces the journal of lock `id`; false when the lock no longer exists.
    func writeJournal(id: String, _ journal: StopJournal) async throws -> Bool
    /// The journal of lock `id`; nil when it never wrote one (or the lock is gone).
    func readJournal(id: String) async throws -> StopJournal?
    /// The names of every lock in the store.
    func lockNames() async throws -> [String]
}

/// Who holds a lock, and until when.
public struct LockRecord: Sendable, Equatable {
    public var stack: String
    public var holder: HolderIdentity
    public var acquiredAt: Date
    /// The lease as first granted; renewals extend it (see `StoredLock.expiresAt`).
    public var expiresAt: Date
    /// What the holder does with the stack: `backup` or `restore`.
    public var purpose: String

    public init(stack: String, holder: HolderIdentity, acquiredAt: Date, expiresAt: Date, purpose: String = "backup") {
        self.stack = stack
        self.holder = holder
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
        self.purpose = purpose
    }

    /// "another StackVault (holder) has been running a backup of it since ...", for messages.
    public var busyDescription: String {
        "another StackVault (\(holder)) has been running a \(purpose) of it since \(acquiredAt.iso8601)"
    }
}

/// A lock as found in the store.
public struct StoredLock: Sendable, Equatable {
    public var id: String
    public var record: LockRecord
    /// The current end of the lease.
    public var expiresAt: Date

    public init(id: String, record: LockRecord, expiresAt: Date) {
        self.id = id
        self.record = record
        self.expiresAt = expiresAt
    }
}

/// A StackVault process, as other processes can check whether it still lives.
public struct HolderIdentity: Sendable, Equatable, CustomStringConvertible {
    /// Unique per process: `host/pid/random`.
    public var id: String
    public var pid: Int32
    /// The PID namespace (`pid:[4026531836]`): processes in the same one can check each other's PIDs.
    public var pidNamespace: String?
    /// The container the process runs in, if any.
    public var container: String?
    /// When the process started, in clock ticks after boot (`/proc/<pid>/stat` field 22, proc(5)): tells a PID
    /// reused by another process (or a PID namespace number reused after a container restart) from the holder.
    public var startTime: UInt64?

    public init(id: String, pid: Int32, pidNamespace: String?, container: String?, startTime: UInt64? = nil) {
        self.id = id
        self.pid = pid
        self.pidNamespace = pidNamespace
        self.container = container
        self.startTime = startTime
    }

    /// This process.
    public static func current() -> HolderIdentity {
        let pid = getpid()
        let host = ProcessInfo.processInfo.hostName
        let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
        return HolderIdentity(id: "\(host)/\(pid)/\(UUID().uuidString.prefix(8).lowercased())", pid: pid,
                              pidNamespace: namespace, container: ownContainerID(), startTime: startTime(of: pid))
    }

    /// Field 22 (`starttime`) of `/proc/<pid>/stat`; nil when there is no such process. The fields are counted
    /// after the last `)`, since the command name (field 2) may hold spaces and parentheses.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil  // fields[0] is field 3 (state)
    }

    /// The id of the Docker container this process runs in, from the bind mount Docker puts on /etc/hostname
    /// (`.../containers/<64 hex>/hostname`); nil outside a container.
    static func ownContainerID(mountInfo: String? = try? String(contentsOfFile: "/proc/self/mountinfo",
                                                                 encoding: .utf8)) -> String? {
        for line in (mountInfo ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == "/etc/hostname" else { continue }
            let root = fields[3].split(separator: "/")
            guard let index = root.firstIndex(of: "containers"), index + 2 < root.count, root[index + 2] == "hostname"
            else { continue }
            let id = root[index + 1]
            if id.count == 64, id.allSatisfy(\.isHexDigit) { return String(id) }
        }
        return nil
    }

    public var description: String {
        id + (container.map { " in container \($0.prefix(12))" } ?? "")
    }

    /// Docker labels `<prefix>` (the id), `<prefix>-pid`, `<prefix>-pidns`, `<prefix>-container`: how a lock, a
    /// drill container and a helper container name the process that made them.
    public func labels(prefix: String) -> [String: String] {
        var labels = [prefix: id, "\(prefix)-pid": String(pid)]
        if let pidNamespace { labels["\(prefix)-pidns"] = pidNamespace }
        if let container { labels["\(prefix)-container"] = container }
        if let startTime { labels["\(prefix)-start"] = String(startTime) }
        return labels
    }

    /// The identity `labels(prefix:)` wrote; nil when the labels are not there.
    public init?(labels: [String: String], prefix: String) {
        guard let id = labels[prefix], let pid = labels["\(prefix)-pid"].flatMap({ Int32($0) }) else { return nil }
        self.init(id: id, pid: pid, pidNamespace: labels["\(prefix)-pidns"], container: labels["\(prefix)-container"],
                  startTime: labels["\(prefix)-start"].flatMap { UInt64($0) })
    }
}

/// Per-stack locks shared by every StackVault on a Docker host, so that two never back up the same stack at once.
///
/// A lock is a lease: its holder renews it every `ttl / 3` while the stack's backup runs and removes it at the end.
/// Another process treats a lock as stale, removes it and takes it over, when its holder is provably gone (a
/// process in the same PID namespace that no longer exists, or a holder container that no longer runs) or when
/// the lease has not been renewed for `ttl`. A crashed holder therefore blocks its stack for at most `ttl`.
public struct StackLocker: Sendable {
    public let store: any LockStore
    public let identity: HolderIdentity
    public let ttl: Duration
    public let logger: Logger
    /// Starts what a dead holder had stopped (see `StopJournal`); nil: such containers are only reported.
    public let docker: (any DockerEngine)?
    /// Told, per stack, how many containers a dead holder had stopped were started again (the metrics).
    public let onRecovered: @Sendable (_ stack: String, _ containers: Int) -> Void
    let now: @Sendable () -> Date

    public init(store: any LockStore, identity: HolderIdentity = .current(), ttl: Duration = .seconds(60),
                logger: Logger, docker: (any DockerEngine)? = nil,
                onRecovered: @escaping @Sendable (String, Int) -> Void = { _, _ in },
                now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.identity = identity
        self.ttl = ttl
        self.logger = logger
        self.docker = docker
        self.onRecovered = onRecovered
        self.now = now
    }

    /// This locker with a holder identity of its own, for another task of this process that takes or breaks locks
    /// while the process's own runs hold theirs (the daemon's drills and its lock sweep): a lock whose holder id is
    /// one's own reads as stale ("this process took it and did not release it", see `staleness`).
    public func withOwnIdentity() -> StackLocker {
        StackLocker(store: store, identity: .current(), ttl: ttl, logger: logger, docker: docker,
                    onRecovered: onRecovered, now: now)
    }

    /// The name of a stack's lock: `stackvault-lock.<stack>` (characters Docker refuses in names become `_`, and
    /// then a hash keeps distinct stacks apart).
    public static func lockName(for stack: String) -> String {
        let allowed = stack.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "_.-".unicodeScalars.contains(scalar))
                ? Character(scalar) : "_"
        }
        let cleaned = String(allowed)
        if cleaned == stack { return "stackvault-lock.\(stack)" }
        let hash = stack.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }  // FNV-1a
        return "stackvault-lock.\(cleaned).\(String(hash, radix: 16))"
    }

    /// The outcome of `withLock`.
    public enum Outcome<T: Sendable>: Sendable {
        case ran(T)
        /// Another live process holds the lock.
        case busy(StoredLock)
    }

    /// Runs `body` holding the lock of `stack`, or returns `.busy` at once when another live process holds it.
    /// The lock is released on every path, cancellation included. `purpose` (`backup`, `restore`) is shown to
    /// whoever finds the stack locked.
    public func withLock<T: Sendable>(
        on stack: String,
        purpose: String = "backup",
        _ body: () async -> T
    ) async throws -> Outcome<T> {
        let name = Self.lockName(for: stack)
        var lockID: String?
        for _ in 0..<3 {
            let start = now()
            let record = LockRecord(stack: stack, holder: identity, acquiredAt: start,
                                    expiresAt: start.addingTimeInterval(ttl.seconds), purpose: purpose)
            if let id = try await store.create(name: name, record: record) {
                lockID = id
                break
            }
            guard let existing = try await store.read(name: name) else { continue }  // released meanwhile
            guard let reason = try await staleness(of: existing) else { return .busy(existing) }
            let message = "breaking the stale lock \(name) of stack \(stack), held by \(existing.record.holder) "
                + "since \(existing.record.acquiredAt.iso8601): \(reason)"
            logger.warning("\(message)")
            try await recover(existing)
            try await store.remove(id: existing.id)
        }
        guard let lockID else {
            throw StackVaultError(.dockerAPI, "could not take the lock \(name) of stack \(stack) after 3 tries "
                + "(other processes kept taking it)", isTransient: true)
        }
        logger.debug("took the lock \(name)")
        // Helper and drill containers of dead runs go too: a run whose Docker went away for a moment could not
        // remove its own, and may have ended cleanly otherwise (no stale lock to recover).
        if let docker { _ = await removeOrphanedContainers(docker: docker) }
        let held = HeldLock(id: lockID, stack: stack, ttl: ttl, store: store)
        let result = await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.renew(lockID, name: name) }
            let result = await HeldLock.$current.withValue(held) { await body() }
            group.cancelAll()
            return result
        }
        // Released even when this task is cancelled (SIGTERM): a detached task is not.
        let store = self.store
        let logger = self.logger
        await Task.detached {
            do {
                try await store.remove(id: lockID)
            } catch {
                logger.warning("could not remove the lock \(name) (it expires by itself): \(error)")
            }
        }.value
        return .ran(result)
    }

    /// Undoes what the dead holder of `lock` left (its `StopJournal`): starts the containers it had stopped that
    /// are still stopped, logging a warning with their names and how long they were down, and removes its partial
    /// archives. Throws when a container could not be started: the lock then stays, with its journal, so the next
    /// StackVault tries again, and the stack is not backed up meanwhile.
    func recover(_ lock: StoredLock) async throws {
        guard let journal = try await store.readJournal(id: lock.id), !journal.isEmpty else { return }
        let stack = lock.record.stack
        for path in journal.partials where FileManager.default.fileExists(atPath: path) {
            do {
                try FileManager.default.removeItem(atPath: path)
                logger.warning("removed the partial archive \(path) of a dead \(lock.record.purpose) of stack \(stack)")
            } catch {
                logger.warning("could not remove the partial archive \(path) of a dead run: \(error)")
            }
        }
        guard !journal.stopped.isEmpty else { return }
        let names = journal.stopped.map(\.name).joined(separator: ", ")
        guard let docker else {
            throw StackVaultError(.containerRestart, "a dead StackVault (\(lock.record.holder)) had stopped \(names) "
                + "of stack \(stack); start them: docker start \(journal.stopped.map(\.name).joined(separator: " "))")
        }
        var down: [StoppedContainer] = []
        for container in journal.stopped {
            do {
                if try await !docker.inspectContainer(container.id).isRunning { down.append(container) }
            } catch let error as StackVaultError where error.code == .dockerAPI {
                logger.warning("\("\(container.name), stopped by a dead \(lock.record.purpose) of stack \(stack), ")\("no longer exists: \(error)")")
            }
        }
        let seconds = journal.stoppedAt.map { now().timeIntervalSince($0) } ?? 0
        let failures = await ContainerStopGuard.startAll(
            down, docker: docker, stoppedBy: .now, pollInterval: .milliseconds(200), logger: logger)
        let started = down.count - failures.count
        if started > 0 { onRecovered(stack, started) }
        let others = journal.stopped.filter { c in !down.contains(c) }.map(\.name)
        let failed = Set(failures.compactMap { $0.split(separator: ":").first.map(String.init) })
        let startedNames = down.map(\.name).filter { !failed.contains($0) }
        let message = "a StackVault \(lock.record.purpose) of stack \(stack) (\(lock.record.holder)) died while "
            + "its containers were stopped: "
            + (startedNames.isEmpty ? String(format: "they have been down for %.1f s", seconds)
                : "started \(startedNames.joined(separator: ", ")) again after " + String(format: "%.1f s down", seconds))
            + (others.isEmpty ? "" : "; \(others.joined(separator: ", ")) already ran again or are gone")
        guard failures.isEmpty else {
            logger.critical("\(message); but could NOT start: \(failures.joined(separator: "; "))")
            throw StackVaultError(.containerRestart, "could not start again what a dead StackVault had stopped in "
                + "stack \(stack): \(failures.joined(separator: "; ")); start them by hand: docker start "
                + journal.stopped.map(\.name).joined(separator: " "))
        }
        logger.warning("\(message)")
    }

    /// For the daemon's start: breaks every stale lock of the host (of any stack), first starting what its dead
    /// holder had stopped (`recover`). Locks of live holders are left alone. Returns the stacks whose recovery
    /// failed, with the reason.
    public func recoverAbandonedLocks() async -> [String] {
        var failures: [String] = []
        let names: [String]
        do {
            names = try await store.lockNames()
        } catch {
            logger.error("could not list the stack locks to start what a dead StackVault stopped: \(error)")
            return ["cannot list the stack locks: \(error)"]
        }
        for name in names {
            do {
                guard let lock = try await store.read(name: name), let reason = try await staleness(of: lock) else {
                    continue
                }
                let message = "breaking the stale lock \(name) of stack \(lock.record.stack), held by "
                    + "\(lock.record.holder) since \(lock.record.acquiredAt.iso8601): \(reason)"
                logger.warning("\(message)")
                try await recover(lock)
                try await store.remove(id: lock.id)
            } catch {
                logger.error("stale lock \(name): \(error)")
                failures.append("\(name): \(error)")
            }
        }
        return failures
    }

    /// Containers that a dead holder had stopped and that are still down, one line per stack ("stack app: a dead
    /// backup (host/42/ab12cd34) stopped app-web-1, app-db-1 at 2026-11-30T06:53:16Z"), for `health`: a
    /// StackVault that died while containers were stopped must not look healthy until they run again. Changes
    /// nothing: starting them is `recoverAbandonedLocks`'s (the daemon's) work.
    public func abandonedStops() async throws -> [String] {
        var found: [String] = []
        for name in try await store.lockNames() {
            guard let lock = try await store.read(name: name), try await staleness(of: lock) != nil,
                  let journal = try await store.readJournal(id: lock.id), !journal.stopped.isEmpty
            else { continue }
            var down: [String] = []
            for container in journal.stopped where try await store.isContainerRunning(container.id) == false {
                down.append(container.name)
            }
            guard !down.isEmpty else { continue }
            found.append("stack \(lock.record.stack): a dead \(lock.record.purpose) (\(lock.record.holder)) stopped "
                + down.joined(separator: ", ") + (journal.stoppedAt.map { " at \($0.iso8601)" } ?? ""))
        }
        return found
    }

    /// Why `lock` is stale, or nil when its holder may still be working.
    func staleness(of lock: StoredLock) async throws -> String? {
        let holder = lock.record.holder
        if holder.id == identity.id { return "this process took it and did not release it" }
        if let gone = try await whyGone(holder) { return gone }
        if lock.expiresAt < now() {
            let ttl = String(format: "%g", self.ttl.seconds)
            return "its lease expired at \(lock.expiresAt.iso8601) (not renewed for \(ttl) s)"
        }
        return nil
    }

    /// Why the process `holder` is provably gone (taken in an earlier life of this container, a process of this PID
    /// namespace that no longer exists, a holder container that no longer runs); nil when it may still work.
    func whyGone(_ holder: HolderIdentity) async throws -> String? {
        if let container = holder.container, container == identity.container, let namespace = holder.pidNamespace,
           let mine = identity.pidNamespace, namespace != mine
        {
            return "it was taken in an earlier life of this container (which has been restarted since)"
        }
        if let namespace = holder.pidNamespace, namespace == identity.pidNamespace {
            if !Self.processExists(holder.pid) { return "its holder process \(holder.pid) has exited" }
            if let started = holder.startTime, let now = HolderIdentity.startTime(of: holder.pid), now != started {
                return "its holder process \(holder.pid) has exited (that PID is another process now)"
            }
        }
        if let container = holder.container, container != identity.container,
           try await store.isContainerRunning(container) != true
        {
            return "its holder's container \(container.prefix(12)) is not running"
        }
        return nil
    }

    /// Label prefix naming the process that made a drill or helper container (`HolderIdentity.labels(prefix:)`).
    public static let makerLabel = "stackvault.made-by"

    /// Removes the drill and helper containers (and their anonymous volumes) of StackVault processes that are gone
    /// (SIGKILL, OOM kill, their container stopped): a live process removes its own on every other path. Returns
    /// the names removed. Containers without the maker labels (from earlier versions) are left alone.
    public func removeOrphanedContainers(docker: any DockerEngine) async -> [String] {
        var removed: [String] = []
        for label in [DrillEngine.label, HelperImage.containerLabel] {
            guard let found = try? await docker.listContainers(labelFilters: [label]) else { continue }
            for container in found {
                guard let maker = HolderIdentity(labels: container.labels, prefix: Self.makerLabel),
                      maker.id != identity.id, let why = try? await whyGone(maker)
                else { continue }
                do {
                    try await docker.removeContainer(container.id, force: true)
                    removed.append(container.name)
                    logger.warning("removed \(container.name), left by a StackVault that is gone (\(maker)): \(why)")
                } catch {
                    logger.warning("could not remove \(container.name), left by a StackVault that is gone: \(error)")
                }
            }
        }
        return removed
    }

    private func renew(_ id: String, name: String) async {
        let interval = Duration.milliseconds(max(200, Int64(ttl.seconds * 1000) / 3))
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return  // the body ended
            }
            do {
                if try await !store.renew(id: id, holder: identity.id, until: now().addingTimeInterval(ttl.seconds)) {
                    let message = "the lock \(name) was removed by someone else while this backup runs: another "
                        + "StackVault may now back up the same stack (was this process paused for longer than "
                        + "LOCK_TTL, or did someone run `docker container prune`?)"
                    logger.error("\(message)")
                    return
                }
            } catch {
                logger.warning("could not renew the lock \(name): \(error)")
            }
        }
    }

    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}
