public import Foundation

/// The first entry of every archive (`stackvault-index.json`): the components it will hold, so that a reader
/// streaming the archive knows every component root before it meets the data.
public struct ArchiveIndex: Codable, Sendable, Equatable {
    /// The archive entry name of the index.
    public static let entryName = "stackvault-index.json"
    public static let currentFormatVersion = 1

    /// One planned component: written into the index, and completed by ``ArchiveWriter`` into the manifest's
    /// entry for it once it has been added (see ``Manifest/ManifestComponent``).
    ///
    /// `container`, `name` and `sourcePath` are what the manifest records of the component's origin; they are
    /// not part of the index's JSON (format version 1 stays as it is) and are empty when an index is read back.
    public struct IndexComponent: Codable, Sendable, Hashable {
        /// The compose service it belongs to.
        public var service: String
        /// The strategy type that produces it (e.g. `volume`, `pg_dumpall`).
        public var type: String
        /// Its root path in the archive.
        public var archivePath: String
        public var kind: ComponentRecord.Kind
        /// The container it is read from (manifest only).
        public var container: String = ""
        /// The strategy's name for it (volume name, database name), if any (manifest only).
        public var name: String? = nil
        /// Where the data comes from (a path in the container), if any (manifest only).
        public var sourcePath: String? = nil
        /// The container's image as configured (`Config.Image`, `postgres:15`) and its id (`sha256:...`)
        /// (manifest only).
        public var image: String? = nil
        public var imageID: String? = nil
        /// The directory `sourcePath` resolved to when it is a symbolic link (manifest only).
        public var resolvedPath: String? = nil

        enum CodingKeys: String, CodingKey {
            case service, type, archivePath, kind
        }

        public init(
            service: String, type: String, archivePath: String, kind: ComponentRecord.Kind,
            container: String = "", name: String? = nil, sourcePath: String? = nil, resolvedPath: String? = nil,
            image: String? = nil, imageID: String? = nil
        ) {
            self.resolvedPath = resolvedPath
            self.service = service
            self.type = type
            self.archivePath = archivePath
            self.kind = kind
            self.container = container
            self.name = name
            self.sourcePath = sourcePath
            self.image = image
            self.imageID = imageID
        }

        /// The manifest's entry for this component, from what was written for it (`record`) and, for a dump, what
        /// it holds.
        public func manifestComponent(record: ComponentRecord, contents: DumpContents? = nil)
            -> Manifest.ManifestComponent
        {
            var component = Manifest.ManifestComponent(
                service: service, container: container, type: type, name: name, sourcePath: sourcePath,
                record: record)
            component.image = image
            component.imageID = imageID
            component.contents = contents
            component.resolvedPath = resolvedPath
            return component
        }
    }

    public var formatVersion: Int
    public var stack: String
    public var components: [IndexComponent]

    public init(
        formatVersion: Int = ArchiveIndex.currentFormatVersion,
        stack: String,
        components: [IndexComponent]
    ) {
        self.formatVersion = formatVersion
        self.stack = stack
        self.components = components
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        try archiveJSONEncode(self, what: "the archive index")
    }

    public init(jsonData: Data) throws {
        self = try archiveJSONDecode(ArchiveIndex.self, from: jsonData, what: "the archive index")
    }
}

/// The last entry of every archive (`stackvault.json`): what was backed up, when, by what, with the digests
/// that verification checks.
public struct Manifest: Codable, Sendable, Equatable {
    /// The archive entry name of the manifest.
    public static let entryName = "stackvault.json"
    public static let currentFormatVersion = 1

    /// Everything in a manifest that the run knows and the writer does not: ``ArchiveWriter/finish(_:)`` adds
    /// the components (from the index and what was written) and the time it sealed the archive.
    public struct Header: Sendable, Equatable {
        public var formatVersion: Int
        public var toolVersion: String
        public var host: String
        public var stack: String
        public var archiveName: String
        /// The compressor's name (`zstd`).
        public var compression: String
        public var startedAt: Date
        /// The run's warnings for this stack; the writer appends its own.
        public var warnings: [String]

        public init(
            formatVersion: Int = Manifest.currentFormatVersion, toolVersion: String, host: String, stack: String,
            archiveName: String, compression: String, startedAt: Date, warnings: [String]
        ) {
            self.formatVersion = formatVersion
            self.toolVersion = toolVersion
            self.host = host
            self.stack = stack
            self.archiveName = archiveName
            self.compression = compression
            self.startedAt = startedAt
            self.warnings = warnings
        }
    }

    /// One component that was written completely.
    public struct ManifestComponent: Codable, Sendable, Hashable {
        public var service: String
        public var container: String
        /// The strategy type that produced it.
        public var type: String
        /// The strategy's name for it (volume name, database name), if any.
        public var name: String?
        /// Where the data came from (a path in the container), if any: the label's path.
        public var sourcePath: String?
        /// When `sourcePath` is a symbolic link: the directory it resolved to, whose content was copied (and is
        /// restored into, the link left as it is).
        public var resolvedPath: String? = nil
        public var archivePath: String
        public var kind: ComponentRecord.Kind
        public var sizeBytes: Int64
        public var entries: Int
        /// Lower-case hex SHA-256: plain for `.file`, `TreeDigest` for `.tree`.
        public var sha256: String
        /// The service's image (`Config.Image`) and image id when it was backed up: what a restore drill starts.
        /// Absent in archives of earlier versions.
        public var image: String?
        public var imageID: String?
        /// For a dump: its databases and each table's rows (``DumpContents``). Absent for directories and in
        /// archives of earlier versions.
        public var contents: DumpContents?

        public init(
            service: String,
            container: String,
            type: String,
            name: String? = nil,
            sourcePath: String? = nil,
            archivePath: String,
            kind: ComponentRecord.Kind,
            sizeBytes: Int64,
            entries: Int,
            sha256: String
        ) {
            self.service = service
            self.container = container
            self.type = type
            self.name = name
            self.sourcePath = sourcePath
            self.archivePath = archivePath
            self.kind = kind
            self.sizeBytes = sizeBytes
            self.entries = entries
            self.sha256 = sha256
        }

        /// A manifest component from what `ArchiveSink` returned for it.
        public init(
            service: String,
            container: String,
            type: String,
            name: String? = nil,
            sourcePath: String? = nil,
            record: ComponentRecord
        ) {
            self.init(
                service: service,
                container: container,
                type: type,
                name: name,
                sourcePath: sourcePath,
                archivePath: record.archivePath,
                kind: record.kind,
                sizeBytes: record.sizeBytes,
                entries: record.entries,
                sha256: record.sha256
            )
        }

        /// The archive-level facts of this component.
        public var record: ComponentRecord {
            ComponentRecord(
                archivePath: archivePath,
                kind: kind,
                sizeBytes: sizeBytes,
                entries: entries,
                sha256: sha256
            )
        }
    }

    public var formatVersion: Int
    /// Always `stackvault`.
    public var tool: String
    public var toolVersion: String
    public var host: String
    public var stack: String
    /// The archive's file name, e.g. `myapp-20250101T020000Z.tar.zst`.
    public var archiveName: String
    /// The compressor name, e.g. `zstd`.
    public var compression: String
    /// Encoded as ISO-8601 in UTC with whole seconds.
    public var startedAt: Date
    public var finishedAt: Date
    public var components: [ManifestComponent]
    public var warnings: [String]

    public init(
        formatVersion: Int = Manifest.currentFormatVersion,
        tool: String = "stackvault",
        toolVersion: String,
        host: String,
        stack: String,
        archiveName: String,
        compression: String,
        startedAt: Date,
        finishedAt: Date,
        components: [ManifestComponent],
        warnings: [String] = []
    ) {
        self.formatVersion = formatVersion
        self.tool = tool
        self.toolVersion = toolVersion
        self.host = host
        self.stack = stack
        self.archiveName = archiveName
        self.compression = compression
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.components = components
        self.warnings = warnings
    }

    /// Pretty-printed JSON with sorted keys and ISO-8601 dates.
    public func jsonData() throws -> Data {
        try archiveJSONEncode(self, what: "the manifest")
    }

    public init(jsonData: Data) throws {
        self = try archiveJSONDecode(Manifest.self, from: jsonData, what: "the manifest")
    }
}

private func archiveJSONEncode(_ value: some Encodable, what: String) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    do {
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        return data
    } catch {
        throw StackVaultError(.archive, "cannot encode \(what) as JSON", cause: error)
    }
}

private func archiveJSONDecode<T: Decodable>(_ type: T.Type, from data: Data, what: String) throws -> T {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    do {
        return try decoder.decode(type, from: data)
    } catch {
        throw StackVaultError(.archive, "\(what) is not valid JSON of the expected shape", cause: error)
    }
}
