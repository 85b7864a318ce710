import Foundation
import StackVaultCore
import Testing

/// The retention of the repository's example `docker-compose.yml` (#20): a second backup on the same day must not
/// remove that day's earlier archive.
@Suite struct ExampleComposeRetentionTests {
    /// The `environment:` map of the `stackvault` service of the repository's `docker-compose.yml`. Reads only the
    /// block form the example uses (`KEY: value` lines, one level deeper than `environment:`, `#` comments).
    static func exampleEnvironment() throws -> [String: String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        func indent(_ line: Substring) -> Int { line.prefix { $0 == " " }.count }
        var environment: [String: String] = [:]
        var blockIndent: Int?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let content = line.drop { $0 == " " }
            if content.isEmpty || content.hasPrefix("#") { continue }
            if let level = blockIndent {
                guard indent(line) > level else { break }
                guard let colon = content.firstIndex(of: ":") else { continue }
                var value = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("\"") {
                    value = String(value.dropFirst().prefix { $0 != "\"" })
                } else if let hash = value.range(of: " #") ?? (value.hasPrefix("#") ? value.range(of: "#") : nil) {
                    value = value[..<hash.lowerBound].trimmingCharacters(in: .whitespaces)
                }
                environment[String(content[..<colon])] = value
            } else if content == "environment:" {
                blockIndent = indent(line)
            }
        }
        return environment
    }

    /// Runs scheduled backups at `times` (UTC) with `policy` applied after each, as the daemon does (the archive
    /// just written is never pruned), and returns the archives left, newest first.
    static func simulate(_ policy: RetentionPolicy, _ times: [String]) -> [String] {
        var archives: [(name: String, time: Date)] = []
        for time in times {
            archives.append((time, RetentionPolicyTests.date(time)))
            let decisions = policy.apply(to: archives)
            let kept = Set(decisions.filter { $0.keep || $0.name == time }.map(\.name))
            archives.removeAll { !kept.contains($0.name) }
        }
        return archives.sorted { $0.time > $1.time }.map(\.name)
    }

    @Test func exampleKeepsBothBackupsOfOneDay() throws {
        let environment = try Self.exampleEnvironment()
        #expect(environment["RETENTION_KEEP_LAST"] == "3", "\(environment)")
        #expect(environment["TZ"] == "Europe/Berlin" && environment["CRON_SCHEDULE"] == "0 2 * * *", "\(environment)")
        let policy = try RetentionPolicy.fromEnvironment(environment)

        // A week of 02:00 Berlin (01:00 UTC) runs, then a manual backup on the same day as the last one.
        let week = (1...7).map { String(format: "2026-11-%02dT01:00", $0) }
        let left = Self.simulate(policy, week + ["2026-11-07T13:30"])
        #expect(left.prefix(3) == ["2026-11-07T13:30", "2026-11-07T01:00", "2026-11-06T01:00"], "\(left)")
        #expect(Set(left) == Set(week + ["2026-11-07T13:30"]), "\(left)")

        // Why: with the daily and weekly rules alone, the second backup removes the day's first one.
        var periodsOnly = environment
        periodsOnly["RETENTION_KEEP_LAST"] = nil
        let without = Self.simulate(try RetentionPolicy.fromEnvironment(periodsOnly), week + ["2026-11-07T13:30"])
        #expect(!without.contains("2026-11-07T01:00"), "\(without)")
    }
}
