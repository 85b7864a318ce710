import Foundation

/// Secrets given as `NAME` or as a file named by `NAME_FILE` (the Docker secrets convention).
public enum EnvironmentSecret {
    /// `NAME`, or the content of the file named by `NAME_FILE`, trimmed of surrounding whitespace and newlines;
    /// nil when neither is set (or both are empty). Throws when both are set, when the value is blank, or when
    /// the file cannot be read; messages name the variable and the path, never the value.
    public static func value(_ name: String, environment: [String: String]) throws -> String? {
        let direct = environment[name].flatMap { $0.isEmpty ? nil : $0 }
        let file = environment[name + "_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        switch (direct, file) {
        case (.some, .some):
            throw StackVaultError(.invalidConfiguration, "both \(name) and \(name)_FILE are set: set only one")
        case (let value?, nil):
            let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else {
                throw StackVaultError(.invalidConfiguration, "\(name) is set but blank")
            }
            return trimmed
        case (nil, let path?):
            let value = try readFile(path, variable: name + "_FILE").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else {
                throw StackVaultError(.missingCredentials, "\(name)_FILE='\(path)' is empty")
            }
            return value
        case (nil, nil):
            return nil
        }
    }

    /// The text of the file at `path`, which the variable `variable` names; the error names both.
    public static func readFile(_ path: String, variable: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "cannot be read"
            throw StackVaultError(.missingCredentials, "\(variable)='\(path)' cannot be read: \(reason)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
