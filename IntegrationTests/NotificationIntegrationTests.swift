import Foundation
import Testing

extension Integration {
    /// Notifications from real runs to a real HTTP receiver on loopback.
    @Suite struct NotificationTests {
        /// A tiny HTTP server (Python's http.server) that appends "METHOD PATH BODY" lines to a file.
        final class Receiver {
            let process = Process()
            let log: URL
            let port: Int

            init(directory: URL) throws {
                log = directory.appendingPathComponent("requests.log")
                port = Int.random(in: 20_000..<40_000)
                let script = """
                    import http.server, sys
                    log = open(sys.argv[2], "a", buffering=1)
                    class H(http.server.BaseHTTPRequestHandler):
                        def handle_one(self):
                            n = int(self.headers.get("Content-Length") or 0)
                            body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                            log.write(f"{self.command} {self.path} {self.headers.get('Title', '')}|{body}\\n")
                            self.send_response(200); self.end_headers(); self.wfile.write(b"OK")
                        do_GET = do_POST = handle_one
                        def log_message(self, *a): pass
                    import time
                    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
                    server.timeout = 0.5
                    deadline = time.time() + 300  # never outlives a stuck test run by much
                    while time.time() < deadline:
                        server.handle_request()
                    """
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["python3", "-c", script, "\(port)", log.path]
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                for _ in 0..<100 {
                    if (try? Shell.run(["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/ready"], check: false).ok)
                        == true
                    {
                        return
                    }
                    usleep(100_000)
                }
                throw TestFailure("the test HTTP receiver did not start")
            }

            var requests: [String] {
                ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                    .filter { !$0.hasPrefix("GET /ready") }
            }

            func stop() {
                if process.isRunning {
                    // SIGKILL: a child of the test runner may inherit an ignored SIGTERM.
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                }
            }

            deinit { stop() }
        }

        @Test func failuresReachWebhooksAndPingsArriveInOrder() throws {
            try TestBed.requireDocker()
            let directory = try TestBed.temporaryDirectory("notify")
            defer { try? FileManager.default.removeItem(at: directory) }
            let receiver = try Receiver(directory: directory)
            defer { receiver.stop() }
            let base = "http://127.0.0.1:\(receiver.port)"
            let name = "svtest-notify"
            try Shell.run(["docker", "rm", "-f", name], check: false)
            // A stack that fails: the dump label asks for a database this container does not run.
            try Shell.run(["docker", "run", "-d", "--init", "--name", name, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.database.pg_dumpall=true",
                           "-e", "POSTGRES_PASSWORD=x", TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", name], check: false) }
            let target = directory.appendingPathComponent("target")
            let urls = "\(base)/hook, healthchecks+\(base)/ping/abc, ntfy+\(base)/topic, "
                + "webhook+http://127.0.0.1:9/unreachable"

            let run = try StackVaultCLI.run(["backup", "--stack", name, "--target", "file://\(target.path)"],
                                            environment: ["NOTIFY_URLS": urls])
            #expect(run.status == 1, "a failing notification target must not change the outcome: \(run.stderr)")
            #expect(run.stderr.contains("notification to webhook http://127.0.0.1:9/unreachable failed"))
            let requests = receiver.requests
            #expect(requests.first?.hasPrefix("POST /ping/abc/start") == true, "\(requests)")
            let failPing = try #require(requests.first { $0.hasPrefix("POST /ping/abc/fail") })
            #expect(failPing.contains("stack \(name) FAILED: pg_dumpall"))
            let hook = try #require(requests.first { $0.hasPrefix("POST /hook") })
            let json = try #require(hook.split(separator: "|", maxSplits: 1).last)
            let payload = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect(payload?["succeeded"] as? Bool == false)
            #expect((payload?["message"] as? String)?.contains("stack \(name) FAILED") == true)
            #expect(((payload?["stacks"] as? [[String: Any]])?.first?["error"] as? String)?.contains("pg_dumpall") == true)
            let ntfy = try #require(requests.first { $0.hasPrefix("POST /topic") })
            #expect(ntfy.contains("Backup FAILED on"))
            #expect(requests.firstIndex { $0.hasPrefix("POST /ping/abc/start") }!
                < requests.firstIndex { $0.hasPrefix("POST /ping/abc/fail") }!)

            // A good run: pings say start then success; webhooks stay quiet unless NOTIFY_ON=always.
            let good = "svtest-notify-good"
            try Shell.run(["docker", "rm", "-f", good], check: false)
            try Shell.run(["docker", "run", "-d", "--init", "--name", good, "--label", "stackvault.test=true",
                           "--label", "backup.enable=true", "--label", "backup.volume-path.bin=/bin",
                           TestBed.busyboxImage, "sleep", "1000000"])
            defer { _ = try? Shell.run(["docker", "rm", "-f", good], check: false) }
            let before = receiver.requests.count
            let ok = try StackVaultCLI.run(["backup", "--stack", good, "--target", "file://\(target.path)"],
                                           environment: ["NOTIFY_URLS": "\(base)/hook healthchecks+\(base)/ping/ok"])
            #expect(ok.ok, "\(ok.stderr)")
            let after = Array(receiver.requests.dropFirst(before))
            #expect(after.map { String($0.prefix(while: { $0 != "|" && $0 != " " }) + " " + $0.split(separator: " ")[1]) }
                == ["POST /ping/ok/start", "POST /ping/ok"], "\(after)")
        }
    }
}
