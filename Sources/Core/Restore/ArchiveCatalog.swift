public import Foundation

/// One archive in a storage target, as `list` shows it.
public struct ArchiveListing: Sendable, Codable, Equatable {
    public var name: String
    public var stack: String
    /// The backup's start time, from the name (UTC).
    public var date: Date
    public var sizeBytes: Int64

    public init(name: String, stack: String, date: Date, sizeBytes: Int64) {
        self.name = name
        self.stack = stack
        self.date = date
        self.sizeBytes = sizeBytes
    }
}

/// The archives of a storage target: which objects are StackVault archives, newest first, and which is the
/// latest of a stack. Only names that parse as `backup-{stack}-{YYYYMMDD-HHMMSS}-{uuid}.tar.zst` count; anything
/// else in the target (temporary files, other tools' objects) is ignored.
public enum ArchiveCatalog {
    /// The archives among `objects`, of `stack` only when given, newest first (ties: by name, descending, so the
    /// order is stable).
    public static func listings(_ objects: [StoredObject], stack: String? = nil) -> [ArchiveListing] {
        objects.compactMap { object -> ArchiveListing? in
            guard let parsed = ArchiveName.parse(object.name) else { return nil }
            if let stack, parsed.stack != stack { return nil }
            return ArchiveListing(name: object.name, stack: parsed.stack, date: parsed.date,
                                  sizeBytes: object.sizeBytes)
        }.sorted { ($0.date, $0.name) > ($1.date, $1.name) }
    }

    /// The newest archive of `stack` (of any stack when nil), or an error that says what the target holds.
    public static func latest(_ objects: [StoredObject], stack: String?, target: String) throws -> ArchiveListing {
        let all = listings(objects)
        if let newest = all.first(where: { stack == nil || $0.stack == stack }) { return newest }
        let stacks = Array(Set(all.map(\.stack))).sorted()
        if let stack {
            throw StackVaultError(
                .invalidConfiguration,
                "\(target) holds no archive of the stack '\(stack)'"
                    + (stacks.isEmpty ? " (it holds no archives at all)" : " (stacks with archives: "
                        + stacks.joined(separator: ", ") + ")"))
        }
        throw StackVaultError(.invalidConfiguration, "\(target) holds no archives")
    }

    /// Lists the target's archives (`list(prefix: "backup-")`).
    public static func load(from storage: any StorageBackend, stack: String? = nil) async throws -> [ArchiveListing] {
        listings(try await storage.list(prefix: stack.map { "backup-\($0)-" } ?? "backup-"), stack: stack)
    }

    /// The archive named `name`, or the newest of `stack`: the selection `verify` and `restore` share.
    public static func select(
        name: String?,
        latest: Bool,
        stack: String?,
        storage: any StorageBackend
    ) async throws -> String {
        switch (name, latest) {
        case (.some(let name), false):
            return name
        case (.none, true):
            // Every archive, not only the stack's: the error for a missing stack lists the stacks there are.
            return try self.latest(try await storage.list(prefix: "backup-"), stack: stack,
                                   target: storage.description).name
        case (.some, true):
            throw StackVaultError(.invalidConfiguration, "name an archive or use --latest, not both")
        case (.none, false):
            throw StackVaultError(.invalidConfiguration, "name an archive (see `stackvault list`) or use --latest")
        }
    }
}
