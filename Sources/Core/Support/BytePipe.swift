import Foundation

/// An OS pipe joining a producer thread to a consumer thread, with bounded memory (the kernel's pipe buffer).
///
/// The writer is a `ByteSink`; the reader fills buffers and returns 0 at the end. A producer that fails closes
/// with its error, which the consumer side can read from `writer.failure` after the stream ends.
final class BytePipe: Sendable {
    let reader: Reader
    let writer: Writer

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw StackVaultError(.io, "could not create a pipe: \(String(cString: strerror(errno)))")
        }
        #if os(Linux)
        _ = fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)  // 1 MiB: fewer context switches on large streams
        #endif
        reader = Reader(fd: fds[0])
        writer = Writer(fd: fds[1])
    }

    final class Reader: @unchecked Sendable {
        private let lock = NSLock()
        private var fd: Int32

        init(fd: Int32) { self.fd = fd }

        var fileDescriptor: Int32 { lock.withLock { fd } }

        /// Reads up to `buffer.count` bytes; 0 at the end of the stream.
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let fd = fileDescriptor
            while true {
                let count = Foundation.read(fd, buffer.baseAddress, buffer.count)
                if count >= 0 { return count }
                if errno == EINTR { continue }
                throw StackVaultError(.io, "reading from a pipe failed: \(String(cString: strerror(errno)))")
            }
        }

        func close() {
            lock.withLock {
                if fd >= 0 { Foundation.close(fd); fd = -1 }
            }
        }

        deinit { close() }
    }

    final class Writer: ByteSink, @unchecked Sendable {
        private let lock = NSLock()
        private var fd: Int32
        private var storedFailure: (any Error)?

        init(fd: Int32) { self.fd = fd }

        /// The producer's error, if it closed with one.
        var failure: (any Error)? { lock.withLock { storedFailure } }

        func write(_ bytes: UnsafeRawBufferPointer) throws {
            let fd = lock.withLock { self.fd }
            var offset = 0
            while offset < bytes.count {
                let count = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if count > 0 { offset += count; continue }
                if count < 0 && errno == EINTR { continue }
                if errno == EPIPE {
                    throw StackVaultError(.io, "the reading side of the stream stopped early")
                }
                throw StackVaultError(.io, "writing to a pipe failed: \(String(cString: strerror(errno)))")
            }
        }

        func close(error: (any Error)? = nil) {
            lock.withLock {
                if let error, storedFailure == nil { storedFailure = error }
                if fd >= 0 { Foundation.close(fd); fd = -1 }
            }
        }

        deinit { close() }
    }
}
