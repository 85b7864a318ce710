import Foundation
import StackVaultCore
import Testing

/// Period rules count local calendar periods of `TZ`, as restic's `forget` counts a snapshot's local time
/// (restic `internal/restic/snapshot_policy.go`: `ymdh`, `ymd`, `yw` (Go's `ISOWeek`), `ym`, `y` of the
/// snapshot's `time.Time`, which carries the zone it was taken in).
@Suite struct RetentionTimeZoneTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!

    /// Archive names (their times are UTC) to the names of the kept ones, newest first.
    static func kept(_ policy: RetentionPolicy, stamps: [String]) -> [String] {
        let backups = stamps.map { stamp -> (name: String, time: Date) in
            let name = "backup-app-\(stamp)-00000000-0000-0000-0000-000000000000.tar.zst"
            return (name, ArchiveName.parse(name)!.date)
        }
        return policy.apply(to: backups).filter(\.keep).map {
            String($0.name.dropFirst("backup-app-".count).prefix(15))
        }
    }

    /// The four names: four different Berlin days (29, 30, 31 March, 1 April 2025), three UTC days.
    @Test func fourBerlinDaysAreFourDays() throws {
        let stamps = ["20250329-003000", "20250330-003000", "20250330-233000", "20250331-233000"]
        let policy = try RetentionPolicy.fromEnvironment(["TZ": "Europe/Berlin", "RETENTION_KEEP_DAILY": "4"])
        #expect(Self.kept(policy, stamps: stamps) == stamps.reversed())
        // In UTC the same four names are three days: 30 March 00:30 and 23:30 share one.
        let utc = RetentionPolicy(keepDaily: 4)
        #expect(Self.kept(utc, stamps: stamps) == ["20250331-233000", "20250330-233000", "20250329-003000"])
    }

    @Test func badTimeZoneNamesTZ() {
        let error = #expect(throws: StackVaultError.self) {
            try RetentionPolicy.fromEnvironment(["TZ": "Mars/Olympus", "RETENTION_KEEP_DAILY": "4"])
        }
        #expect(error?.message.contains("TZ='Mars/Olympus'") == true)
    }

    /// One case of the table: archives at UTC stamps, a rule, and which are kept (restic's verdict, worked out by
    /// hand from its rules: the newest of each local period, newest periods first).
    struct Case: CustomTestStringConvertible, Sendable {
        var label: String
        var zone: String
        var policy: RetentionPolicy
        var stamps: [String]
        var kept: [String]
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        // ISO weeks across New Year, in Berlin: 2026-01-04 22:30 UTC is Sunday 23:30 local, the last of 2026-W01;
        // 23:30 UTC is Monday 00:30 local, 2026-W02; Sun 2026-12-27 23:30 UTC is Mon 2026-12-28 00:30 local, in
        // 2026-W53 with Sun 2027-01-03; 2025-12-29 (Mon) is already 2026-W01.
        Case(label: "ISO week across New Year (Berlin)", zone: "Europe/Berlin", policy: RetentionPolicy(keepWeekly: 9),
             stamps: ["20251228-120000", "20251229-120000", "20260104-223000", "20260104-233000",
                      "20261227-233000", "20270103-120000", "20270104-120000"],
             kept: ["20270104-120000", "20270103-120000", "20260104-233000", "20260104-223000",
                    "20251228-120000"]),
        // The same in UTC: 2026-01-04 23:30 UTC is W01 too, but 2026-12-27 23:30 UTC is Sunday of W52.
        Case(label: "ISO week across New Year (UTC)", zone: "UTC", policy: RetentionPolicy(keepWeekly: 9),
             stamps: ["20251228-120000", "20251229-120000", "20260104-223000", "20260104-233000",
                      "20261227-233000", "20270103-120000", "20270104-120000"],
             kept: ["20270104-120000", "20270103-120000", "20261227-233000", "20260104-233000",
                    "20251228-120000"]),
        // Yearly across New Year: 2025-12-31 23:30 UTC is 2026-01-01 00:30 in Berlin.
        Case(label: "year boundary (Berlin)", zone: "Europe/Berlin", policy: RetentionPolicy(keepYearly: 5),
             stamps: ["20251231-223000", "20251231-233000", "20260101-120000"],
             kept: ["20260101-120000", "20251231-223000"]),
        // Monthly: 2026-01-31 23:30 UTC is February in Berlin.
        Case(label: "month boundary (Berlin)", zone: "Europe/Berlin", policy: RetentionPolicy(keepMonthly: 5),
             stamps: ["20260131-223000", "20260131-233000", "20260201-120000"],
             kept: ["20260201-120000", "20260131-223000"]),
        // Spring forward, Berlin 2025-03-30: 02:00 CET becomes 03:00 CEST, a day of 23 hours. 2025-03-29 23:30
        // UTC is 30 March 00:30 CET; 2025-03-30 21:59 UTC is 23:59 CEST; 22:00 UTC is 31 March.
        Case(label: "spring-forward day (Berlin)", zone: "Europe/Berlin", policy: RetentionPolicy(keepDaily: 9),
             stamps: ["20250329-225900", "20250329-233000", "20250330-215900", "20250330-220000"],
             kept: ["20250330-220000", "20250330-215900", "20250329-225900"]),
        // Fall back, Berlin 2025-10-26: 03:00 CEST becomes 02:00 CET, a day of 25 hours, 22:00 UTC on the 25th to
        // 23:00 UTC on the 26th.
        Case(label: "fall-back day (Berlin)", zone: "Europe/Berlin", policy: RetentionPolicy(keepDaily: 9),
             stamps: ["20251025-215900", "20251025-220000", "20251026-120000", "20251026-225900",
                      "20251026-230000"],
             kept: ["20251026-230000", "20251026-225900", "20251025-215900"]),
        // Hourly across the repeated hour: 00:30 UTC (02:30 CEST) and 01:30 UTC (02:30 CET) are one real hour apart
        // but both local hour 2 of 26 October: restic's ymdh puts them in one bucket. 01:00 UTC is 02:00 CET.
        Case(label: "hourly across the repeated hour (Berlin)", zone: "Europe/Berlin",
             policy: RetentionPolicy(keepHourly: 9),
             stamps: ["20251025-235900", "20251026-000000", "20251026-003000", "20251026-010000",
                      "20251026-013000", "20251026-020000"],
             kept: ["20251026-020000", "20251026-013000", "20251025-235900"]),
        // Hourly across the skipped hour: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST; local hour 2 never is.
        Case(label: "hourly across the skipped hour (Berlin)", zone: "Europe/Berlin",
             policy: RetentionPolicy(keepHourly: 9),
             stamps: ["20250330-003000", "20250330-005900", "20250330-010000", "20250330-013000"],
             kept: ["20250330-013000", "20250330-005900"]),
        // A zone west of UTC: New York's spring forward 2025-03-09 07:00 UTC; 04:59 UTC on 9 March is 23:59 EST of
        // the 8th, 05:00 UTC is 00:00 EST of the 9th.
        Case(label: "daily west of UTC (New York)", zone: "America/New_York", policy: RetentionPolicy(keepDaily: 9),
             stamps: ["20250309-045900", "20250309-050000", "20250310-035900", "20250310-040000"],
             kept: ["20250310-040000", "20250310-035900", "20250309-045900"]),
    ]

    @Test(arguments: cases) func restic(_ example: Case) throws {
        var policy = example.policy
        policy.timeZone = TimeZone(identifier: example.zone)!
        #expect(Self.kept(policy, stamps: example.stamps) == example.kept)
    }

    /// `prune --json` says for each archive which local period each rule counted it for.
    @Test func decisionsNameTheirPeriods() {
        var policy = RetentionPolicy(keepHourly: 1, keepDaily: 1, keepWeekly: 1, keepMonthly: 1, keepYearly: 1)
        policy.timeZone = Self.berlin
        let name = "backup-app-20251231-233000-00000000-0000-0000-0000-000000000000.tar.zst"
        let decision = policy.apply(to: [(name, ArchiveName.parse(name)!.date)])[0]
        #expect(decision.localTime == "2026-01-01T00:30:00+01:00")
        #expect(decision.periods == ["hourly": "2026-01-01T00", "daily": "2026-01-01", "weekly": "2026-W01",
                                     "monthly": "2026-01", "yearly": "2026"])
    }
}
