/// Backup strategies by label key. Built from one explicit list (`BuiltinStrategies.all`); duplicates are refused.
public struct StrategyRegistry: Sendable {
    private let registry: PluginRegistry<any BackupStrategy>

    public init(_ strategies: [any BackupStrategy]) throws {
        registry = try PluginRegistry(kind: "backup strategy", strategies.map { ($0.labelKey, $0) })
        var types: Set<String> = []
        for strategy in strategies where !types.insert(strategy.type).inserted {
            throw StackVaultError(.duplicatePlugin, "two backup strategies share the type '\(strategy.type)'")
        }
    }

    public var strategies: [any BackupStrategy] { registry.plugins }
    public var labelKeys: [String] { registry.keys }

    /// The strategy a label key selects: an exact key first, else a key family (`backup.volume-path.`).
    public func strategy(forLabelKey key: String) -> (any BackupStrategy)? {
        if let exact = registry[key], !exact.matchesKeyPrefix { return exact }
        return registry.plugins.first { $0.matches(labelKey: key) }
    }

    /// The strategy whose type name is `type` (`pg_dumpall`).
    public func strategy(forType type: String) -> (any BackupStrategy)? {
        registry.plugins.first { $0.type == type }
    }
}
