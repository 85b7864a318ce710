import Foundation
import StackVaultCore
import Testing

/// Progress lines of long work (issue #20): a real copy of a few hundred MB at a slow zstd level, then its
/// verification and restore, with `PROGRESS_INTERVAL=1`, log lines with a total, a percentage and an ETA.
extension Integration {
    @Suite struct ProgressTests {
        @Test func aSlowCopyAndItsRestoreLogProgressWithTotalsAndETA() async throws {
            try TestBed.requireDocker()
            // 256 MiB that zstd cannot shrink: level 12 reads it at some tens of MB/s on 2 cores, several seconds.
            let target = try HelperCopyTests.Target.make(
                labels: ["backup.volume-path.data": "/data"],
                prepare: "dd if=/dev/urandom of=/data/random bs=1048576 count=256 2>/dev/null")
            defer { target.remove() }

            let backup = try target.backup(environment: [
                "PROGRESS_INTERVAL": "1", "ZSTD_LEVEL": "12", "ZSTD_THREADS": "1", "LOG_FORMAT": "json",
            ])
            #expect(backup.ok, "\(backup.stderr)")
            let lines = backup.stderr.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let copies = lines.filter { ($0["message"] as? String)?.hasPrefix("copy of volume-path data") == true }
            let copy = try #require(copies.first, "no progress line of the copy in: \(backup.stderr.suffix(3000))")
            let message = try #require(copy["message"] as? String)
            #expect(message.contains(" of ~") && message.contains(" estimated (") && message.contains("ETA"),
                    "\(message)")
            let fields = try #require(copy["metadata"] as? [String: Any])
            #expect(fields["progress_operation"] as? String == "copy")
            #expect(fields["progress_total_estimated"] as? Bool == true)
            // Measured before the copy by `stackvault helper size`: the file's exact size, as nothing changed.
            #expect((fields["progress_total_bytes"] as? NSNumber)?.int64Value == 256 << 20)
            #expect(((fields["progress_done_bytes"] as? NSNumber)?.int64Value ?? 0) > 0)
            #expect(fields["progress_rate_bytes_per_second"] is NSNumber && fields["progress_eta_seconds"] is NSNumber)

            let restore = try target.stackvault(["restore", "--latest", "--stack", target.name, "--yes"],
                                                environment: ["PROGRESS_INTERVAL": "1"])
            #expect(restore.ok, "\(restore.stderr)")
            let restoring = restore.stderr.split(separator: "\n").filter { $0.contains("restore of volume-path data") }
            let line = try #require(restoring.first, "no progress line of the restore in: \(restore.stderr)")
            // The component's size from the manifest: exact, no marker; text logs carry no fields.
            #expect(line.contains(" of 256.0 MiB (") && line.contains("ETA") && !line.contains("progress_"), "\(line)")
            #expect(try target.helpersLeft().isEmpty)
        }
    }
}
