public import Logging
import Foundation

/// One place a run's outcome is sent to, from `NOTIFY_URLS`.
///
/// - `https://host/path` (or `http://`, `webhook+https://...`): a generic webhook; the run summary is POSTed as JSON.
/// - `ntfy+https://ntfy.sh/TOPIC`: an ntfy topic; a one-line message with a title, priority and tags.
/// - `healthchecks+https://hc-ping.com/UUID`: healthchecks-style pings: `/start` when a run starts, the URL itself
///   on success, `/fail` (with the summary as body) on failure.
/// - `uptimekuma+https://kuma/api/push/TOKEN`: Uptime Kuma push: `?status=up&msg=...` or `?status=down&msg=...`.
public struct NotificationTarget: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case webhook, ntfy, healthchecks, uptimeKuma }

    public var kind: Kind
    /// The URL requests go to (without the `kind+` prefix).
    public var url: String

    public init(parsing text: String) throws {
        let value = text.trimmingCharacters(in: .whitespaces)
        let prefixes: [(String, Kind)] = [("webhook+", .webhook), ("ntfy+", .ntfy), ("healthchecks+", .healthchecks),
                                          ("uptimekuma+", .uptimeKuma)]
        var kind = Kind.webhook
        var url = value
        for (prefix, candidate) in prefixes where value.lowercased().hasPrefix(prefix) {
            kind = candidate
            url = String(value.dropFirst(prefix.count))
        }
        guard url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://"),
              url.split(separator: "/").count >= 2
        else {
            throw StackVaultError(.invalidConfiguration,
                "NOTIFY_URLS entry '\(Redaction.redactURL(value))' is not a URL; use https://..., ntfy+https://..., "
                    + "healthchecks+https://... or uptimekuma+https://...")
        }
        while kind != .uptimeKuma && url.hasSuffix("/") { url.removeLast() }
        self.kind = kind
        self.url = url
    }

    /// Targets from a comma- or whitespace-separated list.
    public static func list(from text: String?) throws -> [NotificationTarget] {
        guard let text else { return [] }
        return try text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }).map {
            try NotificationTarget(parsing: String($0))
        }
    }

    public var description: String { "\(kind.rawValue) \(Redaction.redactURL(url))" }
}

/// Sends run notifications. A target that fails is logged and never fails the backup.
public struct Notifier: Sendable {
    public let targets: [NotificationTarget]
    /// Also notify webhooks and ntfy on success (`NOTIFY_ON=always`); pings always report both.
    public let notifyOnSuccess: Bool
    public let logger: Logger
    private let http = HTTPClient()

    public init(targets: [NotificationTarget], notifyOnSuccess: Bool, logger: Logger) {
        self.targets = targets
        self.notifyOnSuccess = notifyOnSuccess
        self.logger = logger
    }

    /// From `NOTIFY_URLS` and `NOTIFY_ON` (`failure`, the default, or `always`).
    public init(environment: [String: String], logger: Logger) throws {
        let on = (environment["NOTIFY_ON"] ?? "failure").trimmingCharacters(in: .whitespaces).lowercased()
        guard ["failure", "always", ""].contains(on) else {
            throw StackVaultError(.invalidConfiguration, "NOTIFY_ON='\(on)' must be 'failure' or 'always'")
        }
        self.init(targets: try NotificationTarget.list(from: environment["NOTIFY_URLS"]),
                  notifyOnSuccess: on == "always", logger: logger)
    }

    /// Tells ping targets that a run started.
    public func runStarted() async {
        for target in targets where target.kind == .healthchecks {
            await send(HTTPRequest(method: "POST", url: target.url + "/start", timeoutSeconds: 10), to: target)
        }
    }

    /// Reports the outcome of a run of `host`: its headline (`RunRecord.headline(host:)`), and to webhooks
    /// every stack's `StackOutcome.Summary`.
    public func runFinished(_ run: RunRecord, host: String) async {
        let headline = run.headline(host: host)
        let summary = WebhookPayload(host: host, startedAt: run.startedAt, finishedAt: run.finishedAt,
                                     succeeded: run.everyStackOK, stacks: run.summaries, message: headline)
        for target in targets {
            let request: HTTPRequest
            switch target.kind {
            case .healthchecks:
                request = HTTPRequest(method: "POST", url: target.url + (summary.succeeded ? "" : "/fail"),
                                      headers: [("Content-Type", "text/plain; charset=utf-8")],
                                      body: .bytes(Array(headline.utf8)), timeoutSeconds: 10)
            case .uptimeKuma:
                let separator = target.url.contains("?") ? "&" : "?"
                request = HTTPRequest(
                    method: "GET",
                    url: target.url + separator + "status=\(summary.succeeded ? "up" : "down")&msg="
                        + percentEncode(String(headline.prefix(250))),
                    timeoutSeconds: 10)
            case .webhook:
                guard notifyOnSuccess || !summary.succeeded else { continue }
                let encoder = JSONEncoder()
                encoder.dateEncodingStrategy = .iso8601
                encoder.outputFormatting = [.sortedKeys]
                guard let body = try? encoder.encode(summary) else { continue }
                request = HTTPRequest(method: "POST", url: target.url, headers: [("Content-Type", "application/json")],
                                      body: .bytes(Array(body)), timeoutSeconds: 10)
            case .ntfy:
                guard notifyOnSuccess || !summary.succeeded else { continue }
                request = HTTPRequest(
                    method: "POST", url: target.url,
                    headers: [("Title", summary.succeeded ? "Backup succeeded on \(summary.host)"
                                   : "Backup FAILED on \(summary.host)"),
                              ("Priority", summary.succeeded ? "default" : "high"),
                              ("Tags", summary.succeeded ? "white_check_mark" : "rotating_light")],
                    body: .bytes(Array(headline.utf8)), timeoutSeconds: 10)
            }
            await send(request, to: target)
        }
    }

    /// A restore drill of `stack` failed: webhook targets get a JSON document (`event: "drill_failed"`), ntfy
    /// targets a high-priority message. Healthchecks.io and Uptime Kuma monitors follow the backup runs only.
    public func drillFailed(stack: String, archive: String, problems: [String], host: String) async {
        let message = "Restore drill FAILED on \(host): stack \(stack), archive \(archive): "
            + problems.prefix(3).joined(separator: "; ")
        for target in targets {
            let request: HTTPRequest
            switch target.kind {
            case .webhook:
                let document = DrillFailure(host: host, stack: stack, archive: archive, problems: problems,
                                            message: message)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                guard let body = try? encoder.encode(document) else { continue }
                request = HTTPRequest(method: "POST", url: target.url, headers: [("Content-Type", "application/json")],
                                      body: .bytes(Array(body)), timeoutSeconds: 10)
            case .ntfy:
                request = HTTPRequest(
                    method: "POST", url: target.url,
                    headers: [("Title", "Restore drill FAILED on \(host)"), ("Priority", "high"),
                              ("Tags", "rotating_light")],
                    body: .bytes(Array(message.utf8)), timeoutSeconds: 10)
            case .healthchecks, .uptimeKuma:
                continue
            }
            await send(request, to: target)
        }
    }

    /// The JSON a webhook receives for a failed drill.
    struct DrillFailure: Encodable {
        var event = "drill_failed"
        var host: String
        var stack: String
        var archive: String
        var problems: [String]
        var message: String
    }

    private func send(_ request: HTTPRequest, to target: NotificationTarget) async {
        do {
            let response = try await http.send(request)
            if !(200..<300).contains(response.status) {
                logger.warning("notification to \(target) answered HTTP \(response.status): \(response.bodyText.prefix(200))")
            }
        } catch {
            logger.warning("notification to \(target) failed: \(error)")
        }
    }

    /// The JSON a webhook receives.
    struct WebhookPayload: Encodable {
        var host: String
        var startedAt: Date
        var finishedAt: Date
        var succeeded: Bool
        var stacks: [StackOutcome.Summary]
        var message: String
    }
}
