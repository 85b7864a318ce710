import Foundation
@testable import StackVaultCore
import Testing

/// The helper's side channel (issue #13) within one process: both ends of the abstract socket, no Docker.
@Suite struct HelperSideChannelTests {
    /// Connects as the helper does on a thread of its own and writes `payload`, then closes.
    func helper(_ channel: HelperSideChannel, token: String? = nil, payload: [UInt8]) -> Thread {
        let thread = Thread {
            guard let fd = try? HelperSideChannel.connect(to: channel.name, token: token ?? channel.token) else {
                return
            }
            payload.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                    if sent <= 0 { break }
                    offset += sent
                }
            }
            close(fd)
        }
        thread.start()
        return thread
    }

    @Test func theNameIsAbstractAndRandomAndTheTokenIs128Bits() throws {
        let first = try HelperSideChannel(), second = try HelperSideChannel()
        #expect(first.name.hasPrefix("@stackvault-helper-"))
        #expect(first.name.count == "@stackvault-helper-".count + 32)
        #expect(first.token.count == 32 && first.token.allSatisfy(\.isHexDigit))
        #expect(first.name != second.name && first.token != second.token)
        // Abstract: no file was made anywhere (the name is no path).
        #expect(!FileManager.default.fileExists(atPath: String(first.name.dropFirst())))
    }

    @Test func theHelpersBytesArriveWholeAndInOrder() throws {
        let channel = try HelperSideChannel()
        let payload = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        _ = helper(channel, payload: payload)
        #expect(try channel.accept(timeout: 60, flag: CancellationFlag()))
        let sink = CollectingSink()
        #expect(try channel.receive(into: sink) == Int64(payload.count))
        #expect(sink.bytes == payload)
    }

    @Test func aConnectionWithoutTheTokenIsClosedAndTheHelperStillGetsIn() throws {
        let channel = try HelperSideChannel()
        let intruder = try HelperSideChannel.connect(to: channel.name, token: String(repeating: "0", count: 32))
        defer { close(intruder) }
        _ = Array("forged".utf8).withUnsafeBytes { send(intruder, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        _ = helper(channel, payload: Array("the real tar".utf8))
        #expect(try channel.accept(timeout: 60, flag: CancellationFlag()))
        let sink = CollectingSink()
        _ = try channel.receive(into: sink)
        #expect(sink.text == "the real tar")
        // The intruder's connection was closed by the listener.
        var byte: UInt8 = 0
        #expect(recv(intruder, &byte, 1, 0) <= 0)  // end of stream, or a reset for the unread "forged"
    }

    @Test func aHelperThatEndedWithoutConnectingEndsTheWait() throws {
        let channel = try HelperSideChannel()
        channel.helperEnded()
        #expect(try channel.accept(timeout: 60, flag: CancellationFlag()) == false)
    }

    @Test func aHelperThatNeverConnectsTimesOut() throws {
        let channel = try HelperSideChannel()
        #expect(throws: SideChannelTimeout.self) { try channel.accept(timeout: 0.3, flag: CancellationFlag()) }
    }

    @Test func cancellationEndsTheWaitForAConnection() throws {
        let channel = try HelperSideChannel()
        let flag = CancellationFlag()
        flag.cancel()
        #expect(try channel.accept(timeout: 60, flag: flag) == false)
    }

    @Test func abortEndsABlockedReceive() async throws {
        let channel = try HelperSideChannel()
        let fd = try HelperSideChannel.connect(to: channel.name, token: channel.token)
        defer { close(fd) }
        #expect(try channel.accept(timeout: 60, flag: CancellationFlag()))
        let reading = Task.detached { try channel.receive(into: CollectingSink()) }
        try await Task.sleep(for: .milliseconds(100))
        channel.abort()
        #expect(try await reading.value == 0)
        #expect(channel.isAborted)
    }

    @Test func connectingWhereNobodyListensFailsNamingTheChannel() throws {
        let name = "@stackvault-helper-nobody-\(UUID().uuidString)"
        let error = #expect(throws: StackVaultError.self) { try HelperSideChannel.connect(to: name, token: "x") }
        #expect(error?.message.contains(name) == true)
        #expect(error?.message.contains("Connection refused") == true)
        #expect(throws: StackVaultError.self) { try HelperSideChannel.connect(to: "/tmp/not-abstract", token: "x") }
    }

    @Test func theChannelComesFromTheEnvironment() throws {
        #expect(try HelperChannel.fromEnvironment([:]) == .sideChannel(networkMode: nil))
        #expect(try HelperChannel.fromEnvironment([HelperChannel.environmentKey: "auto"])
            == .sideChannel(networkMode: nil))
        #expect(try HelperChannel.fromEnvironment([HelperChannel.environmentKey: "attach"]) == .attach)
        #expect(try HelperChannel.fromEnvironment([HelperChannel.environmentKey: "network:none"])
            == .sideChannel(networkMode: "none"))
        let error = #expect(throws: StackVaultError.self) {
            try HelperChannel.fromEnvironment([HelperChannel.environmentKey: "socket"])
        }
        #expect(error?.message.contains("STACKVAULT_HELPER_CHANNEL=socket") == true)
    }
}
