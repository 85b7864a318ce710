import Foundation
@testable import StackVaultCore
import StackVaultTestKit
import Testing

/// `DirectoryHelper.read` over the side channel and its fallback to the attach stream (issue #13), with a fake
/// engine whose "helper" is a thread of this process playing `stackvault helper tar-create [--connect @name]`.
@Suite struct DirectoryHelperChannelTests {
    static let tar = Array((0..<(1 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 7) })

    func reader(_ docker: FakeDockerEngine, channel: HelperChannel? = .sideChannel(networkMode: nil))
        -> DirectoryHelper
    {
        let container = ContainerDetails(id: "id-app", name: "app-files-1", image: "app", isRunning: false,
                                         labels: [:], environment: [:], mounts: [])
        return DirectoryHelper(docker: docker, image: .override(image: "stackvault:test"), container: container,
                               place: "service files (container app-files-1) of stack app", channel: channel)
    }

    /// The summary line the helper ends its stderr with.
    static func summary(tarBytes: Int) -> String {
        #"{"operation":"tar-create","path":"/data","tarBytes":\#(tarBytes),"dataBytes":1,"skippedSockets":0}"# + "\n"
    }

    /// The side channel named in `spec` (`--connect @name`) and its token, if the helper was given one.
    static func sideChannel(_ spec: ContainerCreateSpec) -> (name: String, token: String)? {
        guard let index = spec.command.firstIndex(of: "--connect") else { return nil }
        let token = spec.environment.first { $0.hasPrefix(HelperSideChannel.tokenVariable + "=") }
            .map { String($0.dropFirst(HelperSideChannel.tokenVariable.count + 1)) } ?? ""
        return (spec.command[index + 1], token)
    }

    /// A helper that connects and sends `bytes` (or writes them to stdout without `--connect`), then says it
    /// wrote `claimed` bytes and exits with `code`.
    static func helper(sending bytes: [UInt8] = tar, claimed: Int = tar.count, code: Int = 0)
        -> FakeDockerEngine.HelperRunner
    {
        { spec, stdout, stderr in
            if let (name, token) = sideChannel(spec) {
                let fd = try HelperSideChannel.connect(to: name, token: token)
                defer { close(fd) }
                try bytes.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {  // MSG_NOSIGNAL: the real helper ignores SIGPIPE, a test cannot
                        let sent = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                        guard sent > 0 else { throw StackVaultError(.io, "the side channel was closed") }
                        offset += sent
                    }
                }
            } else {
                try bytes.withUnsafeBytes { try stdout.write($0) }
            }
            try Array(summary(tarBytes: claimed).utf8).withUnsafeBytes { try stderr.write($0) }
            return code
        }
    }

    @Test func theTarComesOverTheSideChannelAndStdoutIsNotUsed() async throws {
        let docker = FakeDockerEngine()
        docker.onRunHelper(Self.helper())
        let sink = CollectingSink()
        let summary = try await reader(docker).read("/data", into: sink)
        #expect(sink.bytes == Self.tar)
        #expect(summary.attachReason == nil && summary.tarBytes == Int64(Self.tar.count))
        let spec = try #require(docker.created.first)
        #expect(docker.created.count == 1)
        #expect(spec.command.starts(with: ["helper", "tar-create", "/data", "--connect"]))
        let mode = spec.networkMode ?? ""
        #expect(!spec.networkDisabled && (mode == "host" || mode.hasPrefix("container:")))
        #expect(spec.capDrop == ["ALL"] && spec.capAdd == DirectoryHelper.readCapabilities)
        #expect(spec.volumesFrom == ["id-app:ro"])
    }

    @Test func aHelperThatCannotReachTheSocketIsRunAgainOnTheAttachStream() async throws {
        let docker = FakeDockerEngine()
        let attach = Self.helper()
        docker.onRunHelper { spec, stdout, stderr in
            guard Self.sideChannel(spec) != nil else { return try attach(spec, stdout, stderr) }
            try Array("stackvault: cannot connect to StackVault's side channel: Connection refused\n".utf8)
                .withUnsafeBytes { try stderr.write($0) }
            return Int(HelperSideChannel.unreachableExitCode)
        }
        let sink = CollectingSink()
        let summary = try await reader(docker, channel: .sideChannel(networkMode: "none")).read("/data", into: sink)
        #expect(sink.bytes == Self.tar)
        #expect(summary.attachReason?.contains("network mode none") == true)
        #expect(summary.attachReason?.contains("Connection refused") == true)
        #expect(docker.created.count == 2 && docker.created[1].networkDisabled && docker.created[1].networkMode == nil)
    }

    @Test func aNetworkModeDockerRefusesFallsBackToTheAttachStream() async throws {
        let docker = FakeDockerEngine()
        let attach = Self.helper()
        docker.onRunHelper { spec, stdout, stderr in
            guard spec.networkMode == nil else {
                throw StackVaultError(.dockerAPI, "conflicting options: host type networking can't be used with "
                    + "user namespaces")
            }
            return try attach(spec, stdout, stderr)
        }
        let sink = CollectingSink()
        let summary = try await reader(docker).read("/data", into: sink)
        #expect(sink.bytes == Self.tar)
        #expect(summary.attachReason?.contains("user namespaces") == true)
    }

    @Test func attachChosenUsesNoSideChannel() async throws {
        let docker = FakeDockerEngine()
        docker.onRunHelper(Self.helper())
        let sink = CollectingSink()
        let summary = try await reader(docker, channel: .attach).read("/data", into: sink)
        #expect(sink.bytes == Self.tar)
        #expect(summary.attachReason == "\(HelperChannel.environmentKey)=attach")
        #expect(docker.created.count == 1 && !docker.created[0].command.contains("--connect"))
    }

    @Test func aStreamShorterThanTheHelperSaysFails() async throws {
        let docker = FakeDockerEngine()
        docker.onRunHelper(Self.helper(sending: Array(Self.tar.prefix(1000))))
        let error = await #expect(throws: StackVaultError.self) {
            try await reader(docker).read("/data", into: CollectingSink())
        }
        #expect(error?.message.contains("sent 1000 bytes of its \(Self.tar.count)-byte tar stream") == true)
        #expect(error?.message.contains("service files") == true)
    }

    @Test func aHelperThatFailsAfterConnectingIsNotRunAgain() async throws {
        let docker = FakeDockerEngine()
        docker.onRunHelper(Self.helper(sending: Array(Self.tar.prefix(1000)), code: 137))
        let error = await #expect(throws: StackVaultError.self) {
            try await reader(docker).read("/data", into: CollectingSink())
        }
        #expect(error?.message.contains("was killed") == true && error?.message.contains("read /data") == true)
        #expect(docker.created.count == 1)
    }

    @Test func aSinkThatFailsEndsTheCopyWithItsError() async throws {
        final class Full: ByteSink {
            func write(_ bytes: UnsafeRawBufferPointer) throws { throw StackVaultError(.storage, "the disk is full") }
        }
        let docker = FakeDockerEngine()
        docker.onRunHelper { spec, stdout, stderr in
            // The real helper's write fails once StackVault closes the socket.
            (try? Self.helper()(spec, stdout, stderr)) ?? 1
        }
        let error = await #expect(throws: StackVaultError.self) {
            try await reader(docker).read("/data", into: Full())
        }
        #expect(error?.message.contains("the disk is full") == true)
        #expect(docker.created.count == 1)
    }

    @Test func aHelperThatNeverConnectsFailsAfterTheTimeout() async throws {
        let docker = FakeDockerEngine()
        docker.onRunHelper { _, _, _ in
            Thread.sleep(forTimeInterval: 3)
            return 0
        }
        var reader = reader(docker)
        reader.connectTimeout = 1
        let error = await #expect(throws: StackVaultError.self) {
            try await reader.read("/data", into: CollectingSink())
        }
        #expect(error?.message.contains("did not connect to StackVault's side channel within 1 s") == true)
        #expect(error?.message.contains("service files") == true && error?.message.contains("read /data") == true)
        #expect(docker.created.count == 1)
    }
}
