import Foundation
import Logging
import Testing
@testable import StackVaultCore

/// The progress lines' text and fields, at instants the test chooses (no timer, no timing assertion).
@Suite struct ProgressReporterTests {
    let start = ContinuousClock.now
    let capture = RecordingLogHandler()

    func reporter(_ operation: String = "copy", total: ProgressTotal?, interval: Int? = 10, fields: Bool = true)
        -> ProgressReporter
    {
        ProgressReporter(operation: operation, subject: "volume-path data (service app)", total: total,
                         logger: capture.logger,
                         settings: ProgressSettings(interval: interval.map { .seconds($0) }, metadataFields: fields),
                         started: start)
    }

    @Test func anEstimatedTotalIsMarkedWithATildeAndTheWord() throws {
        let progress = reporter(total: ProgressTotal(bytes: 1_536 << 20, estimated: true))
        progress.add(600 << 20)
        progress.add(264 << 20)  // 864 MiB after 10 s: 86.4 MiB/s, 672 MiB left: 7.8 s
        let line = try #require(progress.line(at: start + .seconds(10)))
        #expect(line.message == "copy of volume-path data (service app): 864.0 MiB of ~1.5 GiB estimated (56 %), "
            + "86.4 MiB/s, ETA 8 s")
        #expect(line.percent == 56 && line.etaSeconds == 8 && line.rateBytesPerSecond == (864 << 20) / 10)
    }

    @Test func anExactTotalHasNoMarkerAndAMinutesETA() throws {
        let progress = reporter("upload", total: ProgressTotal(bytes: 10 << 30, estimated: false))
        progress.set(1 << 30)
        let line = try #require(progress.line(at: start + .seconds(20)))
        #expect(line.message == "upload of volume-path data (service app): 1.0 GiB of 10.0 GiB (10 %), 51.2 MiB/s, "
            + "ETA 3 min 0 s")
        #expect(ProgressLine.duration(7_500) == "2 h 05 min" && ProgressLine.duration(59) == "59 s")
    }

    @Test func withoutATotalOnlyBytesAndRate() throws {
        let progress = reporter("dump", total: nil)
        progress.add(3 << 20)
        let line = try #require(progress.line(at: start + .seconds(30)))
        #expect(line.message == "dump of volume-path data (service app): 3.0 MiB (total unknown), 102.4 KiB/s")
        #expect(line.percent == nil && line.etaSeconds == nil)
        #expect(line.metadata["progress_total_bytes"] == nil && line.metadata["progress_eta_seconds"] == nil)
    }

    @Test func pastAnEstimateNoPercentAndNoETA() throws {
        let progress = reporter(total: ProgressTotal(bytes: 100 << 20, estimated: true))
        progress.add(150 << 20)
        let line = try #require(progress.line(at: start + .seconds(10)))
        #expect(line.message == "copy of volume-path data (service app): 150.0 MiB of ~100.0 MiB estimated (more "
            + "than estimated), 15.0 MiB/s, ETA unknown")
        #expect(line.percent == nil && line.etaSeconds == nil)
    }

    @Test func noLineBeforeTheFirstIntervalNorWhenOff() {
        let progress = reporter(total: ProgressTotal(bytes: 100, estimated: false))
        progress.add(50)
        progress.log(at: start + .seconds(9))
        #expect(progress.line(at: start + .milliseconds(9_999)) == nil && capture.events.isEmpty)
        progress.log(at: start + .seconds(10))
        #expect(capture.events.count == 1)

        let off = reporter(total: nil, interval: nil)
        off.start().finish()
        #expect(off.line(at: start + .seconds(3_600)) == nil)
    }

    @Test func fieldsAreNumbersAndBooleansForJSONLogs() throws {
        let progress = reporter(total: ProgressTotal(bytes: 1_000, estimated: true))
        progress.add(250)
        progress.log(at: start + .seconds(10))
        let line = try #require(capture.events.first)
        #expect(line.message.hasPrefix("copy of volume-path data (service app): 250 B of ~1000 B estimated (25 %)"))
        let json = line.metadata.mapValues(LogMetadataJSON.value)
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        #expect(String(decoding: data, as: UTF8.self) == #"{"progress_done_bytes":250,"progress_eta_seconds":30,"#
            + #""progress_operation":"copy","progress_rate_bytes_per_second":25,"progress_total_bytes":1000,"#
            + #""progress_total_estimated":true}"#)

        // Text logs: the line says the numbers; no fields.
        let text = RecordingLogHandler()
        ProgressReporter(operation: "restore", subject: "x", total: nil, logger: text.logger,
                         settings: ProgressSettings(interval: .seconds(1), metadataFields: false), started: start)
            .log(at: start + .seconds(1))
        #expect(text.events.count == 1 && text.events[0].metadata.isEmpty)
    }

    @Test func theIntervalComesFromProgressInterval() throws {
        #expect(try ProgressSettings.parse(environment: [:], metadataFields: true).interval == .seconds(10))
        #expect(try ProgressSettings.parse(environment: ["PROGRESS_INTERVAL": "0"], metadataFields: true).interval
            == nil)
        #expect(try ProgressSettings.parse(environment: ["PROGRESS_INTERVAL": "2"], metadataFields: false)
            == ProgressSettings(interval: .seconds(2), metadataFields: false))
        #expect(throws: StackVaultError.self) {
            try ProgressSettings.parse(environment: ["PROGRESS_INTERVAL": "5s"], metadataFields: true)
        }
    }
}

/// The size walk behind a copy's estimated total (`stackvault helper size`).
@Suite struct DirectorySizeTests {
    @Test func countsEveryEntryAndEachFilesBytesOnce() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("svsize-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/sub/deeper", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/a", contents: Data(count: 100)))
        #expect(FileManager.default.createFile(atPath: root + "/sub/deeper/d", contents: Data(count: 50)))
        #expect(link(root + "/a", root + "/b") == 0)  // a hard link: its bytes count once
        #expect(symlink("a", root + "/c") == 0)  // not followed
        let summary = try DirectorySize.measure(directory: root)
        #expect(summary.operation == "size" && summary.entries == 7 && summary.dataBytes == 150)
        #expect(throws: StackVaultError.self) { try DirectorySize.measure(directory: root + "/missing") }
    }

    /// A sparse file counts as the copy stores it: its data, not its holes (a small one whole, holes and all).
    @Test func aSparseFileCountsItsDataNotItsHoles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("svsize-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/big", contents: Data(count: 8192)))
        #expect(truncate(root + "/big", 4 << 30) == 0)
        #expect(FileManager.default.createFile(atPath: root + "/small", contents: nil))
        #expect(truncate(root + "/small", 60_000) == 0)
        let summary = try DirectorySize.measure(directory: root)
        #expect(summary.dataBytes >= 8192 + 60_000 && summary.dataBytes < 1 << 20, "\(summary.dataBytes)")
    }
}
