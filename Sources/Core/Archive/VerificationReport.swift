import Foundation

/// What ``ArchiveVerifier`` found in an archive.
public struct VerificationReport: Sendable {
    /// One component of the manifest, checked against what the archive really holds.
    public struct ComponentResult: Sendable, Hashable {
        public var archivePath: String
        public var kind: ComponentRecord.Kind
        public var expectedSHA256: String
        /// nil when the archive holds no entry of the component.
        public var actualSHA256: String?
        public var expectedSizeBytes: Int64
        public var actualSizeBytes: Int64
        public var expectedEntries: Int
        public var actualEntries: Int

        public var ok: Bool {
            actualSHA256 == expectedSHA256 && actualSizeBytes == expectedSizeBytes && actualEntries == expectedEntries
        }
    }

    /// The index (first entry), if it could be read.
    public var index: ArchiveIndex?
    /// The manifest (last entry), if it could be read.
    public var manifest: Manifest?
    /// One result per manifest component, in manifest order.
    public var components: [ComponentResult] = []
    /// Everything that makes the archive untrustworthy, each naming its culprit. Empty for a good archive.
    public var problems: [String] = []
    /// Remarks that do not fail verification (e.g. a planned component that never completed).
    public var notes: [String] = []
    /// Tar entries read, index and manifest included.
    public var entries = 0
    /// Bytes of the compressed file read.
    public var compressedBytes: Int64 = 0
    /// The last bytes of each `.file` component, when asked for (`keepingFileTails`).
    var fileTails: [String: [UInt8]] = [:]

    /// True when the archive is complete and every component matches its manifest record.
    public var ok: Bool {
        problems.isEmpty && index != nil && manifest != nil && components.allSatisfy(\.ok)
    }
}
