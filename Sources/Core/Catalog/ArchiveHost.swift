import Foundation

/// The host an archive belongs to: the name of its folder in the target (`<target>/<host>/backup-...`).
///
/// This host's name is `STACKVAULT_HOST` when set, else the Docker engine's own name (`GET /info` `Name`, the
/// machine's host name: stable when the StackVault container is recreated, unlike the container's host name).
public enum ArchiveHost {
    /// The environment variable that names this host.
    public static let variable = "STACKVAULT_HOST"

    /// `name` if it can be a folder of a target: 1 to 253 letters, digits, `.`, `_`, `-`, not starting with `.`
    /// or `-`. Throws `invalidConfiguration` naming `source` (where the name came from) and the rule.
    @discardableResult
    public static func validate(_ name: String, source: String) throws -> String {
        guard isValid(name) else {
            throw StackVaultError(.invalidConfiguration,
                "\(source) '\(name)' cannot name a host: use 1 to 253 letters, digits, '.', '_' or '-', not starting "
                    + "with '.' or '-' (it becomes the folder of this host's archives in the target)")
        }
        return name
    }

    /// True when `name` follows the rule of `validate`.
    public static func isValid(_ name: String) -> Bool {
        guard (1...253).contains(name.utf8.count), let first = name.unicodeScalars.first, first != ".", first != "-"
        else { return false }
        return name.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                || scalar == "." || scalar == "_" || scalar == "-")
        }
    }

    /// This host's name: `STACKVAULT_HOST` when set and not empty, else what `engineName` returns (the Docker
    /// engine's `GET /info` `Name`). Throws when neither gives a valid name, saying to set `STACKVAULT_HOST`.
    public static func resolve(
        environment: [String: String],
        engineName: () async throws -> String
    ) async throws -> String {
        if let configured = environment[variable]?.trimmingCharacters(in: .whitespaces), !configured.isEmpty {
            return try validate(configured, source: variable)
        }
        let name: String
        do {
            name = try await engineName()
        } catch {
            throw StackVaultError(.invalidConfiguration,
                "cannot tell this host's name: \(variable) is not set and the Docker engine's name could not be "
                    + "read (\(error)); set \(variable) (or --host) to name the folder of this host's archives")
        }
        return try validate(name, source: "the Docker engine's name (GET /info) is")
    }
}
