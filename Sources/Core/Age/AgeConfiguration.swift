import Foundation

/// age encryption settings read from the environment.
///
/// - `AGE_RECIPIENTS`: public keys separated by spaces or newlines: `age1...` (X25519) and `ssh-ed25519 AAAA...`
///   with an optional comment; `#` starts a comment to the end of the line (see `parseRecipients`).
/// - `AGE_RECIPIENTS_FILE`: a file with one public key per line, `#` comments and blank lines ignored, as
///   `age -R` reads it.
/// - `AGE_PASSPHRASE` / `AGE_PASSPHRASE_FILE`: a passphrase (scrypt); age allows no other recipient beside it.
///   It also serves to read archives.
/// - `AGE_IDENTITY_FILE`: the key to read archives: `AGE-SECRET-KEY-1...` lines as `age-keygen` writes them, or
///   an unencrypted OpenSSH Ed25519 private key.
///
/// Errors name the variable, file and line at fault, and never contain a key or the passphrase.
public struct AgeConfiguration: Sendable {
    /// Whom new archives are encrypted to; empty means archives are not encrypted.
    public var recipients: [any AgeRecipient]
    /// Keys that open encrypted archives; empty means encrypted archives can only be checked structurally.
    public var identities: [any AgeIdentity]

    public init(recipients: [any AgeRecipient] = [], identities: [any AgeIdentity] = []) {
        self.recipients = recipients
        self.identities = identities
    }

    /// True when new archives are encrypted.
    public var encrypts: Bool { !recipients.isEmpty }

    /// Reads the `AGE_*` variables of `environment`.
    ///
    /// A variable that is set but empty (or only white space) is an error, not "unset": in a Compose file an unset
    /// `${AGE_PUB}` becomes an empty value, and treating it as unset would silently write unencrypted archives.
    public static func fromEnvironment(_ environment: [String: String]) throws -> AgeConfiguration {
        let expected = [
            "AGE_RECIPIENTS": "public keys", "AGE_RECIPIENTS_FILE": "the path of a recipients file",
            "AGE_PASSPHRASE": "a passphrase", "AGE_PASSPHRASE_FILE": "the path of a passphrase file",
            "AGE_IDENTITY_FILE": "the path of a key file",
        ]
        for name in expected.keys.sorted() {
            if let raw = environment[name], raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw StackVaultError(
                    .invalidConfiguration,
                    "\(name) is set but empty: give it \(expected[name]!), or remove the variable (in Compose, an "
                        + "unset ${VAR} becomes an empty value; ${VAR:?} makes it an error instead)")
            }
        }
        var configuration = AgeConfiguration()
        if let text = environment["AGE_RECIPIENTS"] {
            let recipients = try parseRecipients(text, source: "AGE_RECIPIENTS", onePerLine: false)
            guard !recipients.isEmpty else {
                throw StackVaultError(.invalidConfiguration, "AGE_RECIPIENTS lists no recipient (only comments)")
            }
            configuration.recipients += recipients
        }
        if let path = environment["AGE_RECIPIENTS_FILE"] {
            let text = try EnvironmentSecret.readFile(path, variable: "AGE_RECIPIENTS_FILE")
            let recipients = try parseRecipients(text, source: "AGE_RECIPIENTS_FILE '\(path)'", onePerLine: true)
            guard !recipients.isEmpty else {
                throw StackVaultError(.invalidConfiguration, "AGE_RECIPIENTS_FILE '\(path)' lists no recipient")
            }
            configuration.recipients += recipients
        }
        if let passphrase = try EnvironmentSecret.value("AGE_PASSPHRASE", environment: environment) {
            guard configuration.recipients.isEmpty else {
                throw StackVaultError(
                    .invalidConfiguration,
                    "AGE_PASSPHRASE(_FILE) cannot be combined with AGE_RECIPIENTS(_FILE): an age file encrypted to a "
                        + "passphrase has no other recipient. Set one or the other"
                )
            }
            configuration.recipients = [AgeScryptRecipient(passphrase: passphrase)]
            configuration.identities.append(AgeScryptIdentity(passphrase: passphrase))
        }
        if let path = environment["AGE_IDENTITY_FILE"] {
            let text = try EnvironmentSecret.readFile(path, variable: "AGE_IDENTITY_FILE")
            configuration.identities += try parseIdentities(text, source: "AGE_IDENTITY_FILE '\(path)'")
        }
        return configuration
    }

    /// The recipients in `text`. `#` starts a comment, to the end of the line (keys never contain `#`).
    ///
    /// With `onePerLine` (a recipients file, as `age -R` reads it), each line is one recipient; an `ssh-` line is
    /// one SSH key and may end with its comment. Otherwise a line may hold several keys separated by spaces:
    /// `age1...` and `ssh-ed25519 AAAA... [comment]`. The words after an SSH key are its comment up to the next word
    /// that starts with `age` or `ssh-` (any case), which is read as the next key; so a key is never mistaken for
    /// a comment and silently left out, and a comment word that starts so is an error (put that SSH key on a line
    /// of its own, or its comment after `#`).
    public static func parseRecipients(_ text: String, source: String, onePerLine: Bool) throws -> [any AgeRecipient] {
        var recipients: [any AgeRecipient] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.prefix { $0 != "#" }.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            let place = "\(source) line \(index + 1)"
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if onePerLine {
                if line.hasPrefix("ssh-") {
                    recipients.append(try located(place) { try AgeSSHEd25519Recipient(authorizedKey: line) })
                    continue
                }
                guard tokens.count == 1 else {
                    throw StackVaultError(.invalidConfiguration, "\(place): put one recipient per line")
                }
            }
            var index = 0
            while index < tokens.count {
                let token = tokens[index]
                if isSSHKeyType(token) {
                    let key = tokens[index...].prefix(2).joined(separator: " ")
                    recipients.append(try located(place) { try AgeSSHEd25519Recipient(authorizedKey: key) })
                    index += 2
                    while index < tokens.count, !startsLikeAKey(tokens[index]) { index += 1 }
                } else {
                    recipients.append(try located(place) { try parseRecipient(token) })
                    index += 1
                }
            }
        }
        return recipients
    }

    /// `ssh-ed25519`, `ssh-rsa`, `sk-ssh-ed25519@openssh.com`, ...: the first word of an SSH public key line.
    private static func isSSHKeyType(_ token: String) -> Bool {
        token.hasPrefix("ssh-") || token.hasPrefix("sk-ssh-") || token.hasPrefix("ecdsa-sha2-")
    }

    /// A word read as a key, never as a comment: `age1...`, `AGE-SECRET-KEY-...` (refused), an SSH key type.
    private static func startsLikeAKey(_ token: String) -> Bool {
        token.lowercased().hasPrefix("age") || isSSHKeyType(token.lowercased())
    }

    private static func parseRecipient(_ token: String) throws -> any AgeRecipient {
        if token.uppercased().hasPrefix("AGE-SECRET-KEY-") {
            throw StackVaultError(
                .invalidConfiguration,
                "this is a secret key, not a recipient: give its public key (age-keygen -y) and keep the secret key "
                    + "off this host"
            )
        }
        if token.hasPrefix("age1pq1") {
            throw StackVaultError(.invalidConfiguration, "post-quantum (age1pq1...) recipients are not supported yet")
        }
        if token.hasPrefix("age1"), let (hrp, _) = Bech32.decode(token), hrp != "age" {
            throw StackVaultError(.invalidConfiguration, "age plugin recipients (\(hrp)1...) are not supported")
        }
        return try AgeX25519Recipient(string: token)
    }

    /// The identities in the text of an identity file: an OpenSSH private key, or `AGE-SECRET-KEY-1...` lines.
    public static func parseIdentities(_ text: String, source: String) throws -> [any AgeIdentity] {
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return [try located(source) { try AgeSSHEd25519Identity(openSSHPrivateKey: text) }]
        }
        if text.contains("-----BEGIN") {
            throw StackVaultError(
                .invalidConfiguration,
                "\(source): only OpenSSH Ed25519 private keys and age identities (AGE-SECRET-KEY-1...) are supported"
            )
        }
        var identities: [any AgeIdentity] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let place = "\(source) line \(index + 1)"
            if line.hasPrefix("AGE-SECRET-KEY-PQ-") || line.hasPrefix("AGE-PLUGIN-") {
                throw StackVaultError(.invalidConfiguration, "\(place): post-quantum and plugin identities are not supported")
            }
            identities.append(try located(place) { try AgeX25519Identity(string: line) })
        }
        guard !identities.isEmpty else {
            throw StackVaultError(.invalidConfiguration, "\(source) holds no identity (AGE-SECRET-KEY-1... line)")
        }
        return identities
    }

    /// Runs `body`, prefixing the message of a configuration error with `place`.
    private static func located<T>(_ place: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var error as StackVaultError {
            error.message = "\(place): \(error.message)"
            throw error
        }
    }
}
