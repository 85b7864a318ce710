import StackVaultCore
import Foundation
import Logging

/// How a file is cut into parts for a multipart upload, within S3's limits: parts of 5 MiB to 5 GiB (the last one
/// may be smaller), at most 10,000 of them (fewer where the provider says so: `S3_MAX_PARTS`), objects up to
/// 5 TiB. Limits from the S3 user guide, "Amazon S3 multipart upload limits".
public struct S3PartPlan: Sendable, Equatable {
    public static let minimumPartSize: Int64 = 5 << 20
    public static let maximumPartSize: Int64 = 5 << 30
    public static let maximumPartCount = 10_000
    public static let maximumObjectSize: Int64 = 5 << 40

    public let fileSize: Int64
    public let partSize: Int64
    public let partCount: Int

    /// The largest object `maxParts` parts of at most 5 GiB can hold (and never above 5 TiB).
    public static func largestObject(maxParts: Int) -> Int64 {
        min(maximumObjectSize, Int64(max(1, maxParts)) * maximumPartSize)
    }

    /// The part size is `max(preferred, ceil(size / maxParts))`, rounded up to a whole MiB and at least 5 MiB.
    ///
    /// - Throws: `StackVaultError(.storage)` when the file is larger than `maxParts` parts of 5 GiB (or 5 TiB) can
    ///   hold, naming `S3_MAX_PARTS`; nothing has been uploaded then.
    public init(fileSize: Int64, preferredPartSize: Int64 = S3Configuration.defaultPartSize,
                maxParts: Int = S3PartPlan.maximumPartCount) throws {
        let maxParts = min(max(1, maxParts), Self.maximumPartCount)
        guard fileSize <= Self.maximumObjectSize else {
            throw StackVaultError(.storage,
                                  "the archive is \(fileSize) bytes, more than the 5 TiB an S3 object may hold")
        }
        let largest = Self.largestObject(maxParts: maxParts)
        guard fileSize <= largest else {
            throw StackVaultError(.storage,
                "the archive is \(fileSize) bytes, more than \(maxParts) parts (S3_MAX_PARTS) of at most 5 GiB can "
                    + "hold (\(largest) bytes): raise S3_MAX_PARTS if the provider allows more parts, or make the "
                    + "archive smaller; nothing was uploaded")
        }
        let mebibyte: Int64 = 1 << 20
        let needed = (fileSize + Int64(maxParts) - 1) / Int64(maxParts)
        var size = max(preferredPartSize, needed, Self.minimumPartSize)
        size = (size + mebibyte - 1) / mebibyte * mebibyte
        size = min(size, Self.maximumPartSize)
        self.fileSize = fileSize
        self.partSize = size
        self.partCount = max(1, Int((fileSize + size - 1) / size))
    }

    /// Offset and length of part `number` (1-based).
    public func range(ofPart number: Int) -> (offset: Int64, length: Int64) {
        let offset = Int64(number - 1) * partSize
        return (offset, min(partSize, fileSize - offset))
    }
}

/// One uploaded part, as CompleteMultipartUpload lists it.
struct S3CompletedPart: Sendable, Equatable {
    var number: Int
    var etag: String
    /// The part's `x-amz-checksum-sha256` (base64), listed as `ChecksumSHA256` when checksums are on.
    var checksumSHA256: String? = nil
}

extension S3Backend {
    /// Uploads `file` as `key` in parts, `configuration.concurrency` at a time, each streamed from the file at its
    /// offset and signed with its SHA-256 (plus its checksum header); aborts the upload on any failure. `progress`
    /// is told each part's length once the server accepted it.
    func uploadMultipart(_ file: S3SourceFile, key: String, name: String, progress: ProgressReporter? = nil)
        async throws
    {
        let plan = try S3PartPlan(fileSize: file.size, preferredPartSize: configuration.partSize,
                                  maxParts: configuration.maxParts)
        let concurrency = max(1, min(configuration.concurrency, plan.partCount))
        let summary = "S3: uploading \(name) (\(file.size) bytes) to \(description) in \(plan.partCount) part(s) "
            + "of \(plan.partSize >> 20) MiB, \(concurrency) at a time"
        logger.info("\(summary)")

        let uploadID = try await createMultipartUpload(key: key, name: name)
        do {
            let started = ContinuousClock.now
            let parts = try await uploadParts(file, plan: plan, concurrency: concurrency, key: key, name: name,
                                              uploadID: uploadID, progress: progress)
            let uploaded = ContinuousClock.now
            try await completeMultipartUpload(key: key, name: name, uploadID: uploadID, parts: parts)
            logger.debug(
                "S3: \(name): parts uploaded in \(uploaded - started), completed in \(ContinuousClock.now - uploaded)")
        } catch {
            await abortMultipartUpload(key: key, name: name, uploadID: uploadID, reason: error)
            throw error
        }
    }

    func createMultipartUpload(key: String, name: String) async throws -> String {
        let operation = "starting the multipart upload of \(name) to \(description)"
        var headers = configuration.objectHeaders + [("content-type", "application/octet-stream")]
        if checksum.current == .sha256 { headers.append(("x-amz-checksum-algorithm", "SHA256")) }
        let response = try await client.send(
            S3Client.Unsigned(method: "POST", key: key, query: [("uploads", "")], headers: headers),
            operation: operation)
        guard let root = S3XML.parse(response.body), let uploadID = root.value("UploadId"), !uploadID.isEmpty else {
            throw StackVaultError(.storage, "\(operation) failed: the server's answer names no UploadId: "
                + String(response.bodyText.prefix(300)))
        }
        return uploadID
    }

    /// Uploads every part with at most `concurrency` in flight; on the first failure the others are cancelled.
    func uploadParts(
        _ file: S3SourceFile,
        plan: S3PartPlan,
        concurrency: Int,
        key: String,
        name: String,
        uploadID: String,
        progress: ProgressReporter? = nil
    ) async throws -> [S3CompletedPart] {
        try await withThrowingTaskGroup(of: S3CompletedPart.self) { group in
            var parts: [S3CompletedPart] = []
            parts.reserveCapacity(plan.partCount)
            var next = 1
            while next <= plan.partCount && next <= concurrency {
                let number = next
                group.addTask { try await uploadPart(file, number: number, plan: plan, key: key, name: name,
                                                     uploadID: uploadID) }
                next += 1
            }
            do {
                while let part = try await group.next() {
                    parts.append(part)
                    progress?.add(plan.range(ofPart: part.number).length)
                    logger.debug("S3: \(name): part \(part.number) of \(plan.partCount) uploaded")
                    if next <= plan.partCount {
                        let number = next
                        group.addTask { try await uploadPart(file, number: number, plan: plan, key: key, name: name,
                                                             uploadID: uploadID) }
                        next += 1
                    }
                }
            } catch {
                group.cancelAll()
                throw error
            }
            return parts.sorted { $0.number < $1.number }
        }
    }

    /// Hashes part `number` from the file, then sends it (re-reading the file on every attempt).
    func uploadPart(
        _ file: S3SourceFile,
        number: Int,
        plan: S3PartPlan,
        key: String,
        name: String,
        uploadID: String
    ) async throws -> S3CompletedPart {
        let (offset, length) = plan.range(ofPart: number)
        let mode = checksum.current
        let md5 = configuration.wantsMD5(mode)
        let digests = try await runBlocking { flag in
            try file.digests(offset: offset, length: length, md5: md5, cancellation: flag)
        }
        let operation = "uploading part \(number) of \(plan.partCount) of \(name) to \(description)"
        // The one retry inside the backend: a part that fails in passing is sent again on its own, since retrying
        // the whole `store` (RetryingBackend) would send every other part of a possibly huge archive again.
        let response = try await configuration.retry.run(operation, logger: logger) { _ in
            try await client.send(S3Client.Unsigned(
                method: "PUT", key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)],
                headers: digests.headers(mode), body: { file.body(offset: offset, length: length) },
                payloadHash: digests.sha256Hex, timeoutSeconds: nil), operation: operation)
        }
        file.dropFromCache(offset: offset, length: length)
        guard let etag = response.head.headers["etag"], !etag.isEmpty else {
            throw StackVaultError(.storage, "\(operation) failed: the server's answer has no ETag")
        }
        return S3CompletedPart(number: number, etag: etag,
                               checksumSHA256: mode == .sha256 ? digests.sha256Base64 : nil)
    }

    func completeMultipartUpload(
        key: String,
        name: String,
        uploadID: String,
        parts: [S3CompletedPart]
    ) async throws {
        let operation = "completing the multipart upload of \(name) to \(description)"
        let document = Self.completionDocument(parts)
        let payloadHash = SHA256.hash(document).hex
        let md5 = Data(MD5.hash(document)).base64EncodedString()
        let response = try await client.send(S3Client.Unsigned(
            method: "POST", key: key, query: [("uploadId", uploadID)],
            headers: [("content-type", "application/xml"), ("content-md5", md5)], body: { .bytes(document) },
            payloadHash: payloadHash, timeoutSeconds: 900), operation: operation)
        // S3 may answer 200 and still report an error in the body (the connection stays open while it assembles
        // the parts).
        if let root = S3XML.parse(response.body), root.name == "Error" {
            throw S3ErrorResponse(status: 500, headers: response.head.headers, body: response.body)
                .error(operation: operation, configuration: configuration)
        }
    }

    /// Best effort: removes the parts of a failed upload so they neither cost money nor linger. Runs in its own
    /// task, so a cancelled backup still aborts. Failures are logged, never thrown.
    func abortMultipartUpload(key: String, name: String, uploadID: String, reason: any Error) async {
        let backend = self
        let task = Task {
            _ = try await backend.client.send(
                S3Client.Unsigned(method: "DELETE", key: key, query: [("uploadId", uploadID)], timeoutSeconds: 30),
                operation: "aborting the multipart upload of \(name)", accepting: [404])
        }
        do {
            try await task.value
            logger.warning("S3: \(name): upload failed, multipart upload aborted (no parts left behind): \(reason)")
        } catch {
            let message = "S3: \(name): upload failed, and aborting the multipart upload \(uploadID) failed too; "
                + "its parts may remain until a lifecycle rule removes them: \(error)"
            logger.error("\(message)")
        }
    }

    /// Lists the multipart uploads under this backend's prefix (ListMultipartUploads, paged by key and upload id
    /// markers) and aborts those of archive names begun more than `seconds` ago: parts of a run that died (SIGKILL,
    /// a reboot) mid-upload, which S3 keeps, and bills, until they are aborted.
    public func abortAbandonedUploads(olderThan seconds: Double) async throws -> [String] {
        let dates = S3DateParser()
        let cutoff = Date().addingTimeInterval(-seconds)
        var stale: [(key: String, uploadID: String, initiated: Date)] = []
        var markers: (key: String, upload: String)?
        await client.credentials.beginOperation()
        repeat {
            var query: [(name: String, value: String)] = [("uploads", ""), ("prefix", configuration.prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.upload)] }
            let response = try await client.send(S3Client.Unsigned(method: "GET", key: nil, query: query),
                                                 operation: "listing the multipart uploads in \(description)")
            guard let root = S3XML.parse(response.body), root.name == "ListMultipartUploadsResult" else {
                throw StackVaultError(.storage, "listing the multipart uploads in \(description) failed: the "
                    + "server's answer is not a ListMultipartUploadsResult: \(response.bodyText.prefix(300))")
            }
            for upload in root.children("Upload") {
                guard let key = upload.value("Key"), let id = upload.value("UploadId"),
                      let initiated = upload.value("Initiated").flatMap(dates.parse), initiated < cutoff,
                      key.hasPrefix(configuration.prefix),
                      ArchiveName.parse(String(key.dropFirst(configuration.prefix.count))) != nil
                else { continue }
                stale.append((key, id, initiated))
            }
            markers = nil
            if root.value("IsTruncated")?.lowercased() == "true", let key = root.value("NextKeyMarker"),
               let upload = root.value("NextUploadIdMarker"), !key.isEmpty
            {
                markers = (key, upload)
            }
        } while markers != nil
        var aborted: [String] = []
        for upload in stale {
            let name = String(upload.key.dropFirst(configuration.prefix.count))
            _ = try await client.send(
                S3Client.Unsigned(method: "DELETE", key: upload.key, query: [("uploadId", upload.uploadID)],
                                  timeoutSeconds: 30),
                operation: "aborting the abandoned multipart upload of \(name)", accepting: [404])
            logger.warning("S3: aborted the multipart upload of \(name) begun \(upload.initiated.formatted(.iso8601)) by a run that never finished it")
            aborted.append(name)
        }
        return aborted
    }

    /// `<CompleteMultipartUpload>` listing the parts in order.
    static func completionDocument(_ parts: [S3CompletedPart]) -> [UInt8] {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XML.escape(part.etag))</ETag>"
            if let checksum = part.checksumSHA256 { xml += "<ChecksumSHA256>\(S3XML.escape(checksum))</ChecksumSHA256>" }
            xml += "</Part>"
        }
        xml += "</CompleteMultipartUpload>"
        return Array(xml.utf8)
    }
}
