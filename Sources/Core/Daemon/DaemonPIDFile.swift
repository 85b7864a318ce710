import Foundation

/// The daemon's process id beside its state file (`<STATE_FILE>.pid`, one decimal number and a newline), present
/// while the daemon runs: `stackvault run-now` finds the daemon to signal through it. Written once the daemon
/// handles SIGUSR1 and SIGUSR2 (before that, either signal would end it), removed when it exits; a daemon killed
/// with SIGKILL leaves it behind, so readers check that the process still exists.
public struct DaemonPIDFile: Sendable {
    public let path: String
    /// The state file it belongs to, for messages.
    public let stateFile: StateFile

    public init(stateFile: StateFile) {
        self.stateFile = stateFile
        self.path = stateFile.path + ".pid"
    }

    /// Writes `pid` (atomically: temporary file, rename).
    /// - Throws: `StackVaultError.io` naming the file.
    public func write(pid: Int32) throws {
        let temporary = "\(path).\(pid).tmp"
        do {
            try Data("\(pid)\n".utf8).write(to: URL(fileURLWithPath: temporary))
            try syscall("rename", path: path, failing: "cannot write the pid file \(path)") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw StackVaultError(.io, "cannot write the daemon's pid file \(path): \(error); set STATE_FILE to a "
                + "writable path")
        }
    }

    /// Removes the file if it still names `pid` (a newer daemon with the same state file may have replaced it).
    public func remove(ifNaming pid: Int32) {
        if read() == pid { unlink(path) }
    }

    /// The process id in the file, nil when there is none (or it holds no number).
    public func read() -> Int32? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The process id of the running daemon.
    /// - Throws: `StackVaultError.invalidConfiguration` saying what to do when the file is missing or names a
    ///   process that no longer exists.
    public func runningDaemon() throws -> Int32 {
        guard let pid = read(), pid > 0 else {
            throw StackVaultError(.invalidConfiguration, "no StackVault daemon is running with the state file "
                + "\(stateFile.path): its pid file \(path) does not exist. Run this inside the sidecar, where "
                + "STATE_FILE is the daemon's (docker exec <sidecar> stackvault run-now), or pass the daemon's "
                + "--state-file; if the daemon is not running, start it (`stackvault daemon`, the image's default "
                + "command). `stackvault backup` backs up without a daemon, but its health, state and metrics do "
                + "not see that run")
        }
        if kill(pid, 0) != 0 && errno == ESRCH {
            throw StackVaultError(.invalidConfiguration, "the StackVault daemon of the state file \(stateFile.path) "
                + "is not running: process \(pid), named in \(path), does not exist (the daemon was killed and could "
                + "not remove the file). Start the daemon again (restart the sidecar)")
        }
        return pid
    }
}
