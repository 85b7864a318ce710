public import Foundation

/// Stack locks kept in the Docker daemon, which every StackVault container of a host shares (they need not share
/// a file system).
///
/// A lock is a container named `stackvault-lock.<stack>` that is created but never started: Docker creates a
/// container name atomically (a second create of the same name gets 409 Conflict), and removing a container by
/// id cannot remove a newer lock of the same name. Its labels (`org.stackvault.lock.*`) say who holds it and the
/// first lease expiry; renewals write the file `/stackvault-lease` into it (container labels cannot change).
///
/// The containers are made from `stackvault-lock:1`, an empty image (no files, no layers' worth of bytes) that
/// the store imports when missing, so a lock needs no registry and no other image.
public struct DockerLockStore: LockStore {
    public static let image = "stackvault-lock:1"
    public static let labelPrefix = "org.stackvault.lock"
    static let leasePath = "/stackvault-lease"
    static let journalPath = "/stackvault-journal"

    public let client: DockerClient
    private let http = HTTPClient()

    public init(client: DockerClient) {
        self.client = client
    }

    public func create(name: String, record: LockRecord) async throws -> String? {
        let body: [String: Any] = [
            "Image": Self.image, "Cmd": ["stackvault-lock-never-started"], "Labels": Self.labels(of: record),
            "NetworkDisabled": true, "HostConfig": ["NetworkMode": "none"],
        ]
        let json = Array(try JSONSerialization.data(withJSONObject: body))
        for attempt in 0..<2 {
            let response = try await send("POST", "/containers/create?name=\(percentEncode(name))", body: json,
                                          contentType: "application/json")
            switch response.status {
            case 201:
                guard let id = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["Id"]
                    as? String
                else { throw failure(response, doing: "create the lock container \(name)") }
                return id
            case 409:
                return nil
            case 404 where attempt == 0:
                try await importImage()  // the lock image is missing (first use, or someone removed it)
            default:
                throw failure(response, doing: "create the lock container \(name)")
            }
        }
        throw StackVaultError(.dockerAPI, "Docker could not create the lock container \(name): image \(Self.image) "
            + "is still missing after importing it")
    }

    public func read(name: String) async throws -> StoredLock? {
        let response = try await send("GET", "/containers/\(percentEncode(name))/json")
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw failure(response, doing: "inspect the lock container \(name)") }
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        let id = object["Id"] as? String ?? name
        let labels = (object["Config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
        guard let record = Self.record(from: labels) else {
            throw StackVaultError(.dockerAPI, "the container \(name) exists but is not a StackVault lock (its "
                + "\(Self.labelPrefix).* labels are missing); remove it: docker rm \(name)")
        }
        var expires = record.expiresAt
        let lease = try await send(
            "GET", "/containers/\(percentEncode(id))/archive?path=\(percentEncode(Self.leasePath))")
        if lease.status == 200, let renewed = Self.leaseExpiry(inTar: lease.body), renewed > expires {
            expires = renewed
        } else if lease.status != 200 && lease.status != 404 {
            throw failure(lease, doing: "read the lease of lock \(name)")
        }
        return StoredLock(id: id, record: record, expiresAt: expires)
    }

    public func renew(id: String, holder: String, until: Date) async throws -> Bool {
        let content = "stackvault-lease holder=\(holder) expires=\(until.formatted(.iso8601))\n"
        return try await writeFile(Self.leasePath, content, into: id, doing: "renew the lease of lock \(id.prefix(12))")
    }

    public func writeJournal(id: String, _ journal: StopJournal) async throws -> Bool {
        try await writeFile(Self.journalPath, journal.text, into: id,
                            doing: "record stopped containers in lock \(id.prefix(12))")
    }

    /// Writes the file `path` (in `/`) into the lock container `id`; false when the container is gone.
    private func writeFile(_ path: String, _ content: String, into id: String, doing what: String) async throws
        -> Bool
    {
        let tar = try Self.tar(name: String(path.dropFirst()), contents: Array(content.utf8))
        let response = try await send("PUT", "/containers/\(percentEncode(id))/archive?path=%2F", body: tar,
                                      contentType: "application/x-tar")
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw failure(response, doing: what)
        }
    }

    public func readJournal(id: String) async throws -> StopJournal? {
        let response = try await send(
            "GET", "/containers/\(percentEncode(id))/archive?path=\(percentEncode(Self.journalPath))")
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw failure(response, doing: "read the journal of lock \(id.prefix(12))") }
        return StopJournal(parsing: String(decoding: response.body, as: UTF8.self))
    }

    public func lockNames() async throws -> [String] {
        let filters = percentEncode("{\"label\":[\"\(Self.labelPrefix).stack\"]}")
        let response = try await send("GET", "/containers/json?all=1&filters=\(filters)")
        guard response.status == 200 else { throw failure(response, doing: "list the stack locks") }
        let rows = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return rows.compactMap { ($0["Names"] as? [String])?.first }.map(\.trimmingLeadingSlash)
    }

    public func remove(id: String) async throws {
        let response = try await send("DELETE", "/containers/\(percentEncode(id))?force=1&v=1")
        guard response.status == 204 || response.status == 404 else {
            throw failure(response, doing: "remove the lock container \(id.prefix(12))")
        }
    }

    public func isContainerRunning(_ id: String) async throws -> Bool? {
        let response = try await send("GET", "/containers/\(percentEncode(id))/json")
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw failure(response, doing: "inspect container \(id.prefix(12))") }
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        return (object["State"] as? [String: Any])?["Running"] as? Bool ?? false
    }

    /// Imports the empty lock image (`docker import` of an empty tar).
    func importImage() async throws {
        let changes = percentEncode("LABEL \(Self.labelPrefix).image=1")
        let (repository, tag) = (Self.image.split(separator: ":")[0], Self.image.split(separator: ":")[1])
        let response = try await send(
            "POST", "/images/create?fromSrc=-&repo=\(repository)&tag=\(tag)&changes=\(changes)",
            body: [UInt8](repeating: 0, count: 1024), contentType: "application/x-tar", timeout: 120)
        // Errors of an import come inside a 200 response's JSON stream.
        guard response.status == 200, !response.bodyText.contains("\"error") else {
            throw failure(response, doing: "import the empty image \(Self.image) for stack locks")
        }
    }

    // MARK: - Labels and lease

    static func labels(of record: LockRecord) -> [String: String] {
        let labels = [
            labelPrefix: "1",
            "\(labelPrefix).stack": record.stack,
            "\(labelPrefix).acquired": record.acquiredAt.formatted(.iso8601),
            "\(labelPrefix).expires": record.expiresAt.formatted(.iso8601),
            "\(labelPrefix).purpose": record.purpose,
        ]
        return labels.merging(record.holder.labels(prefix: "\(labelPrefix).holder")) { $1 }
    }

    static func record(from labels: [String: String]) -> LockRecord? {
        func date(_ key: String) -> Date? {
            labels["\(labelPrefix).\(key)"].flatMap { try? Date($0, strategy: .iso8601) }
        }
        guard let stack = labels["\(labelPrefix).stack"],
              let holder = HolderIdentity(labels: labels, prefix: "\(labelPrefix).holder"),
              let acquired = date("acquired"), let expires = date("expires")
        else { return nil }
        return LockRecord(
            stack: stack, holder: holder, acquiredAt: acquired, expiresAt: expires,
            purpose: labels["\(labelPrefix).purpose"] ?? "backup")
    }

    /// The expiry written by `renew`, found in the tar Docker returns for the lease file.
    static func leaseExpiry(inTar bytes: [UInt8]) -> Date? {
        let text = String(decoding: bytes.map { $0 == 0 ? UInt8(ascii: "\n") : $0 }, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("stackvault-lease ") {
            for field in line.split(separator: " ") where field.hasPrefix("expires=") {
                return try? Date(String(field.dropFirst("expires=".count)), strategy: .iso8601)
            }
        }
        return nil
    }

    /// A tar stream holding one regular file (mode 0644, owner root, modified now).
    static func tar(name: String, contents: [UInt8]) throws -> [UInt8] {
        let collector = CollectingSink()
        try TarStream.writeSingleFile(named: name, size: Int64(contents.count), mode: 0o644, uid: 0, gid: 0,
                                      into: collector) { sink in try contents.withUnsafeBytes { try sink.write($0) } }
        return collector.bytes
    }

    // MARK: - Plumbing

    private func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil,
                      timeout: Int = 30) async throws -> HTTPResponse {
        let version = try await client.apiVersion()
        let endpoint = client.endpoint
        let request = HTTPRequest(
            method: method, url: "\(endpoint.baseURL)/v\(version)\(path)",
            headers: contentType.map { [(name: "Content-Type", value: $0)] } ?? [],
            body: body.map { .bytes($0) } ?? .none, unixSocketPath: endpoint.socketPath, timeoutSeconds: timeout)
        do {
            return try await http.send(request)
        } catch let error as HTTPTransportError {
            throw StackVaultError(.dockerUnreachable, "cannot connect to the Docker daemon at \(endpoint) to manage "
                + "stack locks: \(error.message)", isTransient: error.isTransient)
        }
    }

    private func failure(_ response: HTTPResponse, doing what: String) -> StackVaultError {
        let message = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["message"]
            as? String ?? response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines)
        let reason = message.isEmpty ? "HTTP \(response.status)" : message
        return StackVaultError(.dockerAPI, "Docker could not \(what): \(reason)", isTransient: response.status >= 500)
    }
}
