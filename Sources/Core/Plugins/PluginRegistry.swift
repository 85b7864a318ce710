/// A key -> plugin map that refuses duplicate keys, like restic's backend location registry.
public struct PluginRegistry<Plugin>: Sendable where Plugin: Sendable {
    /// What the registry holds, for error messages ("storage backend", "strategy").
    public let kind: String
    private var entries: [(key: String, plugin: Plugin)] = []

    public init(kind: String) {
        self.kind = kind
    }

    public init(kind: String, _ plugins: [(String, Plugin)]) throws {
        self.kind = kind
        for (key, plugin) in plugins { try register(key, plugin) }
    }

    /// Adds `plugin` under `key`; throws if the key is taken.
    public mutating func register(_ key: String, _ plugin: Plugin) throws {
        guard !entries.contains(where: { $0.key == key }) else {
            throw StackVaultError(.duplicatePlugin, "two \(kind)s are registered under the key '\(key)'")
        }
        entries.append((key, plugin))
    }

    public subscript(key: String) -> Plugin? {
        entries.first(where: { $0.key == key })?.plugin
    }

    /// Registered keys, in registration order.
    public var keys: [String] { entries.map(\.key) }
    public var plugins: [Plugin] { entries.map(\.plugin) }
}
