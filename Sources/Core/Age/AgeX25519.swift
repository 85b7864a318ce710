/// The native X25519 recipient type of age: an `age1...` public key.
///
/// Source: age-encryption.org/v1, "The X25519 recipient type": stanza `-> X25519 <base64 ephemeral share>`,
/// wrap key = HKDF-SHA-256(ikm = X25519(ephemeral, recipient), salt = share || recipient,
/// info = "age-encryption.org/v1/X25519").
public struct AgeX25519Recipient: AgeRecipient, Equatable, CustomStringConvertible {
    static let label = Array("age-encryption.org/v1/X25519".utf8)
    /// The 32-byte X25519 public key.
    let publicKey: [UInt8]

    /// Parses `age1...` (Bech32, HRP `age`, 32 bytes). Throws a message without the key text in it.
    public init(string: String) throws {
        guard let (hrp, data) = Bech32.decode(string), hrp == "age", data.count == 32 else {
            throw StackVaultError(.invalidConfiguration, "not an age X25519 public key (expected age1 and 58 characters)")
        }
        publicKey = data
    }

    init(publicKey: [UInt8]) {
        self.publicKey = publicKey
    }

    /// The `age1...` form.
    public var description: String { Bech32.encode(hrp: "age", data: publicKey) }

    public func wrap(_ fileKey: AgeFileKey) throws -> [AgeStanza] {
        let ephemeral = try X25519PrivateKey()
        let secret = try ephemeral.sharedSecret(with: publicKey)
        let wrapKey = try HKDFSHA256.deriveKey(
            inputKeyMaterial: secret, salt: ephemeral.publicKey + publicKey, info: Self.label
        )
        return [
            AgeStanza(type: "X25519", arguments: [AgeBase64.encode(ephemeral.publicKey)],
                      body: try AgeKeyWrap.seal(fileKey, wrapKey: wrapKey))
        ]
    }
}

/// The native X25519 identity of age: an `AGE-SECRET-KEY-1...` line as `age-keygen` writes it.
public struct AgeX25519Identity: AgeIdentity, CustomStringConvertible {
    let secretKey: X25519PrivateKey

    /// Parses `AGE-SECRET-KEY-1...` (Bech32, HRP `age-secret-key-`, 32 bytes). Errors never contain the key.
    public init(string: String) throws {
        guard let (hrp, data) = Bech32.decode(string), hrp == "age-secret-key-", data.count == 32 else {
            throw StackVaultError(.invalidConfiguration, "not an age secret key (expected AGE-SECRET-KEY-1...)")
        }
        secretKey = try X25519PrivateKey(rawRepresentation: data)
    }

    private init(secretKey: X25519PrivateKey) {
        self.secretKey = secretKey
    }

    /// A new random identity (as `age-keygen` makes).
    public static func generate() throws -> AgeX25519Identity {
        AgeX25519Identity(secretKey: try X25519PrivateKey())
    }

    /// The `AGE-SECRET-KEY-1...` form. Secret: never log it.
    public var secretString: String {
        Bech32.encode(hrp: "age-secret-key-", data: secretKey.rawRepresentation).uppercased()
    }

    /// The matching public key.
    public var recipient: AgeX25519Recipient { AgeX25519Recipient(publicKey: secretKey.publicKey) }

    public var description: String { "age X25519 identity for \(recipient)" }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> AgeFileKey? {
        for stanza in stanzas where stanza.type == "X25519" {
            guard stanza.arguments.count == 1, let share = AgeBase64.decode(stanza.arguments[0]), share.count == 32 else {
                throw AgeError(.headerFormat, "an X25519 stanza needs exactly one argument, a 32-byte share")
            }
            try AgeKeyWrap.checkBodyLength(stanza.body, type: "X25519")
            guard let secret = try? secretKey.sharedSecret(with: share) else {
                throw AgeError(.headerFormat, "an X25519 stanza has a low-order share (all-zero shared secret)")
            }
            let wrapKey = try HKDFSHA256.deriveKey(
                inputKeyMaterial: secret, salt: share + secretKey.publicKey, info: AgeX25519Recipient.label
            )
            if let fileKey = try AgeKeyWrap.open(stanza.body, wrapKey: wrapKey) { return fileKey }
        }
        return nil
    }
}
