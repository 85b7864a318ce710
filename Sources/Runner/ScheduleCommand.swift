import ArgumentParser
import Foundation
import StackVaultCore

/// `stackvault schedule`: the next run times of a cron expression, to check it before deploying.
struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Prints the next run times of a cron expression (default: $CRON_SCHEDULE or 0 2 * * *).",
        discussion: "Five fields (minute hour day-of-month month day-of-week) with *, ranges, lists, steps and "
            + "names, or @hourly, @daily, @weekly, @monthly, @yearly. Times are in --time-zone, else $TZ, else UTC. "
            + "Exit code 0, or 2 when the expression or the time zone is invalid."
    )

    @Argument(help: "The cron expression, quoted (default: $CRON_SCHEDULE or \"0 2 * * *\").")
    var expression: String?

    @Option(name: .long, help: "How many run times to print.")
    var next = 5

    @Option(name: .long, help: "IANA time zone, e.g. Europe/Berlin (default: $TZ or UTC).")
    var timeZone: String?

    @Option(name: .long, help: "Start from this time instead of now (ISO 8601, e.g. 2024-03-30T12:00:00Z).")
    var after: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let variables = ProcessInfo.processInfo.environment
        let schedule: CronSchedule
        let start: Date
        do {
            schedule = try DaemonCommand.schedule(expression: expression, timeZone: timeZone, environment: variables)
            if let after {
                guard let date = try? Date(after, strategy: .iso8601) else {
                    throw StackVaultError(.invalidConfiguration,
                        "--after '\(after)' is not an ISO 8601 time such as 2024-03-30T12:00:00Z")
                }
                start = date
            } else {
                start = Date()
            }
        } catch {
            printError(DaemonCommand.describe(error))
            throw ExitStatus.unreachable
        }
        guard next > 0 else {
            printError("--next must be at least 1")
            throw ExitStatus.unreachable
        }
        let runs = schedule.upcoming(after: start, count: next)
        if json {
            print(try Self.json(schedule, runs))
        } else {
            print(Self.text(schedule, runs), terminator: "")
        }
    }

    static func text(_ schedule: CronSchedule, _ runs: [ScheduledRun]) -> String {
        let expression = schedule.expression
        var out = "Schedule \"\(expression.source)\""
            + (expression.source.hasPrefix("@") ? " (\(expression.fields.joined(separator: " ")))" : "")
            + " in \(schedule.timeZone.identifier)\n"
        if runs.isEmpty { return out + "  never runs\n" }
        for run in runs {
            out += "  \(run.iso8601)  \(weekday(run.localTime))" + (run.abbreviation.map { "  \($0)" } ?? "")
            if run.standsInForSkippedTime {
                out += "  (at the clock change: the scheduled time does not exist that day)"
            }
            out += "\n"
        }
        return out
    }

    static func json(_ schedule: CronSchedule, _ runs: [ScheduledRun]) throws -> String {
        let object: [String: Any] = [
            "expression": schedule.expression.source,
            "fields": schedule.expression.fields,
            "timeZone": schedule.timeZone.identifier,
            "runs": runs.map { run -> [String: Any] in
                [
                    "local": run.iso8601, "utc": run.date.formatted(.iso8601), "weekday": weekday(run.localTime),
                    "abbreviation": run.abbreviation ?? "", "atClockChange": run.standsInForSkippedTime,
                ]
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: object,
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func weekday(_ time: CivilTime) -> String {
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][time.weekday]
    }
}
