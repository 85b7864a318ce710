@testable import StackVaultCore
import Testing

@Suite struct DockerClientUnitTests {
    func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let n = UInt32(payload.count)
        return [stream, 0, 0, 0, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
    }

    @Test(arguments: [1, 2, 3, 5, 8, 9, 64, 100_000])
    func demultiplexesWhateverTheChunking(chunk: Int) throws {
        let out = CollectingSink(), err = CollectingSink()
        let demuxer = DockerStreamDemuxer(stdout: out, stderr: err)
        let stream = frame(1, "hello ") + frame(2, "warning: x\n") + frame(1, "world") + frame(1, "")
            + frame(2, "done")
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + chunk)
            try stream[offset..<end].withUnsafeBytes { try demuxer.write($0) }
            offset = end
        }
        #expect(String(decoding: out.bytes, as: UTF8.self) == "hello world")
        #expect(String(decoding: err.bytes, as: UTF8.self) == "warning: x\ndone")
        #expect(demuxer.isAtFrameBoundary)
    }

    @Test func aTruncatedFrameIsNoticed() throws {
        let demuxer = DockerStreamDemuxer(stdout: CollectingSink(), stderr: CollectingSink())
        try Array(frame(1, "abcdef").prefix(10)).withUnsafeBytes { try demuxer.write($0) }
        #expect(!demuxer.isAtFrameBoundary)
        #expect(throws: StackVaultError.self) {
            try [UInt8]([7, 1, 0, 0, 0, 0, 0, 1, 65]).withUnsafeBytes {
                try DockerStreamDemuxer(stdout: CollectingSink(), stderr: CollectingSink()).write($0)
            }
        }
    }

    @Test func endpointsFromDockerHost() throws {
        let byDefault = try DockerEndpoint(dockerHost: nil)
        #expect(byDefault.socketPath == "/var/run/docker.sock")
        let unix = try DockerEndpoint(dockerHost: "unix:///run/user/1000/docker.sock")
        #expect(unix.socketPath == "/run/user/1000/docker.sock")
        let tcp = try DockerEndpoint(dockerHost: "tcp://10.0.0.5:2375")
        #expect(tcp.socketPath == nil)
        #expect(tcp.baseURL == "http://10.0.0.5:2375")
        #expect(try DockerEndpoint(dockerHost: "tcp://dockerhost").baseURL == "http://dockerhost:2375")
        let error = #expect(throws: StackVaultError.self) { try DockerEndpoint(dockerHost: "ssh://me@host") }
        #expect(error?.message.contains("ssh://me@host") == true)
        #expect(throws: StackVaultError.self) { try DockerEndpoint(dockerHost: "unix://relative.sock") }
    }

    @Test func apiVersionNegotiation() throws {
        #expect(try DockerClient.negotiate(announced: "1.41") == "1.41")
        #expect(try DockerClient.negotiate(announced: "1.45") == "1.45")
        #expect(try DockerClient.negotiate(announced: "1.51") == "1.47")
        #expect(throws: StackVaultError.self) { try DockerClient.negotiate(announced: "1.40") }
    }

    @Test func percentEncoding() {
        #expect(percentEncode("/data/my dir/ü") == "%2Fdata%2Fmy%20dir%2F%C3%BC")
        #expect(percentEncode("{\"label\":[\"a=b\"]}") == "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D")
    }

    @Test func archiveNamesRoundTrip() throws {
        let date = try #require(ISO8601DateFormatter().date(from: "2026-02-03T04:05:06Z"))
        let name = ArchiveName.make(stack: "my-app_1", date: date)
        #expect(name.hasPrefix("backup-my-app_1-20260203-040506-"))
        #expect(name.hasSuffix(".tar.zst"))
        let parsed = try #require(ArchiveName.parse(name))
        #expect(parsed.stack == "my-app_1")
        #expect(parsed.date == date)
        #expect(ArchiveName.parse("backup-x-20260203-040506-nope.tar.zst") == nil)
        #expect(ArchiveName.parse("notes.txt") == nil)
        let encrypted = ArchiveName.make(stack: "my-app_1", date: date, encrypted: true)
        #expect(encrypted.hasSuffix(".tar.zst.age") && ArchiveName.isEncrypted(encrypted) && !ArchiveName.isEncrypted(name))
        #expect(ArchiveName.parse(encrypted)?.stack == "my-app_1")
        #expect(ArchiveName.parse(encrypted)?.date == date)
        #expect(ArchiveName.parse("backup-x-20260203-040506-\(UUID().uuidString).tar.age") == nil)
    }

    @Test func redaction() {
        #expect(Redaction.redactURL("s3://AKIA:secret@bucket/p?x=1") == "s3://AKIA:***@bucket/p?***")
        #expect(Redaction.redactURL("file:///var/backups") == "file:///var/backups")
    }
}

import Foundation
