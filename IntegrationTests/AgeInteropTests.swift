import Foundation
import StackVaultCore
import Testing

/// Whether the command-line tools the interop tests run are on PATH.
enum AgeTools {
    static let installed = ["age", "age-keygen", "script", "ssh-keygen"].allSatisfy { tool in
        (try? Shell.run(["sh", "-c", "command -v \(tool)"], check: false))?.ok == true
    }
}

/// Interoperability with the real `age` and `age-keygen` (Debian package `age`), both ways, for X25519,
/// ssh-ed25519 and passphrase recipients. `age` reads a passphrase only from a terminal, so those cases run it
/// under `script`, which gives it a pseudo-terminal fed from our stdin.
///
/// Outside CI, missing binaries disable the suite with a visible reason; with CI=true they make it fail.
@Suite(.enabled(if: TestBed.isCI || AgeTools.installed, "age/age-keygen not installed (apt-get install age)"))
struct AgeInteropTests {
    /// Bytes that span several 64 KiB chunks and end in a partial one.
    static let plaintext: [UInt8] = (0..<(5 * 65_536 + 1234)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }

    static func encrypt(_ plaintext: [UInt8], to recipients: [any AgeRecipient]) throws -> Data {
        let sink = CollectingSink()
        let encryptor = try AgeEncryptor(recipients: recipients, writingTo: sink)
        try plaintext.withUnsafeBytes { try encryptor.write($0) }
        try encryptor.finish()
        return Data(sink.bytes)
    }

    static func decrypt(_ file: Data, with identities: [any AgeIdentity]) throws -> [UInt8] {
        let sink = CollectingSink()
        let decryptor = AgeDecryptor(identities: identities, writingTo: sink)
        try [UInt8](file).withUnsafeBytes { try decryptor.write($0) }
        try decryptor.finish()
        return sink.bytes
    }

    /// A directory holding the plaintext as `plain`.
    static func workspace(_ name: String) throws -> URL {
        let directory = try TestBed.temporaryDirectory("age-\(name)")
        try Data(plaintext).write(to: directory.appendingPathComponent("plain"))
        return directory
    }

    @Test("X25519: StackVault encrypts, age -d decrypts; age encrypts, StackVault decrypts")
    func x25519() throws {
        let directory = try Self.workspace("x25519")
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("key.txt").path
        try Shell.run(["age-keygen", "-o", key])
        let publicKey = try Shell.run(["age-keygen", "-y", key]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let configuration = try AgeConfiguration.fromEnvironment(["AGE_RECIPIENTS": publicKey, "AGE_IDENTITY_FILE": key])

        try Self.encrypt(Self.plaintext, to: configuration.recipients).write(to: directory.appendingPathComponent("sv.age"))
        try Shell.sh("cd '\(directory.path)' && age -d -i key.txt -o sv.out sv.age && cmp plain sv.out")

        try Shell.sh("cd '\(directory.path)' && age -r \(publicKey) -o age.age plain")
        let file = try Data(contentsOf: directory.appendingPathComponent("age.age"))
        #expect(try Self.decrypt(file, with: configuration.identities) == Self.plaintext)
    }

    @Test("ssh-ed25519: StackVault encrypts to the .pub, age -d -i the private key decrypts, and back")
    func sshEd25519() throws {
        let directory = try Self.workspace("ssh")
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = directory.appendingPathComponent("id_ed25519").path
        try Shell.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stackvault-interop", "-f", key])
        let configuration = try AgeConfiguration.fromEnvironment([
            "AGE_RECIPIENTS_FILE": key + ".pub", "AGE_IDENTITY_FILE": key,
        ])

        try Self.encrypt(Self.plaintext, to: configuration.recipients).write(to: directory.appendingPathComponent("sv.age"))
        try Shell.sh("cd '\(directory.path)' && age -d -i id_ed25519 -o sv.out sv.age && cmp plain sv.out")

        try Shell.sh("cd '\(directory.path)' && age -R id_ed25519.pub -o age.age plain")
        let file = try Data(contentsOf: directory.appendingPathComponent("age.age"))
        #expect(try Self.decrypt(file, with: configuration.identities) == Self.plaintext)
    }

    @Test("passphrase: StackVault's scrypt file opens with age -d, age -p's file opens with StackVault")
    func passphrase() throws {
        let directory = try Self.workspace("scrypt")
        defer { try? FileManager.default.removeItem(at: directory) }
        let passphrase = "interop correct horse battery"
        let configuration = try AgeConfiguration.fromEnvironment(["AGE_PASSPHRASE": passphrase])

        try Self.encrypt(Self.plaintext, to: configuration.recipients).write(to: directory.appendingPathComponent("sv.age"))
        try Shell.run(
            ["script", "-qec", "age -d -o '\(directory.path)/sv.out' '\(directory.path)/sv.age'", "/dev/null"],
            input: passphrase + "\n"
        )
        try Shell.sh("cmp '\(directory.path)/plain' '\(directory.path)/sv.out'")

        try Shell.run(
            ["script", "-qec", "age -p -o '\(directory.path)/age.age' '\(directory.path)/plain'", "/dev/null"],
            input: passphrase + "\n" + passphrase + "\n"
        )
        let file = try Data(contentsOf: directory.appendingPathComponent("age.age"))
        #expect(try Self.decrypt(file, with: configuration.identities) == Self.plaintext)
        let wrong = try AgeConfiguration.fromEnvironment(["AGE_PASSPHRASE": "not it"]).identities
        #expect(throws: AgeError.self) { try Self.decrypt(file, with: wrong) }
    }
}
