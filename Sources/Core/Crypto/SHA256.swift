internal import COpenSSL
import Foundation

/// Incremental SHA-256 through OpenSSL's EVP interface.
///
/// A value type: copies hash independently (copy-on-write of the OpenSSL context). `finalize()` does not
/// consume the hasher, so a running digest can be read and updated further.
public struct SHA256: Sendable {
    /// A finished SHA-256 digest.
    public struct Digest: Sendable, Hashable, CustomStringConvertible {
        /// The 32 raw bytes.
        public let bytes: [UInt8]
        /// Lower-case hex, as `sha256sum` prints it.
        public var hex: String { SHA256.hex(bytes) }
        public var description: String { hex }
    }

    /// Size of a digest in bytes.
    public static let byteCount = 32

    private var hasher = EVPHasher(.sha256)

    public init() {}

    /// Adds the bytes of `buffer`.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        hasher.update(buffer)
    }

    /// Adds `bytes`.
    public mutating func update(bytes: some Sequence<UInt8>) {
        hasher.update(bytes: bytes)
    }

    /// Adds the UTF-8 bytes of `string`.
    public mutating func update(_ string: String) {
        var string = string
        string.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The digest of everything added so far. The hasher stays usable.
    public func finalize() -> Digest {
        SHA256.Digest(bytes: hasher.finalize())
    }

    /// SHA-256 of `data` in one call.
    public static func hash(_ data: some Sequence<UInt8>) -> Digest {
        var hasher = SHA256()
        hasher.update(bytes: data)
        return hasher.finalize()
    }

    /// SHA-256 of the UTF-8 bytes of `string`.
    public static func hash(_ string: String) -> Digest {
        var hasher = SHA256()
        hasher.update(string)
        return hasher.finalize()
    }
}

/// HMAC-SHA256 (RFC 2104) through OpenSSL's one-shot `HMAC()`.
public enum HMACSHA256 {
    /// The 32-byte authentication code of `message` under `key`.
    public static func authenticationCode(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // Never hand OpenSSL a NULL pointer, even for empty inputs.
        let keyStorage = key.isEmpty ? [0] : key
        let messageStorage = message.isEmpty ? [0] : message
        let result = keyStorage.withUnsafeBufferPointer { keyBuffer in
            messageStorage.withUnsafeBufferPointer { messageBuffer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    HMAC(
                        EVP_sha256(),
                        keyBuffer.baseAddress,
                        Int32(key.count),
                        messageBuffer.baseAddress,
                        message.count,
                        outBuffer.baseAddress,
                        &length
                    )
                }
            }
        }
        guard result != nil, Int(length) == SHA256.byteCount else {
            fatalError("OpenSSL HMAC-SHA256 failed: \(openSSLError())")
        }
        return Array(out.prefix(Int(length)))
    }

    /// The authentication code of the UTF-8 bytes of `message` under `key`.
    public static func authenticationCode(key: [UInt8], message: String) -> [UInt8] {
        authenticationCode(key: key, message: Array(message.utf8))
    }
}

extension SHA256 {
    /// Lower-case hex of `bytes` (for digests and HMACs, e.g. in AWS SigV4).
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Drains OpenSSL's thread-local error queue into one readable string.
func openSSLError() -> String {
    var messages: [String] = []
    var buffer = [CChar](repeating: 0, count: 256)
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        buffer.withUnsafeMutableBufferPointer { ERR_error_string_n(code, $0.baseAddress, $0.count) }
        messages.append(
            String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        )
    }
    return messages.isEmpty ? "unknown OpenSSL error" : messages.joined(separator: "; ")
}

/// Turns an OpenSSL 1-on-success return code into a Swift error carrying the OpenSSL error queue.
func openSSLCheck(_ result: Int32, _ what: @autoclosure () -> String) throws {
    guard result == 1 else {
        throw StackVaultError(.crypto, "OpenSSL: \(what()) failed: \(openSSLError())")
    }
}

/// An incremental OpenSSL digest with value semantics, shared by `SHA256` and `MD5`: copies hash independently
/// (copy-on-write of the context), and reading the digest leaves the hasher usable.
struct EVPHasher: Sendable {
    private var context: EVPDigestContext

    init(_ algorithm: EVPDigestContext.Algorithm) {
        context = EVPDigestContext(algorithm)
    }

    mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        if !isKnownUniquelyReferenced(&context) {
            context = context.copy()
        }
        context.update(buffer)
    }

    mutating func update(bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil {
            Array(bytes).withUnsafeBytes { update($0) }
        }
    }

    /// The digest's bytes of everything added so far.
    func finalize() -> [UInt8] {
        context.copy().finish()
    }
}

/// Owns one `EVP_MD_CTX` set up for a digest algorithm (SHA-256, MD5), freed in `deinit`.
///
/// `@unchecked Sendable`: it is only mutated through `EVPHasher`, which copies it unless uniquely referenced.
final class EVPDigestContext: @unchecked Sendable {
    enum Algorithm: String {
        case sha256 = "SHA-256"
        case md5 = "MD5"
    }

    private let context: OpaquePointer

    init(_ algorithm: Algorithm) {
        guard let context = EVP_MD_CTX_new() else { fatalError("OpenSSL: cannot allocate an EVP_MD_CTX") }
        self.context = context
        let md = switch algorithm {
        case .sha256: EVP_sha256()
        case .md5: EVP_md5()
        }
        do {
            try openSSLCheck(EVP_DigestInit_ex(context, md, nil), "EVP_DigestInit_ex(\(algorithm.rawValue))")
        } catch {
            EVP_MD_CTX_free(context)
            fatalError("\(error)")
        }
    }

    private init(copying other: EVPDigestContext) {
        guard let context = EVP_MD_CTX_new() else { fatalError("OpenSSL: cannot allocate an EVP_MD_CTX") }
        self.context = context
        do {
            try openSSLCheck(EVP_MD_CTX_copy_ex(context, other.context), "EVP_MD_CTX_copy_ex")
        } catch {
            EVP_MD_CTX_free(context)
            fatalError("\(error)")
        }
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    func copy() -> EVPDigestContext {
        EVPDigestContext(copying: self)
    }

    func update(_ buffer: UnsafeRawBufferPointer) {
        do {
            try openSSLCheck(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count), "EVP_DigestUpdate")
        } catch {
            fatalError("\(error)")
        }
    }

    /// Finalizes this context (it must not be used afterwards) and returns the digest's bytes.
    func finish() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        do {
            try openSSLCheck(
                bytes.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) },
                "EVP_DigestFinal_ex"
            )
        } catch {
            fatalError("\(error)")
        }
        return Array(bytes.prefix(Int(length)))
    }
}
