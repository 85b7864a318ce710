/// Typed settings read from environment variables (or the command-line options that stand in for them).
///
/// A blank or absent value is "not set" (nil): the caller's default applies. Any other value must be valid; a value
/// that is not is an `invalidConfiguration` error (the commands exit with 2) naming the variable, the value and
/// what is accepted, never silently replaced by the default.
public enum EnvironmentValue {
    /// The whole number in `value`, nil when it is nil or blank.
    ///
    /// - Parameters:
    ///   - name: the variable or option, for the message (`STOP_TIMEOUT`, `--level`).
    ///   - range: the accepted values; an upper bound of `Int.max` means "no limit".
    ///   - unit: what the number counts, for the message (`seconds`), or empty.
    /// - Throws: `StackVaultError.invalidConfiguration` for anything but a whole number in `range`.
    public static func integer(_ name: String, _ value: String?, range: ClosedRange<Int>, unit: String = "") throws
        -> Int?
    {
        guard let text = value?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        guard let number = Int(text), range.contains(number) else {
            let counted = unit.isEmpty ? "a whole number" : "a whole number of \(unit)"
            let bounds = range.upperBound == Int.max ? "\(range.lowerBound) or more"
                : "from \(range.lowerBound) to \(range.upperBound)"
            throw StackVaultError(.invalidConfiguration, "\(name)='\(value ?? "")' is not valid: use \(counted), "
                + bounds)
        }
        return number
    }

    /// The one of `choices` that `value` names (case-insensitive, returned as written in `choices`), nil when
    /// `value` is nil or blank.
    ///
    /// - Throws: `StackVaultError.invalidConfiguration` naming `name` and every choice for any other value.
    public static func choice(_ name: String, _ value: String?, from choices: [String]) throws -> String? {
        guard let text = value?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        guard let match = choices.first(where: { $0.lowercased() == text.lowercased() }) else {
            throw StackVaultError(.invalidConfiguration, "\(name)='\(value ?? "")' is not valid: use one of "
                + choices.joined(separator: ", "))
        }
        return match
    }
}
