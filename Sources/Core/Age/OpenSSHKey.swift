import Foundation

/// The parts of OpenSSH's key formats that age's ssh-ed25519 type needs.
///
/// Sources: RFC 4253 section 6.6 and RFC 8709 (the public key blob `string "ssh-ed25519" || string key`), the
/// `authorized_keys` line of sshd(8), and OpenSSH's PROTOCOL.key (the `openssh-key-v1` private key container).
/// Only unencrypted Ed25519 private keys are read; errors never quote key material.
enum OpenSSHKey {
    /// The Ed25519 public key in `line` (`ssh-ed25519 <base64 blob> [comment]`): its wire blob and 32-byte key.
    static func parseEd25519PublicKey(_ line: String) throws -> (wire: [UInt8], key: [UInt8]) {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else {
            throw StackVaultError(.invalidConfiguration, "an SSH public key line is `ssh-ed25519 AAAA... [comment]`")
        }
        guard fields[0] == "ssh-ed25519" else {
            throw StackVaultError(
                .invalidConfiguration,
                "SSH key type \(fields[0]) is not supported; use an ssh-ed25519 key or an age1... key"
            )
        }
        guard let data = Data(base64Encoded: String(fields[1])) else {
            throw StackVaultError(.invalidConfiguration, "the ssh-ed25519 key's base64 is damaged")
        }
        let wire = [UInt8](data)
        var reader = WireReader(wire)
        guard let type = reader.string(), type == Array("ssh-ed25519".utf8), let key = reader.string(), key.count == 32,
            reader.isAtEnd
        else {
            throw StackVaultError(.invalidConfiguration, "the ssh-ed25519 key's blob is not an Ed25519 public key")
        }
        return (wire, key)
    }

    /// The 32-byte seed and the public key blob of the unencrypted Ed25519 key in `pem`
    /// (`-----BEGIN OPENSSH PRIVATE KEY-----` ... `-----END OPENSSH PRIVATE KEY-----`).
    static func parseEd25519PrivateKey(_ pem: String) throws -> (seed: [UInt8], publicWire: [UInt8]) {
        func invalid(_ what: String) -> StackVaultError {
            StackVaultError(.invalidConfiguration, "the OpenSSH private key \(what)")
        }
        let lines = pem.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(of: "-----BEGIN OPENSSH PRIVATE KEY-----"),
            let end = lines.firstIndex(of: "-----END OPENSSH PRIVATE KEY-----"), begin < end
        else { throw invalid("has no BEGIN/END OPENSSH PRIVATE KEY lines") }
        guard let data = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else {
            throw invalid("has damaged base64")
        }
        var reader = WireReader([UInt8](data))
        guard reader.bytes(15) == Array("openssh-key-v1\0".utf8) else { throw invalid("is not in openssh-key-v1 format") }
        guard let cipher = reader.string(), let kdf = reader.string(), reader.string() != nil else {
            throw invalid("is truncated")
        }
        guard cipher == Array("none".utf8), kdf == Array("none".utf8) else {
            throw invalid(
                "is protected by a passphrase, which StackVault cannot prompt for; give it an unencrypted copy "
                    + "(ssh-keygen -p -N '' -f copy) or use an age identity"
            )
        }
        guard reader.uint32() == 1, let publicWire = reader.string(), let privateSection = reader.string() else {
            throw invalid("does not hold exactly one key")
        }
        var section = WireReader(privateSection)
        guard let check1 = section.uint32(), let check2 = section.uint32(), check1 == check2 else {
            throw invalid("has a damaged private section (check numbers differ)")
        }
        guard let type = section.string(), type == Array("ssh-ed25519".utf8) else {
            throw invalid("is not an ssh-ed25519 key; only Ed25519 SSH keys can be age identities here")
        }
        guard let publicKey = section.string(), publicKey.count == 32, let secret = section.string(), secret.count == 64,
            Array(secret[32...]) == publicKey
        else { throw invalid("has a malformed Ed25519 private key") }
        var publicReader = WireReader(publicWire)
        guard publicReader.string() == Array("ssh-ed25519".utf8), publicReader.string() == publicKey else {
            throw invalid("has a public key that does not match its private key")
        }
        return (Array(secret[..<32]), publicWire)
    }

    /// Reads SSH wire encodings: big-endian uint32 and length-prefixed strings.
    struct WireReader {
        private let data: [UInt8]
        private var position = 0

        init(_ data: [UInt8]) { self.data = data }

        var isAtEnd: Bool { position == data.count }

        mutating func bytes(_ count: Int) -> [UInt8]? {
            guard count >= 0, data.count - position >= count else { return nil }
            defer { position += count }
            return Array(data[position..<(position + count)])
        }

        mutating func uint32() -> UInt32? {
            bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } }
        }

        mutating func string() -> [UInt8]? {
            guard let length = uint32() else { return nil }
            return bytes(Int(length))
        }
    }
}
