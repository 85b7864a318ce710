import Foundation
import Testing

/// A Docker daemon of a test's own, beside the test bed's: its own socket, data root, exec root (with its own
/// containerd), pid file and network namespace (`unshare --net`), no iptables rules, so that stopping, killing and
/// restarting it touches nothing of the shared daemon other tests (and other people on this machine) use. Needs root and Debian's
/// `dockerd` (scripts/install-deps.sh), as CI has.
///
/// Everything lives under `/tmp/svd-<id>/` (short: the containerd socket path below it must stay under the 108-byte
/// limit of a Unix socket path); ``remove()`` stops the daemon and deletes it all.
final class PrivateDockerd {
    let root: URL
    let socket: String
    /// The `DOCKER_HOST` value for this daemon.
    var host: String { "unix://\(socket)" }
    private var daemon: Process?
    private var logHandle: FileHandle?
    private var starts = 0

    init() throws {
        root = URL(fileURLWithPath: "/tmp/svd-\(UUID().uuidString.prefix(6).lowercased())")
        socket = root.appendingPathComponent("docker.sock").path
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    var pidFile: String { root.appendingPathComponent("docker.pid").path }
    var logPath: String { root.appendingPathComponent("dockerd-\(starts).log").path }

    /// Starts the daemon (again) and waits until it answers, for at most 60 s.
    func start() throws {
        guard getuid() == 0 else { throw TestFailure("a private dockerd needs root, as CI has") }
        // A daemon killed with SIGKILL leaves its pid file, and dockerd refuses to start while it exists.
        try? FileManager.default.removeItem(atPath: pidFile)
        starts += 1
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            // A network namespace of its own: its docker0 and rules are not the test bed's (`--bridge none` would
            // delete the shared daemon's docker0).
            "unshare", "--net", "dockerd", "--host", host, "--data-root", root.appendingPathComponent("data").path,
            "--exec-root", root.appendingPathComponent("exec").path, "--pidfile", pidFile, "--iptables=false",
        ]
        // Output to a file, never a pipe: nothing of this test waits for the daemon's output to end.
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        daemon = process
        logHandle = log
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if try docker(["version", "--format", "{{.Server.Version}}"], check: false).ok { return }
            if !process.isRunning { break }
            usleep(250_000)
        }
        let tail = (try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(3000) ?? ""
        throw TestFailure("the private dockerd did not answer within 60 s; its log:\n\(tail)")
    }

    /// Sends `signal` to the daemon (SIGTERM: `systemctl stop docker`; SIGKILL: a crash) and waits until it has
    /// exited, for at most 60 s.
    func stop(_ signal: Int32) throws {
        guard let daemon, Self.lives(daemon.processIdentifier) else { return }
        let pid = daemon.processIdentifier
        kill(pid, signal)
        let deadline = Date().addingTimeInterval(60)
        while Self.lives(pid), Date() < deadline { usleep(100_000) }
        guard !Self.lives(pid) else { throw TestFailure("the private dockerd did not exit within 60 s") }
        try? logHandle?.close()
    }

    /// True while `pid` runs: gone or a zombie not yet reaped counts as exited (Foundation's `isRunning` may lag).
    private static func lives(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    /// Runs the docker client against this daemon.
    @discardableResult
    func docker(_ arguments: [String], check: Bool = true) throws -> CommandResult {
        try Shell.run(["docker", "--host", host] + arguments, check: check)
    }

    /// Copies `image` from the test bed's daemon into this one.
    func load(_ image: String) throws {
        try Shell.sh("docker save \(image) | docker --host \(host) load >/dev/null")
    }

    /// `docker ps` state of `name` (`running`, `exited`), empty when there is no such container.
    func state(_ name: String) throws -> String {
        try docker(["ps", "-a", "--filter", "name=^/\(name)$", "--format", "{{.State}}"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the daemon (its containers with it) and removes its directory. Idempotent.
    func remove() {
        if let daemon, Self.lives(daemon.processIdentifier) {
            try? docker(["ps", "-aq"], check: false).stdout.split(separator: "\n").forEach {
                _ = try? docker(["rm", "-f", String($0)], check: false)
            }
            try? stop(SIGTERM)
        }
        // Shims of containers a killed daemon left (they outlive it), then left-over mounts of a killed daemon (overlay layers, the exec root) first, then the files.
        _ = try? Shell.sh("pkill -KILL -f 'containerd-shi[m].*\(root.path)/'", check: false)
        _ = try? Shell.sh("grep -o ' \(root.path)[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l", check: false)
        try? FileManager.default.removeItem(at: root)
    }
}
