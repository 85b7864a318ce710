/// Splits Docker's multiplexed exec/attach stream (8-byte frame headers: stream id, 3 zero bytes, big-endian
/// length) into stdout and stderr as the bytes arrive, whatever the chunking; nothing is buffered beyond a header.
public final class DockerStreamDemuxer: ByteSink {
    private let stdout: any ByteSink
    private let stderr: any ByteSink
    private var header: [UInt8] = []
    private var remaining = 0
    private var currentStream: UInt8 = 1

    public init(stdout: any ByteSink, stderr: any ByteSink) {
        self.stdout = stdout
        self.stderr = stderr
        header.reserveCapacity(8)
    }

    /// True when the stream ended between frames, as a complete stream does.
    public var isAtFrameBoundary: Bool { header.isEmpty && remaining == 0 }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            if remaining == 0 {
                let take = min(8 - header.count, bytes.count - offset)
                header.append(contentsOf: bytes[offset..<offset + take])
                offset += take
                guard header.count == 8 else { return }
                guard header[0] <= 2, header[1] == 0, header[2] == 0, header[3] == 0 else {
                    throw StackVaultError(.dockerAPI, "the Docker exec stream is not multiplexed as expected "
                        + "(frame header \(header.map { String($0, radix: 16) }))")
                }
                currentStream = header[0]
                remaining = Int(header[4]) << 24 | Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
                header.removeAll(keepingCapacity: true)
                continue
            }
            let take = min(remaining, bytes.count - offset)
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take])
            try (currentStream == 2 ? stderr : stdout).write(slice)
            remaining -= take
            offset += take
        }
    }
}
