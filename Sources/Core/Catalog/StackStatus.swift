public import Foundation

/// One host's stack as the target shows it: what `stackvault status` prints, from the archives alone.
public struct StackStatus: Sendable, Codable, Equatable {
    /// The host folder; nil for archives from before host folders.
    public var host: String?
    public var stack: String
    /// Archives of the stack in the host's folder.
    public var archives: Int
    /// Their bytes, summed.
    public var totalBytes: Int64
    /// The newest archive: its name, its start time (UTC, from the name), its size, and its age in seconds at the
    /// time `summarize` was given.
    public var lastArchive: String
    public var lastTime: Date
    public var lastSizeBytes: Int64
    public var ageSeconds: Double
    /// The daemon's last restore drill of the stack (archive, when, passed), from its state file when it is
    /// readable here (inside the sidecar) and of this host; nil otherwise. Drills are not recorded in the target.
    public var lastDrill: DrillRecord?

    public init(host: String?, stack: String, archives: Int, totalBytes: Int64, lastArchive: String, lastTime: Date,
                lastSizeBytes: Int64, ageSeconds: Double, lastDrill: DrillRecord? = nil) {
        self.host = host
        self.stack = stack
        self.archives = archives
        self.totalBytes = totalBytes
        self.lastArchive = lastArchive
        self.lastTime = lastTime
        self.lastSizeBytes = lastSizeBytes
        self.ageSeconds = ageSeconds
        self.lastDrill = lastDrill
    }

    /// Adds the drill records of `state` (a daemon's) to the statuses of its host.
    public static func adding(drillsOf state: DaemonState?, to statuses: [StackStatus]) -> [StackStatus] {
        guard let state, let drills = state.drills else { return statuses }
        return statuses.map { status in
            var status = status
            if status.host == state.host { status.lastDrill = drills[status.stack] }
            return status
        }
    }

    /// One status per host and stack of `archives` (any order), sorted by host (no host last), then stack.
    public static func summarize(_ archives: [HostedArchive], now: Date) -> [StackStatus] {
        struct Key: Hashable { var host: String?; var stack: String }
        let groups = Dictionary(grouping: archives) { Key(host: $0.host, stack: $0.listing.stack) }
        return groups.map { key, members in
            let newest = members.max { ($0.listing.date, $0.listing.name) < ($1.listing.date, $1.listing.name) }!
            return StackStatus(
                host: key.host, stack: key.stack, archives: members.count,
                totalBytes: members.reduce(0) { $0 + $1.listing.sizeBytes }, lastArchive: newest.listing.name,
                lastTime: newest.listing.date, lastSizeBytes: newest.listing.sizeBytes,
                ageSeconds: now.timeIntervalSince(newest.listing.date))
        }.sorted { a, b in
            if a.host != b.host {
                guard let left = a.host else { return false }
                guard let right = b.host else { return true }
                return left < right
            }
            return a.stack < b.stack
        }
    }

    /// An age for people: `45s`, `12m`, `5h 3m`, `3d 4h`.
    public static func describeAge(_ seconds: Double) -> String {
        let total = max(0, Int(seconds))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return "\(total / 60)m" }
        if total < 86_400 { return "\(total / 3600)h \(total % 3600 / 60)m" }
        return "\(total / 86_400)d \(total % 86_400 / 3600)h"
    }
}
