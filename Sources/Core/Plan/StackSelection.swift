/// Which stacks a command works on: the `--stack` options, else the variable `STACKS`, else every labelled stack.
///
/// `stackvault daemon`, `backup` and `plan` resolve it the same way, so `docker exec <sidecar> stackvault plan`
/// shows the daemon's selection when the sidecar sets `STACKS`.
public struct StackSelection: Sendable, Equatable {
    /// Where the selection came from.
    public enum Source: String, Sendable, Equatable {
        /// Nothing selected: every labelled stack.
        case all
        /// `--stack NAME` on the command line (wins over `STACKS`).
        case option = "--stack"
        /// The variable `STACKS`.
        case variable = "STACKS"
        /// The running daemon's state file (`DaemonState.selectedStacks`): what `plan` shows beside a daemon started
        /// with `--stack` when neither `--stack` nor `STACKS` is given.
        case daemon = "the running daemon"
    }

    /// The variable that holds the selection.
    public static let variable = "STACKS"

    /// The stacks by name, in the order given, each once; empty means every labelled stack.
    public var stacks: [String]
    public var source: Source

    public init(stacks: [String], source: Source) {
        self.stacks = stacks
        self.source = source
    }

    /// `options` when any, else `STACKS` from `environment`, else every stack.
    ///
    /// - Throws: `StackVaultError.invalidConfiguration` when `STACKS` holds something that is not a stack name.
    public static func resolve(options: [String], environment: [String: String]) throws -> StackSelection {
        if !options.isEmpty { return StackSelection(stacks: unique(options), source: .option) }
        let names = try parse(environment[variable])
        return names.isEmpty ? StackSelection(stacks: [], source: .all)
            : StackSelection(stacks: names, source: .variable)
    }

    /// The names in a `STACKS` value: separated by commas and/or white space, blanks dropped, each name once.
    ///
    /// A name is what Compose allows for a project (letters, digits, `_`, `-`) plus `.`, which standalone container
    /// names may hold (a stack of its own, named after the container).
    /// - Throws: `StackVaultError.invalidConfiguration` naming the first name that is not one.
    public static func parse(_ value: String?) throws -> [String] {
        let names = (value ?? "").split { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }.map(String.init)
        for name in names where !isStackName(name) {
            throw StackVaultError(.invalidConfiguration, "\(variable)='\(value ?? "")' is not valid: '\(name)' is not "
                + "a stack name (letters, digits, '.', '_' and '-'); separate names with commas or spaces, as in "
                + "\(variable)=app,shop")
        }
        return unique(names)
    }

    /// True when the selection is every labelled stack.
    public var isAll: Bool { stacks.isEmpty }

    /// True when `stack` is selected.
    public func contains(_ stack: String) -> Bool { stacks.isEmpty || stacks.contains(stack) }

    /// For messages: `every labelled stack`, or `stacks app, shop (from STACKS)`.
    public var description: String {
        isAll ? "every labelled stack" : "stacks \(stacks.joined(separator: ", ")) (from \(source.rawValue))"
    }

    private static func isStackName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCIIAlphanumeric else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || "._-".unicodeScalars.contains($0) }
    }

    private static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIIAlphanumeric: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self)
    }
}
