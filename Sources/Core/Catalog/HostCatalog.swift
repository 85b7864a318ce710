import Foundation

/// An archive of a target with the host it belongs to.
public struct HostedArchive: Sendable, Codable, Equatable {
    /// The host folder it is stored in; nil for an archive at the top of the target, written before archives had
    /// host folders (StackVault 0.1): its host is only recorded inside it, in the manifest.
    public var host: String?
    public var listing: ArchiveListing

    public init(host: String?, listing: ArchiveListing) {
        self.host = host
        self.listing = listing
    }
}

/// The archives of a target shared by several hosts: each host's archives in a folder of its own,
/// `<target>/<host>/backup-{stack}-{time}-{uuid}.tar.zst`, so that hosts whose stacks have the same names never
/// see, prune or restore each other's archives by accident. The archive file name is unchanged (a downloaded file
/// still extracts with `tar --zstd -xf`).
///
/// Archives at the top of the target (the layout before host folders) belong to no host: they are listed, verified
/// and restored, by name, and never pruned; moving one into `<target>/<host>/` gives it to that host.
///
/// Everything here only reads the target.
public struct HostCatalog: Sendable {
    /// The whole target.
    public let root: any StorageBackend
    private let scope: @Sendable (String) throws -> any StorageBackend

    /// `scope` makes the backend of one host's folder (the target URL with `/<host>` appended).
    public init(root: any StorageBackend, scope: @escaping @Sendable (_ host: String) throws -> any StorageBackend) {
        self.root = root
        self.scope = scope
    }

    /// The backend of `host`'s folder; the one every per-host command (backup, prune, list, restore) works in.
    public func storage(forHost host: String) throws -> any StorageBackend {
        try scope(ArchiveHost.validate(host, source: "the host"))
    }

    /// `host`'s archives (of `stack` when given), newest first.
    public func archives(ofHost host: String, stack: String? = nil) async throws -> [HostedArchive] {
        try await ArchiveCatalog.load(from: storage(forHost: host), stack: stack).map {
            HostedArchive(host: host, listing: $0)
        }
    }

    /// Archives at the top of the target (before host folders), of `stack` when given, newest first.
    public func unfiledArchives(stack: String? = nil) async throws -> [HostedArchive] {
        try await ArchiveCatalog.load(from: root, stack: stack).map { HostedArchive(host: nil, listing: $0) }
    }

    /// Every archive of the target, of every host and the unfiled ones, newest first.
    public func allArchives(stack: String? = nil) async throws -> [HostedArchive] {
        var result: [HostedArchive]
        if let directory = root.localDirectory {
            // A directory lists only its own files: walk the host folders.
            result = try await unfiledArchives(stack: stack)
            for host in Self.hostFolders(in: directory) {
                result += try await archives(ofHost: host, stack: stack)
            }
        } else {
            // Object stores list every key below the prefix: one listing, split at the first '/'.
            result = try await root.list(prefix: "").compactMap { object -> HostedArchive? in
                let parts = object.name.split(separator: "/", omittingEmptySubsequences: false)
                let host = parts.count == 2 ? String(parts[0]) : nil
                guard parts.count <= 2, host.map(ArchiveHost.isValid) ?? true else { return nil }
                var named = object
                named.name = String(parts[parts.count - 1])
                guard let listing = ArchiveCatalog.listings([named], stack: stack).first else { return nil }
                return HostedArchive(host: host, listing: listing)
            }
        }
        return result.sorted { ($0.listing.date, $0.listing.name) > ($1.listing.date, $1.listing.name) }
    }

    /// The hosts that have archives in the target, sorted.
    public func hosts() async throws -> [String] {
        Array(Set(try await allArchives().compactMap(\.host))).sorted()
    }

    /// Where an archive selected by `verify` and `restore` is.
    public struct Location: Sendable {
        /// The host folder it is in; nil for an unfiled archive (top of the target).
        public var host: String?
        public var name: String
        /// The backend to read `name` from.
        public var storage: any StorageBackend
    }

    /// The archive named `name` in `host`'s folder, or the newest of `stack` there (`latest`).
    ///
    /// A name not in `host`'s folder is taken from the top of the target when it is there (an archive written before
    /// host folders). Errors say where else the archive or the stack is: in another host's folder (use `--host`), or
    /// unfiled; `latest` never picks another host's or an unfiled archive.
    public func select(name: String?, latest: Bool, stack: String?, host: String) async throws -> Location {
        let hostStorage = try storage(forHost: host)
        switch (name, latest) {
        case (.some(let name), false):
            if try await hostStorage.list(prefix: name).contains(where: { $0.name == name }) {
                return Location(host: host, name: name, storage: hostStorage)
            }
            if try await root.list(prefix: name).contains(where: { $0.name == name }) {
                return Location(host: nil, name: name, storage: root)
            }
            let elsewhere = try await allArchives().filter { $0.listing.name == name }.compactMap(\.host)
            if let other = elsewhere.first {
                throw StackVaultError(.invalidConfiguration,
                    "the archive \(name) belongs to the host '\(other)', not '\(host)': add --host \(other) to use it")
            }
            throw StackVaultError(.invalidConfiguration,
                "\(root.description) holds no archive named \(name) (see `stackvault list --all-hosts`)")
        case (.none, true):
            let own = try await archives(ofHost: host, stack: stack)
            if let newest = own.first { return Location(host: host, name: newest.listing.name, storage: hostStorage) }
            throw try await missing(stack: stack, host: host)
        case (.some, true):
            throw StackVaultError(.invalidConfiguration, "name an archive or use --latest, not both")
        case (.none, false):
            throw StackVaultError(.invalidConfiguration, "name an archive (see `stackvault list`) or use --latest")
        }
    }

    /// The error for "`host` has no archive of `stack`", naming the stacks `host` does have archives of, the hosts
    /// that have one of `stack`, and unfiled ones.
    private func missing(stack: String?, host: String) async throws -> StackVaultError {
        let all = try await allArchives(stack: stack)
        let others = Array(Set(all.compactMap(\.host))).sorted()
        let unfiled = all.filter { $0.host == nil }
        var message = "the host '\(host)' has no archive" + (stack.map { " of the stack '\($0)'" } ?? "")
            + " in \(root.description)"
        if stack != nil {
            let own = Array(Set(try await archives(ofHost: host).map(\.listing.stack))).sorted()
            message += own.isEmpty
                ? " (it has no archives at all there)"
                : " (stacks it has archives of: " + own.joined(separator: ", ") + ")"
        }
        if !others.isEmpty {
            message += "; hosts that have: " + others.joined(separator: ", ")
                + " (restore from one with --host NAME)"
        }
        if let newest = unfiled.first {
            message += "; \(unfiled.count) archive(s) from before host folders are at the top of the target, "
                + "newest \(newest.listing.name) (name one to use it)"
        }
        return StackVaultError(.invalidConfiguration, message)
    }

    /// The folders of a local target directory whose names can be hosts (hidden ones excluded).
    static func hostFolders(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { name in
            var isDirectory: ObjCBool = false
            return ArchiveHost.isValid(name)
                && FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
    }
}
