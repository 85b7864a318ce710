import Foundation
import StackVaultCore
import Testing

/// StackVault interrupted (SIGTERM, SIGINT) while Docker is still stopping a container for it: the container runs
/// again afterwards. Its PID 1 ignores SIGTERM, so Docker stops it only by SIGKILL after the stop timeout, long after
/// StackVault has given up on the stop request.
extension Integration {
    @Suite struct StopInterruptTests {
        /// A `stackvault` process whose stdout and stderr go to one log file.
        final class Run {
            let process = Process()
            let logPath: String

            init(_ arguments: [String], environment: [String: String], logPath: String) throws {
                self.logPath = logPath
                process.executableURL = URL(fileURLWithPath: TestBed.binary)
                process.arguments = arguments
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                _ = FileManager.default.createFile(atPath: logPath, contents: nil)
                let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
                process.standardOutput = log
                process.standardError = log
                process.standardInput = FileHandle.nullDevice
                try process.run()
            }

            var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

            /// Waits until the log contains `text`; fails with the log after `seconds`.
            func waitForLog(_ text: String, seconds: Double = 60) throws {
                let deadline = Date().addingTimeInterval(seconds)
                while Date() < deadline {
                    if log.contains(text) { return }
                    if !process.isRunning { break }
                    usleep(100_000)
                }
                throw TestFailure("\"\(text)\" did not appear in \(seconds) s\nlog:\n\(log.suffix(4000))")
            }

            func stop(_ signal: Int32, seconds: Double) -> Int32? {
                Shell.signal(process, signal, seconds: seconds)
            }
        }

        /// A container whose `/data` is backed up and whose PID 1 (a shell loop, no init) ignores SIGTERM.
        static func stubbornContainer(_ name: String) throws {
            try Shell.run(["docker", "rm", "-f", name], check: false)
            try Shell.run(["docker", "run", "-d", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.data=/data",
                           TestBed.busyboxImage, "sh", "-c",
                           "mkdir -p /data && echo hello > /data/hello.txt; while true; do sleep 1; done"])
        }

        /// `running exitCode startedAt` from `docker inspect`.
        static func state(_ name: String) throws -> (running: Bool, exitCode: String, startedAt: String) {
            let fields = try Docker.inspect(name, "{{.State.Running}} {{.State.ExitCode}} {{.State.StartedAt}}")
                .split(separator: " ").map(String.init)
            return (fields.first == "true", fields.count > 1 ? fields[1] : "", fields.count > 2 ? fields[2] : "")
        }

        /// Asserts that `name` runs now and still runs when Docker would have killed it (`stopTimeout` s after the
        /// stop request, plus a margin), that it was started again (not merely never stopped), and that no lock or
        /// restore helper container is left.
        static func expectRunningAfterwards(_ name: String, startedBefore: String, stopRequested: Date,
                                            stopTimeout: Int, log: String) throws {
            let until = stopRequested.addingTimeInterval(TimeInterval(stopTimeout + 8))
            var last = try state(name)
            while Date() < until, last.running {
                usleep(250_000)
                last = try state(name)
            }
            #expect(last.running, "\(name) is left stopped (exit code \(last.exitCode))\nlog:\n\(log.suffix(4000))")
            #expect(last.startedAt != startedBefore, "\(name) was never stopped and started again\n\(log.suffix(3000))")
            let lock = try Shell.run(["docker", "ps", "-aq", "--filter",
                                      "name=^/\(StackLocker.lockName(for: name))$"]).stdout
            #expect(lock.isEmpty, "the lock container is left")
            let helpers = try Shell.run(["docker", "ps", "-aq", "--filter",
                                         "label=\(DirectoryReplacement.helperLabel)=\(name)"]).stdout
            #expect(helpers.isEmpty, "restore helper containers are left")
        }

        /// Runs stackvault with `arguments`, sends `signal` `afterSeconds` after it asked Docker to stop `container`,
        /// and checks that the container runs afterwards. Returns the log and the seconds from the stop request to
        /// the exit.
        static func interrupt(_ arguments: [String], container name: String, signal: Int32, stopTimeout: Int,
                              afterSeconds: Double, startedBefore: String, logPath: String) throws
            -> (log: String, exited: Double)
        {
            let run = try Run(arguments, environment: ["STOP_TIMEOUT": "\(stopTimeout)", "LOG_FORMAT": "text"],
                              logPath: logPath)
            try run.waitForLog("stopping \(name)")
            let stopRequested = Date()
            usleep(UInt32(afterSeconds * 1_000_000))
            let status = run.stop(signal, seconds: Double(stopTimeout + 40))
            let exited = Date().timeIntervalSince(stopRequested)
            let log = run.log
            #expect(status != nil, "stackvault did not exit after signal \(signal)\n\(log.suffix(4000))")
            try expectRunningAfterwards(name, startedBefore: startedBefore, stopRequested: stopRequested,
                                        stopTimeout: stopTimeout, log: log)
            #expect(log.contains("started \(name) again"), "\(log.suffix(4000))")
            #expect(!log.contains("CONTAINERS LEFT STOPPED"), "\(log.suffix(4000))")
            return (log, exited)
        }

        /// Backup killed by `signal` `afterSeconds` after it asked Docker to stop the stubborn container.
        func interruptedBackup(_ name: String, signal: Int32, stopTimeout: Int, afterSeconds: Double) throws {
            try TestBed.requireDocker()
            try Self.stubbornContainer(name)
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let directory = try TestBed.temporaryDirectory("stopint-\(name)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let startedBefore = try Self.state(name).startedAt
            let (log, exited) = try Self.interrupt(
                ["backup", "--stack", name, "--target", directory.appendingPathComponent("target").path],
                container: name, signal: signal, stopTimeout: stopTimeout, afterSeconds: afterSeconds,
                startedBefore: startedBefore, logPath: directory.appendingPathComponent("backup.log").path)
            // Docker kills the container only after the stop timeout; StackVault waits for that before starting it.
            #expect(exited > Double(stopTimeout) - 2, "stackvault exited \(exited) s after the stop request")
            // The summary's downtime is the one the log reports.
            let logged = log.firstMatch(of: /started .* again \(downtime ([0-9.]+) s\)/).map { String($0.1) }
            let row = log.split(separator: "\n").last { $0.hasPrefix(name + " ") || $0.contains("│ \(name) ") }
            let tableSeconds = row.map { String($0).matches(of: /([0-9]+\.[0-9])s/).map { String($0.1) } } ?? []
            #expect(logged != nil && tableSeconds.count >= 2 && tableSeconds[1] == logged,
                    "downtime in the log \(logged ?? "-"), in the summary \(tableSeconds)\n\(log.suffix(3000))")
            print("[stop-interrupt] \(name): signal \(signal), stackvault exited \(String(format: "%.1f", exited)) s "
                  + "after the stop request; downtime \(logged ?? "-") s")
        }

        @Test func sigtermWhileDockerStillStopsAContainerStartsItAgainAfterDockerStoppedIt() throws {
            try interruptedBackup("svtest-stopint-term", signal: SIGTERM, stopTimeout: 30, afterSeconds: 4)
        }

        @Test func sigintWhileDockerStillStopsAContainerStartsItAgainAfterDockerStoppedIt() throws {
            try interruptedBackup("svtest-stopint-int", signal: SIGINT, stopTimeout: 12, afterSeconds: 3)
        }

        @Test func aRestoreStoppedWhileDockerStillStopsAContainerStartsItAgain() throws {
            try TestBed.requireDocker()
            let name = "svtest-stopint-restore"
            let stopTimeout = 12
            try Self.stubbornContainer(name)
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let directory = try TestBed.temporaryDirectory("stopint-\(name)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let target = "file://\(directory.appendingPathComponent("target").path)"
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("target"),
                                                    withIntermediateDirectories: true)
            // The archive to restore; a 1 s stop timeout keeps this quick.
            let backup = try StackVaultCLI.run(["backup", "--stack", name, "--target", target],
                                               environment: ["STOP_TIMEOUT": "1"])
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")
            guard backup.ok else { return }
            let startedBefore = try Self.state(name).startedAt
            _ = try Self.interrupt(
                ["restore", "--latest", "--stack", name, "--target", target, "--service", name, "--yes"],
                container: name, signal: SIGTERM, stopTimeout: stopTimeout, afterSeconds: 3,
                startedBefore: startedBefore, logPath: directory.appendingPathComponent("restore.log").path)
        }
    }
}
