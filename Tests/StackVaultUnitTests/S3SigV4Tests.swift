import Foundation
import StackVaultCore
import Testing

@testable import StackVaultStorage

/// AWS Signature Version 4 against the examples published in the S3 API reference ("Authenticating Requests:
/// Using the Authorization Header", examples GET Object, PUT Object, GET Bucket Lifecycle, Get Bucket (List
/// Objects)), all for bucket `examplebucket`, key AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z, us-east-1.
@Suite("S3 SigV4 signing")
struct S3SigV4Tests {
    static let credentials = S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                           secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let signer = SigV4Signer(credentials: credentials, region: "us-east-1")
    static let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    static let host = "examplebucket.s3.amazonaws.com"
    static let empty = SigV4Signer.emptyPayloadHash

    static func authorization(_ headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name == "authorization" }?.value
    }

    static func signature(_ headers: [(name: String, value: String)]) -> String? {
        authorization(headers).flatMap { $0.components(separatedBy: "Signature=").last }
    }

    @Test func timestampIsTheCompactUTCForm() {
        #expect(SigV4Signer.timestamp(Self.date) == "20130524T000000Z")
        #expect(SigV4Signer.timestamp(Date(timeIntervalSince1970: 951_782_400 + 3_723)) == "20000229T010203Z")
    }

    @Test func signingKeyOfTheExample() {
        let key = SigV4Signer.signingKey(secret: Self.credentials.secretAccessKey, day: "20130524",
                                         region: "us-east-1", service: "s3")
        #expect(SHA256.hex(key) == "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378")
    }

    /// Example: GET Object (a `Range` header, no body).
    @Test func getObjectExample() {
        let canonical = SigV4Signer.canonicalRequest(
            method: "GET", path: "/test.txt", query: [],
            headers: [("Host", Self.host), ("Range", "bytes=0-9"), ("x-amz-content-sha256", Self.empty),
                      ("x-amz-date", "20130524T000000Z")],
            payloadHash: Self.empty)
        #expect(canonical.request == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(SigV4Signer.stringToSign(canonicalRequest: canonical.request, timestamp: "20130524T000000Z",
                                         scope: "20130524/us-east-1/s3/aws4_request") == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)

        let headers = Self.signer.sign(method: "GET", path: "/test.txt",
                                       headers: [("host", Self.host), ("range", "bytes=0-9")],
                                       payloadHash: Self.empty, date: Self.date)
        #expect(Self.authorization(headers) == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
            + "s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(headers.contains { $0 == ("x-amz-date", "20130524T000000Z") })
        #expect(headers.contains { $0 == ("x-amz-content-sha256", Self.empty) })
    }

    /// Example: PUT Object (key `test$file.text`, a body, `Date` and `x-amz-storage-class` headers).
    @Test func putObjectExample() {
        let payloadHash = SHA256Hex.of("Welcome to Amazon S3.")
        #expect(payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let path = SigV4Signer.canonicalPath("test$file.text")
        #expect(path == "/test%24file.text")
        let headers: [(name: String, value: String)] = [
            ("Host", Self.host), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]
        let canonical = SigV4Signer.canonicalRequest(
            method: "PUT", path: path, query: [],
            headers: headers + [("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", payloadHash)],
            payloadHash: payloadHash)
        #expect(SHA256Hex.of(canonical.request) == "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d")
        let signed = Self.signer.sign(method: "PUT", path: path, headers: headers, payloadHash: payloadHash,
                                      date: Self.date)
        #expect(Self.authorization(signed) == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
            + "s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            + "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    /// Example: GET Bucket Lifecycle (a query parameter without a value signs as `lifecycle=`).
    @Test func getBucketLifecycleExample() {
        let signed = Self.signer.sign(method: "GET", path: "/", query: [("lifecycle", "")],
                                      headers: [("host", Self.host)], payloadHash: Self.empty, date: Self.date)
        #expect(Self.signature(signed) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    /// Example: Get Bucket (List Objects): parameters are sorted, whatever order they come in.
    @Test func listObjectsExample() {
        let signed = Self.signer.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                                      headers: [("host", Self.host)], payloadHash: Self.empty, date: Self.date)
        #expect(Self.signature(signed) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
        #expect(SigV4Signer.canonicalQueryString([("prefix", "J"), ("max-keys", "2")]) == "max-keys=2&prefix=J")
    }

    @Test func sessionTokenIsSentAndSigned() {
        var credentials = Self.credentials
        credentials.sessionToken = "token/with+chars="
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1")
        let signed = signer.sign(method: "GET", path: "/test.txt", headers: [("host", Self.host)],
                                 payloadHash: Self.empty, date: Self.date)
        #expect(signed.contains { $0 == ("x-amz-security-token", "token/with+chars=") })
        #expect(Self.authorization(signed)?.contains(
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") == true)
        #expect(Self.signature(signed) != Self.signature(Self.signer.sign(
            method: "GET", path: "/test.txt", headers: [("host", Self.host)], payloadHash: Self.empty,
            date: Self.date)))
    }

    @Test func headerValuesAreTrimmedAndFoldedAndRepeatsJoined() {
        let canonical = SigV4Signer.canonicalRequest(
            method: "get", path: "", query: [],
            headers: [("X-Amz-Meta-A", "  one   two  "), ("x-amz-meta-a", "three"), ("Host", "h")],
            payloadHash: "p")
        #expect(canonical.request == "GET\n/\n\nhost:h\nx-amz-meta-a:one two,three\n\nhost;x-amz-meta-a\np")
        #expect(canonical.signedHeaders == "host;x-amz-meta-a")
    }

    // MARK: - URI encoding of keys and query values

    @Test(arguments: [
        ("backup-app-20261127-120000.tar.zst", "/backup-app-20261127-120000.tar.zst"),
        ("my backups/a b.tar", "/my%20backups/a%20b.tar"),
        ("a+b=c&d", "/a%2Bb%3Dc%26d"),
        ("unicode/ünïcødé 日本.bin", "/unicode/%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%E6%97%A5%E6%9C%AC.bin"),
        ("reserved!*'();:@$,?#[]%", "/reserved%21%2A%27%28%29%3B%3A%40%24%2C%3F%23%5B%5D%25"),
        ("unreserved-._~AZaz09", "/unreserved-._~AZaz09"),
        ("dir//double/", "/dir//double/"),
    ])
    func objectKeysAreEncodedOnceKeepingSlashes(key: String, path: String) {
        #expect(SigV4Signer.canonicalPath(key) == path)
    }

    @Test func queryValuesEncodeSlashesAndSpacesAsPercent() {
        #expect(SigV4Signer.uriEncode("a/b c+d", encodeSlash: true) == "a%2Fb%20c%2Bd")
        #expect(SigV4Signer.canonicalQueryString([("uploadId", "x/y+z=="), ("partNumber", "2")])
            == "partNumber=2&uploadId=x%2Fy%2Bz%3D%3D")
        #expect(SigV4Signer.canonicalQueryString([("uploads", "")]) == "uploads=")
        #expect(SigV4Signer.canonicalQueryString([("prefix", "my backups/ü"), ("list-type", "2")])
            == "list-type=2&prefix=my%20backups%2F%C3%BC")
    }
}

/// Lower-case hex SHA-256 of a string (via the Core wrapper).
enum SHA256Hex {
    static func of(_ text: String) -> String { SHA256.hash(text).hex }
}
