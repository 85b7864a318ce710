import Foundation

/// Runs `sh -c` scripts inside one container through `docker exec`, and puts files into it for them.
///
/// Scripts read secrets from the container's own environment, so no password is ever in an argument, a log line
/// or an error message; positional arguments (`$1`, ...) carry only paths and names.
public struct ContainerShell: Sendable {
    /// What a script printed and how it ended.
    public struct Outcome: Sendable {
        public var exitCode: Int
        /// The first 1 MiB of standard output.
        public var stdout: String
        /// The end of standard error (where a client's error is, after any echo of the failing statement): of its
        /// last 64 KiB, the last 40 lines, long lines shortened in the middle (`ContainerShell.readable`).
        public var stderr: String
    }

    public let docker: any DockerEngine
    public let container: ContainerDetails
    /// Where the script runs, for messages: `service db (container app_db_1) of stack app`.
    public let place: String

    public init(docker: any DockerEngine, container: ContainerDetails, place: String) {
        self.docker = docker
        self.container = container
        self.place = place
    }

    /// Runs `script` with `arguments` as `$1`... and returns how it ended.
    public func outcome(_ script: String, arguments: [String] = []) async throws -> Outcome {
        let stdout = CollectingSink(limit: 1 << 20)
        let stderr = TailCollectingSink(limit: 64 << 10)
        let code = try await docker.exec(
            in: container.id, command: ["sh", "-c", script, "sh"] + arguments, environment: [], stdout: stdout,
            stderr: stderr)
        return Outcome(exitCode: code, stdout: stdout.text, stderr: Self.readable(stderr.text, cut: stderr.dropped > 0))
    }

    /// The last 40 lines of `text`, trimmed, each line longer than 600 bytes shortened to its first 300 and last
    /// 200 bytes around `[... N bytes ...]` (a client's echo of a multi-megabyte statement would bury its error
    /// otherwise), and `[...]` first when lines were left out or `cut` says the start is missing.
    public static func readable(_ text: String, cut: Bool) -> String {
        let all = text.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { line -> String in
                let bytes = Array(line.utf8)
                guard bytes.count > 600 else { return String(line) }
                return String(decoding: bytes.prefix(300), as: UTF8.self) + "[... \(bytes.count - 500) bytes ...]"
                    + String(decoding: bytes.suffix(200), as: UTF8.self)
            }
        let lines = all.suffix(40)
        return (cut || lines.count < all.count ? "[...]\n" : "") + lines.joined(separator: "\n")
    }

    /// Runs `script` and returns its standard output; a non-zero exit throws with `what`, the exit code and the
    /// script's own error text.
    @discardableResult
    public func run(_ script: String, arguments: [String] = [], what: String) async throws -> String {
        let result = try await outcome(script, arguments: arguments)
        guard result.exitCode == 0 else {
            throw StackVaultError(.restoreFailed, "\(what) failed in \(place) with exit code \(result.exitCode)"
                + (result.stderr.isEmpty ? "" : ": \(result.stderr)"))
        }
        return result.stdout
    }

    /// The numeric user and group that execs run as in this container (`id -u`, `id -g`).
    public func execIdentity() async throws -> (uid: Int64, gid: Int64) {
        let output = try await run("id -u; id -g", what: "reading the exec user (id)")
        let numbers = output.split(whereSeparator: \.isNewline).compactMap { Int64($0) }
        guard numbers.count == 2 else {
            throw StackVaultError(.dockerAPI, "`id` printed '\(output)' in \(place); expected a uid and a gid")
        }
        return (numbers[0], numbers[1])
    }

    /// Uploads a file of `size` bytes (written by `content` on the upload's own thread) into the container as
    /// `/tmp/stackvault-restore-<uuid><suffix>`, mode 0600, owned by the exec user; runs `body` with its path;
    /// and removes it afterwards on every path: success, error, cancellation.
    public func withTemporaryFile<T: Sendable>(
        size: Int64,
        suffix: String,
        content: @escaping @Sendable (any ByteSink) throws -> Void,
        body: (_ path: String) async throws -> T
    ) async throws -> T {
        let owner = try await execIdentity()
        let name = "stackvault-restore-\(UUID().uuidString.lowercased())\(suffix)"
        let path = "/tmp/\(name)"
        let shell = self
        // The removal runs in an unstructured task, so that cancelling the restore cannot cancel it.
        let remove: @Sendable () async -> Void = {
            _ = try? await shell.outcome(#"rm -f -- "$1""#, arguments: [path])
        }
        do {
            try await docker.putArchive(to: container.id, path: "/tmp") { sink in
                try TarStream.writeSingleFile(named: name, size: size, mode: 0o600, uid: owner.uid, gid: owner.gid,
                                              into: sink, content: content)
            }
            let result = try await body(path)
            await Task.detached(operation: remove).value
            return result
        } catch {
            await Task.detached(operation: remove).value
            throw error
        }
    }
}


/// Keeps the last `limit` bytes written to it (and counts what it dropped): the end of an error stream.
public final class TailCollectingSink: ByteSink, @unchecked Sendable {
    private var buffer: [UInt8] = []
    /// Bytes dropped from the start.
    public private(set) var dropped: Int64 = 0
    let limit: Int

    public init(limit: Int) { self.limit = limit }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count > 2 * limit { trim() }
    }

    private func trim() {
        let excess = buffer.count - limit
        guard excess > 0 else { return }
        buffer.removeFirst(excess)
        dropped += Int64(excess)
    }

    /// The last `limit` bytes as UTF-8 (a character cut at the start is replaced).
    public var text: String {
        trim()
        return String(decoding: buffer, as: UTF8.self)
    }
}
