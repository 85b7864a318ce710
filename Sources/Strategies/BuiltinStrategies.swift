public import StackVaultCore

/// Every built-in backup strategy, in one list. A new strategy is one new file plus one line here.
public enum BuiltinStrategies {
    public static let all: [any BackupStrategy] = [
        PgDumpAllStrategy(),
        MariaDBDumpStrategy(),
        VolumePathStrategy(),
    ]

    /// The registry of the built-ins.
    public static func registry() throws -> StrategyRegistry {
        try StrategyRegistry(all)
    }
}
