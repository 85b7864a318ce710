import Foundation
import StackVaultCore
import Testing

extension Integration {
    @Suite struct DockerClientTests {
        final class Collect: ByteSink, @unchecked Sendable {
            var bytes: [UInt8] = []
            var chunks = 0
            func write(_ buffer: UnsafeRawBufferPointer) throws {
                bytes.append(contentsOf: buffer)
                chunks += 1
            }
            var text: String { String(decoding: bytes, as: UTF8.self) }
        }

        static func withContainer(_ body: (DockerClient, String) async throws -> Void) async throws {
            try TestBed.requireDocker()
            let name = "svtest-client-\(UUID().uuidString.prefix(8).lowercased())"
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "-e", "GREETING=hello from env",
                           TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            try await body(try DockerClient(), name)
        }

        @Test func runHelperStreamsStdinThroughAndStdoutBackWithTheExitCodeAndRemovesTheHelper() async throws {
            try TestBed.requireDocker()
            let docker = try DockerClient()
            let label = "svtest-helper-\(UUID().uuidString.prefix(8).lowercased())"
            let spec = ContainerCreateSpec(
                image: TestBed.busyboxImage, entrypoint: ["sh", "-c", "wc -c; echo done >&2; exit 5"],
                labels: [HelperImage.containerLabel: label, "stackvault.test": "true"], capDrop: ["ALL"])
            let out = Collect(), err = Collect()
            let code = try await docker.runHelper(spec, stdin: { sink in
                let block = [UInt8](repeating: 65, count: 1 << 20)
                for _ in 0..<20 { try block.withUnsafeBytes { try sink.write($0) } }
            }, stdout: out, stderr: err)
            #expect(code == 5)
            #expect(out.text.trimmingCharacters(in: .whitespacesAndNewlines) == "\(20 << 20)")
            #expect(err.text == "done\n")
            let left = try Shell.run(["docker", "ps", "-aq", "--filter", "label=\(HelperImage.containerLabel)=\(label)"])
            #expect(left.stdout.isEmpty, "the helper is removed")

            // Cancelled while it streams: the helper goes too.
            let task = Task {
                try await docker.runHelper(
                    ContainerCreateSpec(image: TestBed.busyboxImage, entrypoint: ["sh", "-c", "cat /dev/zero"],
                                        labels: [HelperImage.containerLabel: label, "stackvault.test": "true"]),
                    stdin: nil, stdout: Discard(), stderr: Discard())
            }
            try await Task.sleep(for: .seconds(2))
            task.cancel()
            let outcome = await task.result
            #expect(throws: (any Error).self) { try outcome.get() }
            let afterCancel = try Shell.run(["docker", "ps", "-aq", "--filter",
                                             "label=\(HelperImage.containerLabel)=\(label)"])
            #expect(afterCancel.stdout.isEmpty, "the cancelled helper is removed")
        }

        final class Discard: ByteSink, @unchecked Sendable {
            func write(_ buffer: UnsafeRawBufferPointer) throws {}
        }

        @Test func execStreamsStdoutAndStderrApartWithTheExitCode() async throws {
            try await Self.withContainer { docker, name in
                let out = Collect(), err = Collect()
                let code = try await docker.exec(
                    in: name,
                    command: ["sh", "-c", "echo \"$GREETING\"; echo oops >&2; head -c 3000000 /dev/zero; echo; echo bye >&2; exit 3"],
                    environment: ["EXTRA=1"], stdout: out, stderr: err)
                #expect(code == 3)
                #expect(out.bytes.count == "hello from env\n".utf8.count + 3_000_000 + 1)
                #expect(out.text.hasPrefix("hello from env\n"))
                #expect(err.text == "oops\nbye\n")
                #expect(out.chunks > 1, "streamed, not delivered whole")
            }
        }

        @Test func archivePutThenGetRoundTripsAndErrorsCarryTheDaemonsMessage() async throws {
            try await Self.withContainer { docker, name in
                // A tar made by GNU tar goes in through the archive API ...
                let dir = try TestBed.temporaryDirectory("put")
                defer { try? FileManager.default.removeItem(at: dir) }
                try FileManager.default.createDirectory(at: dir.appendingPathComponent("payload"),
                                                        withIntermediateDirectories: true)
                try Data("round trip ✓\n".utf8).write(to: dir.appendingPathComponent("payload/note.txt"))
                let tar = try Data(contentsOf: URL(fileURLWithPath: try {
                    let path = dir.appendingPathComponent("in.tar").path
                    try Shell.run(["tar", "-C", dir.path, "-cf", path, "payload"])
                    return path
                }()))
                try await docker.putArchive(to: name, path: "/tmp") { sink in
                    try tar.withUnsafeBytes { try sink.write($0) }
                }
                #expect(try Docker.exec(name, "cat /tmp/payload/note.txt") == "round trip ✓\n")

                // ... and comes back out as a stream.
                let out = Collect()
                try await docker.getArchive(from: name, path: "/tmp/payload", into: out)
                let back = dir.appendingPathComponent("out.tar")
                try Data(out.bytes).write(to: back)
                let listing = try Shell.run(["tar", "-tf", back.path]).stdout
                #expect(listing.contains("payload/note.txt"))

                // Daemon errors come back in the daemon's own words.
                await #expect {
                    try await docker.getArchive(from: name, path: "/no/such/dir", into: Collect())
                } throws: { error in
                    "\(error)".contains("/no/such/dir") && "\(error)".contains("Could not find the file")
                }
                await #expect {
                    _ = try await docker.inspectContainer("svtest-does-not-exist")
                } throws: { error in
                    "\(error)".contains("No such container")
                }
            }
        }

        @Test func negotiatesTheDaemonsAPIVersionAndListsByLabel() async throws {
            try await Self.withContainer { docker, name in
                let api = try await docker.apiVersion()
                let (_, daemonAPI) = try await docker.version()
                #expect(api == daemonAPI || api == "1.47", "spoke \(api), daemon has \(daemonAPI)")
                let listed = try await docker.listContainers(labelFilters: ["backup.enable=true", "stackvault.test"])
                #expect(listed.contains { $0.name == name })
                let details = try await docker.inspectContainer(name)
                #expect(details.isRunning)
                #expect(details.environment["GREETING"] == "hello from env")
                try await docker.stopContainer(details.id, timeoutSeconds: 5)
                #expect(try await !docker.inspectContainer(name).isRunning)
                try await docker.stopContainer(details.id, timeoutSeconds: 5)  // already stopped: not an error
                try await docker.startContainer(details.id)
                try await docker.startContainer(details.id)  // already running: not an error
                #expect(try await docker.inspectContainer(name).isRunning)
            }
        }
    }
}
