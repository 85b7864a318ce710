/// Compressors by name, from one explicit list.
public struct CompressorRegistry: Sendable {
    public static let builtins: [any Compressor.Type] = [ZstdCompressor.self]

    private let registry: PluginRegistry<CompressorFactory>

    public init(_ compressors: [any Compressor.Type] = CompressorRegistry.builtins) throws {
        registry = try PluginRegistry(kind: "compressor",
                                      compressors.map { ($0.name, CompressorFactory(type: $0)) })
    }

    public var names: [String] { registry.keys }

    public func compressor(named name: String, settings: CompressionSettings) throws -> any Compressor {
        guard let factory = registry[name] else {
            throw StackVaultError(.invalidConfiguration,
                "unknown compressor '\(name)' (known: \(names.joined(separator: ", ")))")
        }
        return try factory.type.init(settings: settings)
    }
}

struct CompressorFactory: @unchecked Sendable {
    let type: any Compressor.Type
}
