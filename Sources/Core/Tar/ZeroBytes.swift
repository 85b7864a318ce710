import Foundation

/// 1 MiB of zeros, never written to: the holes of sparse files where a stream needs them as bytes, and the
/// all-zero block the tree digest compares with.
nonisolated(unsafe) let zeroBytes: UnsafeRawBufferPointer = {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    return UnsafeRawBufferPointer(buffer)
}()
