import Foundation
internal import COpenSSL

/// Incremental MD5 through OpenSSL's EVP interface, for integrity headers such as S3's `Content-MD5`.
///
/// MD5 is not a security primitive here: it only detects corruption in flight, which servers check against the
/// header. Use `SHA256` for anything else. A value type: copies hash independently (copy-on-write of the context).
public struct MD5: Sendable {
    /// Size of a digest in bytes.
    public static let byteCount = 16

    private var context: EVPMD5Context

    public init() {
        context = EVPMD5Context()
    }

    /// Adds the bytes of `buffer`.
    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        if !isKnownUniquelyReferenced(&context) {
            context = context.copy()
        }
        context.update(buffer)
    }

    /// Adds `bytes`.
    public mutating func update(bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil {
            Array(bytes).withUnsafeBytes { update($0) }
        }
    }

    /// The 16-byte digest of everything added so far. The hasher stays usable.
    public func finalize() -> [UInt8] {
        context.copy().finish()
    }

    /// MD5 of `data` in one call.
    public static func hash(_ data: some Sequence<UInt8>) -> [UInt8] {
        var hasher = MD5()
        hasher.update(bytes: data)
        return hasher.finalize()
    }
}

/// Owns one `EVP_MD_CTX` set up for MD5, freed in `deinit`.
///
/// `@unchecked Sendable`: it is only mutated through `MD5`, which copies it unless uniquely referenced.
final class EVPMD5Context: @unchecked Sendable {
    private let context: OpaquePointer

    init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("OpenSSL: cannot allocate an EVP_MD_CTX") }
        self.context = context
        do {
            try openSSLCheck(EVP_DigestInit_ex(context, EVP_md5(), nil), "EVP_DigestInit_ex(MD5)")
        } catch {
            EVP_MD_CTX_free(context)
            fatalError("\(error)")
        }
    }

    private init(copying other: EVPMD5Context) {
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

    func copy() -> EVPMD5Context {
        EVPMD5Context(copying: self)
    }

    func update(_ buffer: UnsafeRawBufferPointer) {
        do {
            try openSSLCheck(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count), "EVP_DigestUpdate")
        } catch {
            fatalError("\(error)")
        }
    }

    /// Finalizes this context (it must not be used afterwards).
    func finish() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        do {
            try openSSLCheck(
                bytes.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) },
                "EVP_DigestFinal_ex")
        } catch {
            fatalError("\(error)")
        }
        return Array(bytes.prefix(Int(length)))
    }
}
