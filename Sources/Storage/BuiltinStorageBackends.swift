public import StackVaultCore

/// Every built-in storage backend, by URL scheme, in one list. A new backend is one new file plus one line here.
public enum BuiltinStorageBackends {
    public static let all: [StorageBackendFactory] = [
        LocalDirectoryBackend.factory,
        S3Backend.factory,
    ]

    /// The registry the commands use: every backend wrapped in a `RetryingBackend` (as restic's `wrapBackend`
    /// wraps every backend it opens), so retries live in one place.
    public static func registry() throws -> StorageRegistry {
        try StorageRegistry(all.map { $0.retrying() })
    }
}
