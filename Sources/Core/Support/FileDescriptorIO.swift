import Foundation

/// Whole reads and writes on a file descriptor: short transfers continued, `EINTR` retried, failures thrown as
/// ``StackVaultError`` through ``syscall(_:path:_:failing:hint:_:)`` ("cannot write to <what>: <strerror> (write)").
/// `what` names the file for messages ("the archive file '/backups/x.tar.zst'").
package enum FileDescriptorIO {
    /// Writes all of `bytes` to `fd` at its current offset.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: @autoclosure () -> String) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try syscall("write", path: what(), failing: "cannot write to \(what())") {
                Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            }
        }
    }

    /// Writes all of `bytes` to `fd` at `position`, leaving its offset alone.
    package static func writeAll(
        _ fd: Int32,
        _ bytes: UnsafeRawBufferPointer,
        at position: Int64,
        what: @autoclosure () -> String
    ) throws {
        var done = 0
        while done < bytes.count {
            done += try syscall("pwrite", path: what(), failing: "cannot write to \(what())") {
                pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(position) + off_t(done))
            }
        }
    }

    /// Reads up to `buffer.count` bytes at the current offset, or at `position` when given; 0 means end of file.
    package static func read(
        _ fd: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        at position: Int64? = nil,
        what: @autoclosure () -> String
    ) throws -> Int {
        if let position {
            return try syscall("pread", path: what(), failing: "cannot read \(what())") {
                pread(fd, buffer.baseAddress, buffer.count, off_t(position))
            }
        }
        return try syscall("read", path: what(), failing: "cannot read \(what())") {
            Foundation.read(fd, buffer.baseAddress, buffer.count)
        }
    }
}
