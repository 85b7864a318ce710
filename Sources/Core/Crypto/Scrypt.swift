internal import COpenSSL

/// scrypt (RFC 7914) through OpenSSL's `EVP_PBE_scrypt`.
enum Scrypt {
    /// Derives `outputByteCount` bytes from `password` and `salt` with cost N = 2^`logN`, block size `r`,
    /// parallelism `p`. Needs about 128 * r * N bytes of memory (256 MiB for logN 18, r 8); OpenSSL's own memory
    /// limit is raised to that plus 1 MiB.
    static func deriveKey(
        password: [UInt8], salt: [UInt8], logN: Int, r: UInt64 = 8, p: UInt64 = 1, outputByteCount: Int = 32
    ) throws -> [UInt8] {
        precondition((1...30).contains(logN), "scrypt work factor out of range")
        let n = UInt64(1) << UInt64(logN)
        let maxMemory = 128 * r * n * p + 128 * r * p + (1 << 20)
        var out = [UInt8](repeating: 0, count: outputByteCount)
        let passwordStorage = password.isEmpty ? [0] : password
        let saltStorage = salt.isEmpty ? [0] : salt
        let result = passwordStorage.withUnsafeBufferPointer { passwordBuffer in
            saltStorage.withUnsafeBufferPointer { saltBuffer in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    passwordBuffer.withMemoryRebound(to: CChar.self) { passwordChars in
                        EVP_PBE_scrypt(
                            passwordChars.baseAddress, password.count, saltBuffer.baseAddress, salt.count,
                            n, r, p, maxMemory, outBuffer.baseAddress, outBuffer.count
                        )
                    }
                }
            }
        }
        try openSSLCheck(result, "EVP_PBE_scrypt(logN \(logN))")
        return out
    }
}
