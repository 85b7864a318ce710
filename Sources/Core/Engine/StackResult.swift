/// How one stack's backup went.
public struct StackResult: Sendable, Codable {
    public var stack: String
    public var services: Int
    public var archive: String?
    public var sizeBytes: Int64
    public var durationSeconds: Double
    /// Seconds between the first stop and the last start of the stack's stopped containers.
    public var downtimeSeconds: Double
    /// Bytes read from the stack (dumps and directories, before compression).
    public var bytesRead: Int64
    /// Bytes of the archive written (compressed), also when the stack failed after writing some.
    public var bytesWritten: Int64
    /// Containers the engine stopped for the directory copy (already stopped ones are not counted).
    public var containersStopped: Int
    public var warnings: [String]
    /// Nil when the stack succeeded.
    public var error: String?

    public var succeeded: Bool { error == nil }

    public init(
        stack: String, services: Int, archive: String?, sizeBytes: Int64, durationSeconds: Double,
        downtimeSeconds: Double, warnings: [String], error: String?, bytesRead: Int64 = 0, bytesWritten: Int64 = 0,
        containersStopped: Int = 0
    ) {
        self.stack = stack
        self.services = services
        self.archive = archive
        self.sizeBytes = sizeBytes
        self.durationSeconds = durationSeconds
        self.downtimeSeconds = downtimeSeconds
        self.warnings = warnings
        self.error = error
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
        self.containersStopped = containersStopped
    }
}
