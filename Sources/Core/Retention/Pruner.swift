public import Logging

/// Applies a `RetentionPolicy` to the archives in a storage target, stack by stack.
///
/// Only objects whose names parse as StackVault archives are considered; anything else is never touched.
public struct Pruner: Sendable {
    public let storage: any StorageBackend
    public let policy: RetentionPolicy
    public let logger: Logger

    public init(storage: any StorageBackend, policy: RetentionPolicy, logger: Logger) {
        self.storage = storage
        self.policy = policy
        self.logger = logger
    }

    /// One stack's verdicts.
    public struct StackDecisions: Sendable, Codable {
        public var stack: String
        public var decisions: [RetentionPolicy.Decision]
        /// Names whose deletion failed, with the reason.
        public var failures: [String: String]
    }

    /// Decides, and unless `dryRun`, deletes what the policy removes. `stacks` limits it (nil = every stack).
    /// Names in `protecting` are always kept (the archive a run has just written).
    public func prune(stacks: Set<String>? = nil, dryRun: Bool, protecting: Set<String> = []) async throws
        -> [StackDecisions]
    {
        let objects = try await storage.list(prefix: "backup-")
        var byStack: [String: [(name: String, time: Date)]] = [:]
        for object in objects {
            guard let parsed = ArchiveName.parse(object.name) else { continue }
            if let stacks, !stacks.contains(parsed.stack) { continue }
            byStack[parsed.stack, default: []].append((object.name, parsed.date))
        }
        var outcomes: [StackDecisions] = []
        for stack in byStack.keys.sorted() {
            let decisions = policy.apply(to: byStack[stack]!).map { decision in
                var decision = decision
                if !decision.keep && protecting.contains(decision.name) {
                    decision.keep = true
                    decision.reasons = ["just written"]
                }
                return decision
            }
            var failures: [String: String] = [:]
            for decision in decisions where !decision.keep {
                if dryRun { continue }
                do {
                    try await storage.delete(decision.name)
                    logger.info("pruned \(decision.name) (stack \(stack))")
                } catch {
                    failures[decision.name] = "\(error)"
                    logger.error("could not delete \(decision.name): \(error)")
                }
            }
            outcomes.append(StackDecisions(stack: stack, decisions: decisions, failures: failures))
        }
        return outcomes
    }
}

import Foundation
