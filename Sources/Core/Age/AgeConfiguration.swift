import Foundation

/// age encryption settings read from the environment.
///
/// - `AGE_RECIPIENTS`: public keys separated by spaces or newlines: `age1...` (X25519) and `ssh-ed25519 AAAA...`
///   (one per line when it carries a comment).
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
    public static func fromEnvironment(_ environment: [String: String]) throws -> AgeConfiguration {
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 }
        }
        var configuration = AgeConfiguration()
        if let text = value("AGE_RECIPIENTS") {
            configuration.recipients += try parseRecipients(text, source: "AGE_RECIPIENTS", onePerLine: false)
        }
        if let path = value("AGE_RECIPIENTS_FILE") {
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
        if let path = value("AGE_IDENTITY_FILE") {
            let text = try EnvironmentSecret.readFile(path, variable: "AGE_IDENTITY_FILE")
            configuration.identities += try parseIdentities(text, source: "AGE_IDENTITY_FILE '\(path)'")
        }
        return configuration
    }

    /// The recipients in `text`. With `onePerLine`, each non-comment line is one recipient (as `age -R`);
    /// otherwise a line may hold several keys separated by spaces: `age1...` and `ssh-ed25519 AAAA...` pairs (a
    /// line that starts with `ssh-` is one SSH key, and may end with a comment).
    public static func parseRecipients(_ text: String, source: String, onePerLine: Bool) throws -> [any AgeRecipient] {
        var recipients: [any AgeRecipient] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let place = "\(source) line \(index + 1)"
            if line.hasPrefix("ssh-") {
                recipients.append(try located(place) { try AgeSSHEd25519Recipient(authorizedKey: line) })
                continue
            }
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard !onePerLine || tokens.count == 1 else {
                throw StackVaultError(.invalidConfiguration, "\(place): put one recipient per line")
            }
            var index = 0
            while index < tokens.count {
                if tokens[index] == "ssh-ed25519", index + 1 < tokens.count {
                    let key = "ssh-ed25519 " + tokens[index + 1]
                    recipients.append(try located(place) { try AgeSSHEd25519Recipient(authorizedKey: key) })
                    index += 2
                } else {
                    let token = tokens[index]
                    recipients.append(try located(place) { try parseRecipient(token) })
                    index += 1
                }
            }
        }
        return recipients
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
