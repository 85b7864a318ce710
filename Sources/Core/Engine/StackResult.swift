/// How one stack's backup went.
public struct StackResult: Sendable, Codable {
    public var stack: String
    public var services: Int
    public var archive: String?
    public var sizeBytes: Int64
    public var durationSeconds: Double
    /// Seconds between the first stop and the last start of the stack's stopped containers.
    public var downtimeSeconds: Double
    public var warnings: [String]
    /// Nil when the stack succeeded.
    public var error: String?

    public var succeeded: Bool { error == nil }

    public init(
        stack: String, services: Int, archive: String?, sizeBytes: Int64, durationSeconds: Double,
        downtimeSeconds: Double, warnings: [String], error: String?
    ) {
        self.stack = stack
        self.services = services
        self.archive = archive
        self.sizeBytes = sizeBytes
        self.durationSeconds = durationSeconds
        self.downtimeSeconds = downtimeSeconds
        self.warnings = warnings
        self.error = error
    }
}
