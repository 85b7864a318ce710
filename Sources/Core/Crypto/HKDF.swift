internal import COpenSSL
import Foundation

/// HKDF-SHA-256 (RFC 5869: extract with `salt`, then expand with `info`) through OpenSSL 3's `EVP_KDF` "HKDF".
enum HKDFSHA256 {
    /// `outputByteCount` bytes derived from `inputKeyMaterial`. An empty `salt` means RFC 5869's default (a string of
    /// zeros as long as the hash), which is what OpenSSL uses when no salt is given.
    static func deriveKey(
        inputKeyMaterial: [UInt8], salt: [UInt8], info: [UInt8], outputByteCount: Int = 32
    ) throws -> [UInt8] {
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else {
            throw StackVaultError(.crypto, "OpenSSL: EVP_KDF_fetch(HKDF) failed: \(openSSLError())")
        }
        defer { EVP_KDF_free(kdf) }
        guard let context = EVP_KDF_CTX_new(kdf) else {
            throw StackVaultError(.crypto, "OpenSSL: EVP_KDF_CTX_new failed: \(openSSLError())")
        }
        defer { EVP_KDF_CTX_free(context) }
        let params = OSSLParameters()
        params.string(OSSL_KDF_PARAM_DIGEST, "SHA256")
        params.octets(OSSL_KDF_PARAM_KEY, inputKeyMaterial)
        if !salt.isEmpty { params.octets(OSSL_KDF_PARAM_SALT, salt) }
        params.octets(OSSL_KDF_PARAM_INFO, info)
        var out = [UInt8](repeating: 0, count: outputByteCount)
        try params.withParameters { list in
            try openSSLCheck(
                out.withUnsafeMutableBufferPointer { EVP_KDF_derive(context, $0.baseAddress, $0.count, list) },
                "EVP_KDF_derive(HKDF-SHA-256)"
            )
        }
        return out
    }
}

/// An `OSSL_PARAM` list whose keys and values live in memory it owns until it is released.
///
/// OpenSSL keeps the pointers of each parameter, so the strings and buffers must outlive the call that reads them;
/// Swift's temporary string-to-pointer conversions do not.
final class OSSLParameters {
    private var allocations: [UnsafeMutableRawPointer] = []
    private var parameters: [OSSL_PARAM] = []

    deinit {
        for allocation in allocations { free(allocation) }
    }

    private func copy(_ string: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(string)!
        allocations.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    /// Adds a UTF-8 string parameter.
    func string(_ key: String, _ value: String) {
        parameters.append(OSSL_PARAM_construct_utf8_string(copy(key), copy(value), 0))
    }

    /// Adds an octet-string parameter (a copy of `value`).
    func octets(_ key: String, _ value: [UInt8]) {
        let buffer = malloc(max(1, value.count))!
        allocations.append(buffer)
        value.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: $0.count) } }
        parameters.append(OSSL_PARAM_construct_octet_string(copy(key), buffer, value.count))
    }

    /// Calls `body` with the end-terminated list.
    func withParameters<R>(_ body: (UnsafePointer<OSSL_PARAM>) throws -> R) rethrows -> R {
        let list = parameters + [OSSL_PARAM_construct_end()]
        return try list.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}
