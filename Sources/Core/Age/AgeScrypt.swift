/// The scrypt recipient type of age: a passphrase.
///
/// Source: age-encryption.org/v1, "The scrypt recipient type": stanza `-> scrypt <base64 16-byte salt> <log2 N>`,
/// wrap key = scrypt(N, r = 8, p = 1, dkLen = 32, S = "age-encryption.org/v1/scrypt" || salt, P = passphrase).
/// A header with an scrypt stanza must hold no other stanza.
public struct AgeScryptRecipient: AgeRecipient, CustomStringConvertible {
    static let label = Array("age-encryption.org/v1/scrypt".utf8)
    /// log2 of scrypt's N for new files: 18, as `age -p` uses (256 MiB and about a second, once per archive).
    public static let defaultWorkFactor = 18

    let passphrase: [UInt8]
    let workFactor: Int

    public init(passphrase: String, workFactor: Int = defaultWorkFactor) {
        self.passphrase = Array(passphrase.utf8)
        self.workFactor = workFactor
    }

    public var mustBeAlone: Bool { true }
    public var description: String { "age scrypt recipient (passphrase redacted)" }

    public func wrap(_ fileKey: AgeFileKey) throws -> [AgeStanza] {
        let salt = SecureRandom.bytes(16)
        let wrapKey = try Scrypt.deriveKey(password: passphrase, salt: Self.label + salt, logN: workFactor)
        return [
            AgeStanza(type: "scrypt", arguments: [AgeBase64.encode(salt), String(workFactor)],
                      body: try AgeKeyWrap.seal(fileKey, wrapKey: wrapKey))
        ]
    }
}

/// The scrypt identity of age: the passphrase again, with an upper limit on the work factor it will pay.
public struct AgeScryptIdentity: AgeIdentity, CustomStringConvertible {
    /// Highest log2 N accepted, as age's own default (22: 4 GiB of memory would be needed beyond it).
    public static let defaultMaximumWorkFactor = 22

    let passphrase: [UInt8]
    let maximumWorkFactor: Int

    public init(passphrase: String, maximumWorkFactor: Int = defaultMaximumWorkFactor) {
        self.passphrase = Array(passphrase.utf8)
        self.maximumWorkFactor = maximumWorkFactor
    }

    public var description: String { "age scrypt identity (passphrase redacted)" }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> AgeFileKey? {
        for stanza in stanzas where stanza.type == "scrypt" {
            guard stanza.arguments.count == 2, let salt = AgeBase64.decode(stanza.arguments[0]), salt.count == 16 else {
                throw AgeError(.headerFormat, "an scrypt stanza needs two arguments, a 16-byte salt and a work factor")
            }
            let factorText = stanza.arguments[1]
            guard let first = factorText.utf8.first, first != UInt8(ascii: "0"),
                factorText.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                let workFactor = Int(factorText), workFactor > 0
            else {
                throw AgeError(.headerFormat, "an scrypt stanza's work factor is not a plain decimal number")
            }
            guard workFactor <= maximumWorkFactor else {
                throw AgeError(
                    .headerFormat,
                    "an scrypt stanza asks for work factor \(workFactor), above the limit of \(maximumWorkFactor)"
                )
            }
            try AgeKeyWrap.checkBodyLength(stanza.body, type: "scrypt")
            let wrapKey = try Scrypt.deriveKey(password: passphrase, salt: AgeScryptRecipient.label + salt, logN: workFactor)
            if let fileKey = try AgeKeyWrap.open(stanza.body, wrapKey: wrapKey) { return fileKey }
        }
        return nil
    }
}
