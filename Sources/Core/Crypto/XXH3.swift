internal import CXXHash

/// Incremental XXH3 (64-bit) through libxxhash: a fast, non-cryptographic checksum.
///
/// The archive writer computes it on the path from Docker into the archive, where a SHA-256 would lengthen the
/// time containers stay stopped (SHA-256 runs at ~2 GB/s with SHA-NI, XXH3 at tens of GB/s); the SHA-256 that the
/// manifest records is computed from the archive as read back, and the two reads are tied together by comparing
/// their XXH3. A value type with copy-on-write of libxxhash's state, like ``SHA256``.
struct XXH3: Sendable {
    private var state = XXH3State()

    init() {}

    mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        if !isKnownUniquelyReferenced(&state) { state = state.copy() }
        state.update(buffer)
    }

    mutating func update(bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if done == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    /// The checksum of everything added so far; the hasher stays usable.
    func finalize() -> UInt64 {
        state.digest()
    }

    /// XXH3 of `bytes` in one call.
    static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hasher = XXH3()
        hasher.update(bytes: bytes)
        return hasher.finalize()
    }
}

/// Owns one `XXH3_state_t`, freed in `deinit`. Only mutated through ``XXH3``, which copies it unless uniquely
/// referenced.
private final class XXH3State: @unchecked Sendable {
    private let state: OpaquePointer

    init() {
        guard let state = XXH3_createState() else { fatalError("libxxhash: cannot allocate an XXH3 state") }
        self.state = state
        XXH3_64bits_reset(state)
    }

    private init(copying other: XXH3State) {
        guard let state = XXH3_createState() else { fatalError("libxxhash: cannot allocate an XXH3 state") }
        self.state = state
        XXH3_copyState(state, other.state)
    }

    deinit {
        XXH3_freeState(state)
    }

    func copy() -> XXH3State {
        XXH3State(copying: self)
    }

    func update(_ buffer: UnsafeRawBufferPointer) {
        XXH3_64bits_update(state, buffer.baseAddress, buffer.count)
    }

    func digest() -> UInt64 {
        XXH3_64bits_digest(state)
    }
}
