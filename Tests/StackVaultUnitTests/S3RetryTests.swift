import Foundation
import Logging
@testable import StackVaultCore
import Synchronization
import Testing

@testable import StackVaultStorage

@Suite("S3 retries, part sizing and answers")
struct S3RetryTests {
    static let configuration = S3Configuration(
        bucket: "backups", prefix: "stack", endpoint: S3Endpoint(scheme: "http", host: "127.0.0.1", port: 9000),
        credentials: S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "never-shown-secret"))

    static func errorDocument(_ code: String, _ message: String, extra: String = "") -> [UInt8] {
        Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>\(code)</Code><Message>\(message)</Message>\(extra)\
            <RequestId>4442587FB7D0A2F9</RequestId></Error>
            """.utf8)
    }

    // MARK: - classification

    @Test(arguments: [
        (503, "SlowDown"), (500, "InternalError"), (400, "RequestTimeout"), (429, nil), (502, nil), (504, nil),
        (503, nil), (500, nil), (400, "BadDigest"), (400, "XAmzContentSHA256Mismatch"), (409, "OperationAborted"),
    ] as [(Int, String?)])
    func transientAnswers(status: Int, code: String?) {
        #expect(S3ErrorResponse.isTransient(status: status, code: code))
    }

    @Test(arguments: [
        (403, "AccessDenied"), (403, "SignatureDoesNotMatch"), (403, "InvalidAccessKeyId"), (404, "NoSuchBucket"),
        (404, "NoSuchKey"), (400, "AuthorizationHeaderMalformed"), (301, "PermanentRedirect"), (403, nil), (404, nil),
        (400, nil), (403, "RequestTimeTooSkewed"), (400, "ExpiredToken"), (500, "AccessDenied"),
    ] as [(Int, String?)])
    func permanentAnswers(status: Int, code: String?) {
        #expect(!S3ErrorResponse.isTransient(status: status, code: code))
    }

    @Test func transportErrors() {
        #expect(RetryPolicy.isTransient(
            HTTPTransportError(kind: .couldNotConnect, message: "refused", curlCode: 7)))
        #expect(RetryPolicy.isTransient(HTTPTransportError(kind: .timedOut, message: "timeout", curlCode: 28)))
        #expect(RetryPolicy.isTransient(HTTPTransportError(kind: .other, message: "reset", curlCode: 56)))
        #expect(RetryPolicy.isTransient(HTTPTransportError(kind: .other, message: "empty reply", curlCode: 52)))
        #expect(!RetryPolicy.isTransient(HTTPTransportError(kind: .other, message: "bad url", curlCode: 3)))
        #expect(!RetryPolicy.isTransient(HTTPTransportError(kind: .cancelled, message: "", curlCode: 42)))
        #expect(!RetryPolicy.isTransient(StackVaultError(.cancelled, "cancelled", isTransient: true)))
        #expect(RetryPolicy.isTransient(StackVaultError(.storage, "503", isTransient: true)))
        #expect(!RetryPolicy.isTransient(CancellationError()))
    }

    @Test func backoffGrowsIsCappedAndJittered() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: .milliseconds(500), maxDelay: .seconds(8))
        #expect(policy.delay(afterAttempt: 1, random: 1) == .milliseconds(500))
        #expect(policy.delay(afterAttempt: 1, random: 0) == .milliseconds(250))
        #expect(policy.delay(afterAttempt: 2, random: 1) == .seconds(1))
        #expect(policy.delay(afterAttempt: 4, random: 1) == .seconds(4))
        #expect(policy.delay(afterAttempt: 6, random: 1) == .seconds(8))
        #expect(policy.delay(afterAttempt: 60, random: 0) == .seconds(4))
        let samples = (0..<50).map { _ in policy.delay(afterAttempt: 3, random: .random(in: 0...1)) }
        #expect(samples.allSatisfy { $0 >= .seconds(1) && $0 <= .seconds(2) })
        #expect(Set(samples).count > 1, "jitter spreads the waits")
    }

    @Test func retriesTransientFailuresThenSucceeds() async throws {
        let calls = Mutex(0)
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))
        let result = try await policy.run("test", logger: Logger(label: "test")) { attempt in
            calls.withLock { $0 += 1 }
            if attempt < 3 { throw StackVaultError(.storage, "503 SlowDown", isTransient: true) }
            return attempt
        }
        #expect(result == 3)
        #expect(calls.withLock { $0 } == 3)
    }

    @Test func permanentFailuresAreNotRetriedAndExhaustionIsReported() async throws {
        let calls = Mutex(0)
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))
        await #expect(throws: StackVaultError.self) {
            try await policy.run("test", logger: Logger(label: "test")) { _ -> Int in
                calls.withLock { $0 += 1 }
                throw StackVaultError(.storage, "403 AccessDenied")
            }
        }
        #expect(calls.withLock { $0 } == 1)

        calls.withLock { $0 = 0 }
        do {
            _ = try await policy.run("test", logger: Logger(label: "test")) { _ -> Int in
                calls.withLock { $0 += 1 }
                throw StackVaultError(.storage, "connection refused", isTransient: true)
            }
            Issue.record("expected an error")
        } catch let error as StackVaultError {
            #expect(error.message.contains("gave up after 4 attempts"))
            #expect(error.isTransient, "the run may still be retried later")
        }
        #expect(calls.withLock { $0 } == 4)
    }

    // MARK: - part sizing

    @Test func partSizing() throws {
        let forty = try S3PartPlan(fileSize: 40 << 20, preferredPartSize: 8 << 20)
        #expect(forty.partSize == 8 << 20 && forty.partCount == 5)
        #expect(forty.range(ofPart: 5) == (32 << 20, 8 << 20))

        let uneven = try S3PartPlan(fileSize: (20 << 20) + 1)
        #expect(uneven.partCount == 3)
        #expect(uneven.range(ofPart: 3) == (16 << 20, (4 << 20) + 1))

        let small = try S3PartPlan(fileSize: 100, preferredPartSize: 1 << 20)
        #expect(small.partSize == S3PartPlan.minimumPartSize, "never below 5 MiB")
        #expect(small.partCount == 1)

        let odd = try S3PartPlan(fileSize: 100 << 20, preferredPartSize: (6 << 20) + 1)
        #expect(odd.partSize == 7 << 20, "rounded up to whole MiB")
    }

    @Test func aTebibyteFileStaysWithin10000Parts() throws {
        let tebibyte: Int64 = 1 << 40
        let plan = try S3PartPlan(fileSize: tebibyte)
        #expect(plan.partCount <= 10_000)
        #expect(plan.partSize == 105 << 20, "ceil(1 TiB / 10,000) = 104.86 MiB, rounded up to 105 MiB")
        #expect(plan.partSize % (1 << 20) == 0)
        #expect(Int64(plan.partCount - 1) * plan.partSize < tebibyte)
        let last = plan.range(ofPart: plan.partCount)
        #expect(last.offset + last.length == tebibyte)

        let largest = try S3PartPlan(fileSize: S3PartPlan.maximumObjectSize)
        #expect(largest.partCount <= 10_000 && largest.partSize <= S3PartPlan.maximumPartSize)
        #expect(throws: StackVaultError.self) { try S3PartPlan(fileSize: S3PartPlan.maximumObjectSize + 1) }
    }

    // MARK: - error answers

    @Test func errorAnswersSayWhatToFix() {
        func message(_ status: Int, _ code: String, extra: String = "", headers: [String: String] = [:]) -> String {
            let response = S3ErrorResponse(status: status, headers: headers,
                                           body: Self.errorDocument(code, "The &quot;message&quot;", extra: extra))
            return "\(response.error(operation: "uploading x", configuration: Self.configuration))"
        }
        let signature = message(403, "SignatureDoesNotMatch")
        #expect(signature.contains("AWS_SECRET_ACCESS_KEY") && signature.contains("SignatureDoesNotMatch"))
        #expect(signature.contains("uploading x failed"))
        #expect(signature.contains("The \"message\"") && signature.contains("4442587FB7D0A2F9"))
        #expect(!signature.contains("never-shown-secret"))
        #expect(message(403, "InvalidAccessKeyId").contains("AWS_ACCESS_KEY_ID"))
        #expect(message(403, "AccessDenied").contains("s3:PutObject"))
        let bucket = message(404, "NoSuchBucket")
        #expect(bucket.contains("bucket 'backups' does not exist") && bucket.contains("http://127.0.0.1:9000"))
        #expect(message(400, "AuthorizationHeaderMalformed", extra: "<Region>eu-west-1</Region>")
            .contains("AWS_DEFAULT_REGION=eu-west-1"))
        #expect(message(301, "PermanentRedirect", headers: ["x-amz-bucket-region": "ap-south-1"])
            .contains("AWS_DEFAULT_REGION=ap-south-1"))
        #expect(message(403, "RequestTimeTooSkewed").contains("clock"))
        #expect(message(400, "ExpiredToken").contains("AWS_SESSION_TOKEN"))
    }

    @Test func answersWithoutABody() {
        let head403 = S3ErrorResponse(status: 403, headers: [:], body: [])
        #expect(head403.code == nil && !head403.isTransient)
        #expect("\(head403.error(operation: "checking x", configuration: Self.configuration))"
            .contains("AWS_SECRET_ACCESS_KEY"))
        let slow = S3ErrorResponse(status: 503, headers: [:], body: Self.errorDocument("SlowDown", "Reduce your rate"))
        #expect(slow.isTransient)
        #expect(slow.error(operation: "x", configuration: Self.configuration).isTransient)
        let garbage = S3ErrorResponse(status: 502, headers: [:], body: Array("<html>Bad Gateway</html>".utf8))
        #expect(garbage.code == nil && garbage.isTransient)
    }

    // MARK: - XML

    @Test func listResultsAreParsed() throws {
        let document = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>backups</Name><Prefix>stack/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
              <Contents><Key>stack/a &amp; b &lt;1&gt;.tar</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
                <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size></Contents>
              <Contents><Key>stack/&#252;&#x6E;</Key><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
              <CommonPrefixes/>
            </ListBucketResult>
            """
        let root = try #require(S3XML.parse(Array(document.utf8)))
        #expect(root.name == "ListBucketResult")
        #expect(root.value("IsTruncated") == "true")
        #expect(root.value("NextContinuationToken") == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        let contents = root.children("Contents")
        #expect(contents.map { $0.value("Key") } == ["stack/a & b <1>.tar", "stack/ün"])
        #expect(contents.first?.value("ETag") == "\"fba9dede5f27731c9771645a39863328\"")
        #expect(contents.first?.value("Size") == "434234")
        #expect(S3DateParser().parse("2009-10-12T17:50:30.000Z") == Date(timeIntervalSince1970: 1_255_369_830))
        #expect(S3DateParser().parse("2009-10-12T17:50:30Z") == Date(timeIntervalSince1970: 1_255_369_830))
        #expect(S3Backend.httpDate("Mon, 12 Oct 2009 17:50:30 GMT") == Date(timeIntervalSince1970: 1_255_369_830))
    }

    @Test func completionDocumentListsPartsInOrderEscaped() {
        let document = S3Backend.completionDocument([.init(number: 1, etag: "\"a1\""), .init(number: 2, etag: "b&2")])
        let text = String(decoding: document, as: UTF8.self)
        #expect(text.contains("<Part><PartNumber>1</PartNumber><ETag>&quot;a1&quot;</ETag></Part>"
            + "<Part><PartNumber>2</PartNumber><ETag>b&amp;2</ETag></Part>"))
        let parsed = S3XML.parse(document)
        #expect(parsed?.children("Part").compactMap { $0.value("ETag") } == ["\"a1\"", "b&2"])
    }

    @Test func malformedXMLGivesNothingOrAPartialTree() {
        #expect(S3XML.parse(Array("not xml".utf8)) == nil)
        #expect(S3XML.parse([UInt8]()) == nil)
        #expect(S3XML.parse(Array("<Error><Code>SlowDown</Code>".utf8))?.value("Code") == "SlowDown")
    }

    @Test func md5OfKnownVectors() {
        // RFC 1321 test suite.
        #expect(Data(MD5.hash(Array("".utf8))).base64EncodedString() == "1B2M2Y8AsgTpgAmY7PhCfg==")
        #expect(MD5.hash(Array("abc".utf8)).map { String(format: "%02x", $0) }.joined()
            == "900150983cd24fb0d6963f7d28e17f72")
        var incremental = MD5()
        incremental.update(bytes: Array("message ".utf8))
        incremental.update(bytes: Array("digest".utf8))
        #expect(incremental.finalize().map { String(format: "%02x", $0) }.joined()
            == "f96b697d7cb7938d525a2f31aaf161d0")
    }
}
