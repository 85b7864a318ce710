public import Foundation

/// Settings of a backup run.
public struct BackupConfiguration: Sendable {
    /// Where archives are assembled before they are stored, when the target is not a local directory.
    public var workDirectory: String
    /// A stack is refused when less than this is free where its archive is written.
    public var minimumFreeBytes: Int64
    /// Seconds Docker gives a container to stop before it kills it.
    public var stopTimeoutSeconds: Int
    public var hostName: String
    public var toolVersion: String
    /// Applied to a stack's archives after each successful backup of it; empty = keep everything.
    public var retention: RetentionPolicy
    /// Whom archives are encrypted to (age, `AGE_RECIPIENTS*` / `AGE_PASSPHRASE*`); empty = not encrypted.
    public var recipients: [any AgeRecipient] = []

    public init(
        workDirectory: String,
        minimumFreeBytes: Int64 = 1 << 30,
        stopTimeoutSeconds: Int = 30,
        hostName: String = ProcessInfo.processInfo.hostName,
        toolVersion: String = StackVault.version,
        retention: RetentionPolicy = RetentionPolicy()
    ) {
        self.workDirectory = workDirectory
        self.minimumFreeBytes = minimumFreeBytes
        self.stopTimeoutSeconds = stopTimeoutSeconds
        self.hostName = hostName
        self.toolVersion = toolVersion
        self.retention = retention
    }
}

/// Version information of the tool.
public enum StackVault {
    public static let version = "0.1.0"
}

