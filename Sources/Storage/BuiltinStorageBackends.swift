public import StackVaultCore

/// Every built-in storage backend, by URL scheme, in one list. A new backend is one new file plus one line here.
public enum BuiltinStorageBackends {
    public static let all: [StorageBackendFactory] = [
        LocalDirectoryBackend.factory,
        S3Backend.factory,
    ]

    public static func registry() throws -> StorageRegistry {
        try StorageRegistry(all)
    }
}
