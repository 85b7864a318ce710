import Foundation
import StackVaultCore
import StackVaultMetrics
import Testing

/// Health and metrics of the daemon's restore drills.
@Suite struct DrillHealthTests {
    static func date(_ text: String) -> Date { CronFixtures.utc(text) }

    /// A daily daemon started Monday 01:00 whose Monday 02:00 backup succeeded, drilling daily at 04:00.
    static func state(drills: [String: DrillRecord]?, maxAge: Double? = nil) -> DaemonState {
        var state = DaemonHealthTests.state(lastRun: DaemonHealthTests.run(
            due: "2024-01-15 02:00", outcome: .succeeded, stacks: [.init(stack: "app", status: .succeeded)]))
        state.drillSchedule = "0 4 * * *"
        state.drillMaxAgeSeconds = maxAge
        state.drills = drills
        return state
    }

    static func drill(_ passed: Bool, at: String, lastSuccess: String?) -> DrillRecord {
        DrillRecord(archive: "backup-app-20240115-020000-x.tar.zst", finishedAt: date(at), passed: passed,
                    problems: passed ? [] : ["db db/database/pg_dumpall.sql: table shop.public.items: 3000 rows in "
                        + "the dump, 0 after the replay"],
                    lastSuccessAt: lastSuccess.map(date))
    }

    @Test func aFailedDrillIsUnhealthyNamingTheStackAndTheDifference() {
        let report = HealthCheck.evaluate(
            Self.state(drills: ["app": Self.drill(true, at: "2024-01-15 04:10", lastSuccess: "2024-01-15 04:10"),
                                "shop": Self.drill(false, at: "2024-01-15 04:20", lastSuccess: nil)]),
            now: Self.date("2024-01-15 05:00"))
        #expect(!report.healthy)
        #expect(report.message.contains("the last restore drill of stack shop"))
        #expect(report.message.contains("3000 rows in the dump, 0 after the replay"))
    }

    @Test func passedDrillsAreHealthyUntilDrillMaxAge() {
        let state = Self.state(drills: ["app": Self.drill(true, at: "2024-01-15 04:10",
                                                          lastSuccess: "2024-01-15 04:10")], maxAge: 86_400 * 2)
        let fresh = HealthCheck.evaluate(state, now: Self.date("2024-01-16 01:00"))
        #expect(fresh.healthy, "\(fresh.message)")
        #expect(fresh.message.contains("last drills passed for 1 stack(s)"))
        // The backup side must stay healthy for the drill age to decide: a run succeeded every day.
        var later = state
        later.lastRun = DaemonHealthTests.run(due: "2024-01-17 02:00", outcome: .succeeded,
                                              stacks: [.init(stack: "app", status: .succeeded)])
        let stale = HealthCheck.evaluate(later, now: Self.date("2024-01-17 04:11"))
        #expect(!stale.healthy)
        #expect(stale.message.contains("older than DRILL_MAX_AGE"), "\(stale.message)")
    }

    @Test func withoutAnyDrillDrillMaxAgeCountsFromTheDaemonStart() {
        var state = Self.state(drills: nil, maxAge: 3600)
        state.lastRun = nil
        #expect(HealthCheck.evaluate(state, now: Self.date("2024-01-15 01:30")).healthy)
        let report = HealthCheck.evaluate(state, now: Self.date("2024-01-15 02:30"))
        #expect(!report.healthy && report.message.contains("no restore drill has passed"), "\(report.message)")
    }

    @Test func drillMetrics() {
        let metrics = BackupMetrics(host: "h")
        metrics.recordDrill(stack: "app", passed: true, finishedAt: Date(timeIntervalSince1970: 1_700_000_000))
        metrics.recordDrill(stack: "shop", passed: false, finishedAt: Date(timeIntervalSince1970: 1_700_000_100))
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"stackvault_stack_last_drill_success_timestamp_seconds{host="h",stack="app"} 1700000000"#)
            || text.contains(#"stackvault_stack_last_drill_success_timestamp_seconds{host="h",stack="app"} 1.7e+09"#),
            "\(text)")
        #expect(text.contains(#"stackvault_stack_drill_failures_total{host="h",stack="shop"} 1"#), "\(text)")
        #expect(text.contains(#"stackvault_stack_drill_failures_total{host="h",stack="app"} 0"#), "\(text)")
    }
}
