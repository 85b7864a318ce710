import Foundation
import Testing

extension Integration {
    /// What `verify`, `restore` and `drill` say and exit with when the selection is wrong or not confirmed (#20).
    @Suite struct SelectionMessagesTests {
        @Test func missingStackAndUnconfirmedRestoreExitCodes() throws {
            try TestBed.requireDocker()
            let stack = "svtest-msg-\(UUID().uuidString.prefix(8).lowercased())"
            try HostsTests.container(stack)
            defer { _ = try? Shell.run(["docker", "rm", "-f", stack], check: false) }
            let target = try HostsTests.fileTarget()
            defer { target.cleanUp() }
            let environment = ["STACKVAULT_HOST": "msg-host"]
            try Docker.exec(stack, "printf 'kept' > /data/who")
            let backup = try StackVaultCLI.run(["backup", "--stack", stack, "--target", target.url],
                                               environment: environment)
            #expect(backup.ok, "\(backup.stdout)\n\(backup.stderr)")

            // A stack without archives: exit 2, the message names it and the stacks this host has archives of.
            for command in ["verify", "restore", "drill"] {
                let run = try StackVaultCLI.run([command, "--latest", "--stack", "nope", "--target", target.url],
                                                environment: environment)
                #expect(run.status == 2, "\(command): \(run.status)\n\(run.stderr)")
                #expect(run.stderr.contains("has no archive of the stack 'nope'"), "\(command): \(run.stderr)")
                #expect(run.stderr.contains("stacks it has archives of: \(stack)"), "\(command): \(run.stderr)")
            }

            // A restore without a terminal and without --yes is refused: exit 1, nothing changed.
            try Docker.exec(stack, "printf 'changed' > /data/who")
            let refused = try StackVaultCLI.run(["restore", "--latest", "--stack", stack, "--target", target.url],
                                                environment: environment)
            #expect(refused.status == 1, "\(refused.status)\n\(refused.stderr)")
            #expect(refused.stderr.contains("run it again with --yes"), "\(refused.stderr)")
            #expect(try Docker.exec(stack, "cat /data/who") == "changed")
        }
    }
}
