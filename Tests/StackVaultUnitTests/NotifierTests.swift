import Foundation
import StackVaultCore
import Testing

@Suite struct NotifierTests {
    @Test func targetsAreParsedByPrefix() throws {
        let targets = try NotificationTarget.list(from:
            "https://hooks.example/x, ntfy+https://ntfy.sh/backups healthchecks+https://hc-ping.com/abc/ "
                + "uptimekuma+https://kuma.example/api/push/tok?x=1")
        #expect(targets.map(\.kind) == [.webhook, .ntfy, .healthchecks, .uptimeKuma])
        #expect(targets[2].url == "https://hc-ping.com/abc")
        #expect(targets[3].url == "https://kuma.example/api/push/tok?x=1")
        #expect(try NotificationTarget.list(from: nil).isEmpty)
        let error = #expect(throws: StackVaultError.self) {
            try NotificationTarget.list(from: "ntfy+mytopic")
        }
        #expect(error?.message.contains("ntfy+mytopic") == true)
        #expect(throws: StackVaultError.self) {
            try Notifier(environment: ["NOTIFY_ON": "sometimes"], logger: .init(label: "t"))
        }
    }

    @Test func theHeadlineNamesTheFailedStackAndWhy() {
        func result(_ stack: String, _ error: String?) -> StackOutcome {
            StackOutcome(stack: stack, status: error == nil ? .succeeded : .failed, durationSeconds: 1, detail: error,
                         services: 1)
        }
        func run(_ stacks: [StackOutcome]) -> RunRecord {
            let now = Date()
            return RunRecord(trigger: .manual, due: now, startedAt: now, finishedAt: now,
                             outcome: stacks.allSatisfy(\.succeeded) ? .succeeded : .failed, stacks: stacks)
        }
        let failed = run([result("app", nil), result("shop", "mariadb-dump failed: Access denied")])
        #expect(!failed.everyStackOK)
        #expect(failed.headline(host: "h1")
            == "StackVault on h1: stack shop FAILED: mariadb-dump failed: Access denied (1 of 2 stack(s) backed up)")
        let fine = run([result("app", nil)])
        #expect(fine.headline(host: "h1") == "StackVault on h1: all 1 stack(s) backed up")
    }
}
