/// age's ssh-ed25519 recipient type: an OpenSSH `ssh-ed25519` public key.
///
/// Source: the age README ("SSH keys") and its reference implementation's `agessh` package, which define the
/// stanza `-> ssh-ed25519 <base64 SHA-256(ssh key blob)[:4]> <base64 ephemeral share>` with
/// tweak = HKDF-SHA-256(ikm = empty, salt = ssh key blob, info = "age-encryption.org/v1/ssh-ed25519"),
/// shared secret = X25519(tweak, X25519(ephemeral, u)) where u is the Ed25519 key mapped to X25519, and
/// wrap key = HKDF-SHA-256(ikm = shared secret, salt = share || u, info = the same label).
public struct AgeSSHEd25519Recipient: AgeRecipient, CustomStringConvertible {
    static let label = Array("age-encryption.org/v1/ssh-ed25519".utf8)
    let wire: [UInt8]
    let montgomery: [UInt8]

    /// Parses an `authorized_keys`-style line, `ssh-ed25519 AAAA... [comment]`.
    public init(authorizedKey line: String) throws {
        let (wire, key) = try OpenSSHKey.parseEd25519PublicKey(line)
        guard let montgomery = Ed25519ToX25519.publicKey(key) else {
            throw StackVaultError(.invalidConfiguration, "the ssh-ed25519 key is not a valid Ed25519 point")
        }
        self.wire = wire
        self.montgomery = montgomery
    }

    init(wire: [UInt8], montgomery: [UInt8]) {
        self.wire = wire
        self.montgomery = montgomery
    }

    static func tag(_ wire: [UInt8]) -> String { AgeBase64.encode(Array(SHA256.hash(wire).bytes.prefix(4))) }

    static func tweak(_ wire: [UInt8]) throws -> X25519PrivateKey {
        try X25519PrivateKey(
            rawRepresentation: HKDFSHA256.deriveKey(inputKeyMaterial: [], salt: wire, info: label)
        )
    }

    public var description: String { "ssh-ed25519 recipient \(Self.tag(wire))" }

    public func wrap(_ fileKey: AgeFileKey) throws -> [AgeStanza] {
        let ephemeral = try X25519PrivateKey()
        let secret = try Self.tweak(wire).sharedSecret(with: try ephemeral.sharedSecret(with: montgomery))
        let wrapKey = try HKDFSHA256.deriveKey(
            inputKeyMaterial: secret, salt: ephemeral.publicKey + montgomery, info: Self.label
        )
        return [
            AgeStanza(type: "ssh-ed25519", arguments: [Self.tag(wire), AgeBase64.encode(ephemeral.publicKey)],
                      body: try AgeKeyWrap.seal(fileKey, wrapKey: wrapKey))
        ]
    }
}

/// age's ssh-ed25519 identity: an unencrypted OpenSSH Ed25519 private key. Its X25519 scalar is the first half of
/// SHA-512(seed) (RFC 8032 section 5.1.5), clamped by X25519 itself.
public struct AgeSSHEd25519Identity: AgeIdentity, CustomStringConvertible {
    let wire: [UInt8]
    let secretKey: X25519PrivateKey

    /// Parses the text of an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    public init(openSSHPrivateKey pem: String) throws {
        let (seed, wire) = try OpenSSHKey.parseEd25519PrivateKey(pem)
        self.wire = wire
        secretKey = try X25519PrivateKey(rawRepresentation: Array(SHA512.hash(seed).prefix(32)))
    }

    /// The matching public key.
    public var recipient: AgeSSHEd25519Recipient {
        AgeSSHEd25519Recipient(wire: wire, montgomery: secretKey.publicKey)
    }

    public var description: String { "ssh-ed25519 identity \(AgeSSHEd25519Recipient.tag(wire))" }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> AgeFileKey? {
        let tag = AgeSSHEd25519Recipient.tag(wire)
        for stanza in stanzas where stanza.type == "ssh-ed25519" {
            guard stanza.arguments.count == 2, let share = AgeBase64.decode(stanza.arguments[1]), share.count == 32 else {
                throw AgeError(.headerFormat, "an ssh-ed25519 stanza needs two arguments, a tag and a 32-byte share")
            }
            guard stanza.arguments[0] == tag else { continue }
            try AgeKeyWrap.checkBodyLength(stanza.body, type: "ssh-ed25519")
            guard let first = try? secretKey.sharedSecret(with: share) else {
                throw AgeError(.headerFormat, "an ssh-ed25519 stanza has a low-order share")
            }
            let secret = try AgeSSHEd25519Recipient.tweak(wire).sharedSecret(with: first)
            let wrapKey = try HKDFSHA256.deriveKey(
                inputKeyMaterial: secret, salt: share + secretKey.publicKey, info: AgeSSHEd25519Recipient.label
            )
            if let fileKey = try AgeKeyWrap.open(stanza.body, wrapKey: wrapKey) { return fileKey }
        }
        return nil
    }
}
