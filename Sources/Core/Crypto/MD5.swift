import Foundation
internal import COpenSSL

/// Incremental MD5 through OpenSSL's EVP interface, for integrity headers such as S3's `Content-MD5`.
///
/// MD5 is not a security primitive here: it only detects corruption in flight, which servers check against the
/// header. Use `SHA256` for anything else. A value type: copies hash independently (copy-on-write of the context).
public struct MD5: Sendable {
    /// Size of a digest in bytes.
    public static let byteCount = 16

    private var hasher = EVPHasher(.md5)

    public init() {}

    /// Adds the bytes of `buffer`.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        hasher.update(buffer)
    }

    /// Adds `bytes`.
    public mutating func update(bytes: some Sequence<UInt8>) {
        hasher.update(bytes: bytes)
    }

    /// The 16-byte digest of everything added so far. The hasher stays usable.
    public func finalize() -> [UInt8] {
        hasher.finalize()
    }

    /// MD5 of `data` in one call.
    public static func hash(_ data: some Sequence<UInt8>) -> [UInt8] {
        var hasher = MD5()
        hasher.update(bytes: data)
        return hasher.finalize()
    }
}
