import Foundation
import StackVaultCore
import StackVaultStorage
import Testing

@Suite struct RetentionPolicyTests {
    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text.count == 16 ? text + ":00Z" : text + "Z")!
    }

    /// Applies `policy` to backups at `times` (ISO, UTC) and returns the kept ones, newest first.
    static func kept(_ policy: RetentionPolicy, _ times: [String]) -> [String] {
        let backups = times.enumerated().map { ("b\($0.offset)-\($0.element)", date($0.element)) }
        return policy.apply(to: backups).filter(\.keep).map { String($0.name.split(separator: "-", maxSplits: 1)[1]) }
    }

    @Test func keepLastKeepsTheNewest() {
        let times = ["2026-01-01T10:00", "2026-01-02T10:00", "2026-01-03T10:00", "2026-01-04T10:00"]
        #expect(Self.kept(RetentionPolicy(keepLast: 2), times) == ["2026-01-04T10:00", "2026-01-03T10:00"])
    }

    @Test func dailyKeepsTheNewestOfEachDay() {
        let times = ["2026-03-01T01:00", "2026-03-01T23:00", "2026-03-02T05:00", "2026-03-02T06:00",
                     "2026-03-04T12:00"]
        #expect(Self.kept(RetentionPolicy(keepDaily: 2), times) == ["2026-03-04T12:00", "2026-03-02T06:00"])
        #expect(Self.kept(RetentionPolicy(keepDaily: 10), times)
            == ["2026-03-04T12:00", "2026-03-02T06:00", "2026-03-01T23:00"])
    }

    @Test func weeklyUsesISOWeeksAcrossTheYearBoundary() {
        // 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 2026-W53; 2027-01-04 (Mon) starts 2027-W01.
        let times = ["2026-12-28T08:00", "2026-12-31T08:00", "2027-01-03T08:00", "2027-01-04T08:00"]
        #expect(Self.kept(RetentionPolicy(keepWeekly: 2), times) == ["2027-01-04T08:00", "2027-01-03T08:00"])
        #expect(Self.kept(RetentionPolicy(keepWeekly: 5), times) == ["2027-01-04T08:00", "2027-01-03T08:00"])
    }

    @Test func monthlyAndYearlyIncludingALeapDay() {
        let times = ["2024-02-28T12:00", "2024-02-29T12:00", "2024-03-01T00:00", "2025-01-15T00:00",
                     "2025-12-31T23:59"]
        #expect(Self.kept(RetentionPolicy(keepMonthly: 3), times)
            == ["2025-12-31T23:59", "2025-01-15T00:00", "2024-03-01T00:00"])
        #expect(Self.kept(RetentionPolicy(keepMonthly: 4), times).last == "2024-02-29T12:00")
        #expect(Self.kept(RetentionPolicy(keepYearly: 5), times) == ["2025-12-31T23:59", "2024-03-01T00:00"])
    }

    @Test func hourlyAndRulesCombine() {
        let times = ["2026-05-01T10:05", "2026-05-01T10:55", "2026-05-01T11:10", "2026-04-01T09:00"]
        let decisions = RetentionPolicy(keepLast: 1, keepHourly: 2, keepMonthly: 2)
            .apply(to: times.map { ($0, Self.date($0)) })
        #expect(decisions.map(\.name) == ["2026-05-01T11:10", "2026-05-01T10:55", "2026-05-01T10:05",
                                          "2026-04-01T09:00"])
        #expect(decisions.map(\.keep) == [true, true, false, true])
        #expect(decisions[0].reasons == ["last", "hourly", "monthly"])
        #expect(decisions[1].reasons == ["hourly"])
        #expect(decisions[3].reasons == ["monthly"])
    }

    @Test func keepWithinIsRelativeToTheNewestBackup() throws {
        let times = ["2026-06-30T00:00", "2026-06-23T00:00", "2026-06-22T23:00", "2026-01-01T00:00"]
        let policy = RetentionPolicy(keepWithin: try RetentionDuration(parsing: "7d", name: "t"))
        #expect(Self.kept(policy, times) == ["2026-06-30T00:00", "2026-06-23T00:00"])
        // Months count calendar months back from the newest: 2026-03-31 - 1m = 2026-02-28.
        let monthly = RetentionPolicy(keepWithin: try RetentionDuration(parsing: "1m", name: "t"))
        #expect(Self.kept(monthly, ["2026-03-31T00:00", "2026-02-28T00:00", "2026-02-27T23:00"])
            == ["2026-03-31T00:00", "2026-02-28T00:00"])
    }

    @Test func tiesAreBrokenByNameAndTheNewestIsAlwaysKept() {
        let same = Self.date("2026-07-01T00:00")
        let decisions = RetentionPolicy(keepLast: 1).apply(to: [("backup-a", same), ("backup-b", same)])
        #expect(decisions.map(\.name) == ["backup-b", "backup-a"])
        #expect(decisions.map(\.keep) == [true, false])
        let zero = RetentionPolicy(keepDaily: 0).apply(to: [("x", same), ("y", same.addingTimeInterval(-86_400))])
        #expect(zero.map(\.keep) == [true, false])
        #expect(zero[0].reasons == ["newest"])
    }

    @Test func environmentAndDurationErrorsNameTheCulprit() throws {
        let policy = try RetentionPolicy.fromEnvironment(["RETENTION_KEEP_DAILY": "7", "RETENTION_KEEP_WITHIN": "1y2w"])
        #expect(policy.keepDaily == 7)
        #expect(policy.keepWithin == RetentionDuration(years: 1, weeks: 2))
        #expect(try RetentionPolicy.fromEnvironment([:]).isEmpty)
        let bad = #expect(throws: StackVaultError.self) {
            try RetentionPolicy.fromEnvironment(["RETENTION_KEEP_WEEKLY": "four"])
        }
        #expect(bad?.message.contains("RETENTION_KEEP_WEEKLY") == true)
        let unit = #expect(throws: StackVaultError.self) { try RetentionDuration(parsing: "3q", name: "--keep-within") }
        #expect(unit?.message.contains("--keep-within") == true)
        #expect(throws: StackVaultError.self) { try RetentionDuration(parsing: "12", name: "x") }
    }

    @Test func prunerDeletesOnlyWhatThePolicyRemovesAndNeverForeignObjects() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sv-prune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let names = (1...5).map { day in
            // A stack's archives may mix plaintext and encrypted ones (a key introduced later).
            ArchiveName.make(stack: "app", date: Self.date("2026-08-0\(day)T03:00"), encrypted: day % 2 == 0)
        } + [ArchiveName.make(stack: "other", date: Self.date("2026-08-01T03:00")), "notes.txt",
             "backup-app-garbage.tar.zst"]
        for name in names { try Data("x".utf8).write(to: directory.appendingPathComponent(name)) }
        let storage = LocalDirectoryBackend(directory: directory.path)

        let pruner = Pruner(storage: storage, policy: RetentionPolicy(keepLast: 2), logger: .init(label: "t"))
        let dry = try await pruner.prune(stacks: ["app"], dryRun: true)
        #expect(dry.map(\.stack) == ["app"])
        #expect(dry[0].decisions.filter { !$0.keep }.count == 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).count == names.count)

        _ = try await pruner.prune(stacks: nil, dryRun: false, protecting: [names[0]])
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: directory.path))
        #expect(left == [names[4], names[3], names[0], names[5], "notes.txt", "backup-app-garbage.tar.zst"])
    }
}
