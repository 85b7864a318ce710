import Foundation
import Logging
import Testing

@testable import StackVaultCore

/// ArchiveWriter + ArchiveVerifier, checked with the real tools: GNU tar makes the input trees and extracts the
/// output, the zstd CLI tests it.
@Suite("ArchiveWriter and ArchiveVerifier")
struct ArchiveWriterTests {
    typealias Support = ArchiveTestSupport

    struct Boom: Error {}

    /// A source tree with the awkward cases, and GNU tar archives of it (gnu and pax formats, one single file).
    static func makeSampleTree(in directory: Support.TemporaryDirectory) throws {
        let script = #"""
            set -euo pipefail
            mkdir -p src/data && cd src/data
            printf 'hello\n' > plain.txt
            ln plain.txt hardlink-to-plain
            printf 'snow\n' > 'héllo wörld ☃.txt'
            printf 'odd\n' > "odd name 'single' \"double\" \\ * ? # & \$dollar"
            printf 'dash\n' > ./-leading-dash
            printf 'latin-1\n' > "$(printf 'latin1-\351t\351')"
            mkdir -p 'sub dir/nested' empty-dir
            head -c 3145731 /dev/urandom > 'sub dir/nested/random.bin'
            printf 'short\n' > "$(printf '%0146d' 0 | tr 0 n).txt"
            d1="$(printf '%0100d' 0 | tr 0 d)"; d2="$(printf '%0100d' 0 | tr 0 e)"
            mkdir -p "$d1/$d2"
            printf 'long\n' > "$d1/$d2/$(printf '%093d' 0 | tr 0 f)ü.bin"
            ln -s 'héllo wörld ☃.txt' link-to-hello
            ln -s "$(printf '%0150d' 0 | tr 0 z)/tärget" long-dangling-link
            printf '#!/bin/sh\necho hi\n' > script.sh
            chmod 0751 script.sh
            : > empty-file
            if [ "$(id -u)" = 0 ]; then chown 1234:5678 plain.txt; chown -h 4321:8765 link-to-hello; fi
            find . -depth -exec touch -h -d @1600000000 {} +
            touch -d '2001-02-03 04:05:06 UTC' script.sh
            touch -h -d @1500000000 .
            cd ..
            tar --format=gnu -cf ../gnu.tar data
            tar --format=pax -cf ../pax.tar data
            printf 'key = value\n' > app.conf
            tar -cf ../single.tar app.conf
            """#
        let result = try Support.shell("cd \(Support.quote(directory.root)) && \(script)")
        try #require(result.status == 0, "\(result.output)")
    }

    /// One line per entry: name, type, mode, owner, size (not for directories), mtime, link target, link count.
    static func listing(_ directory: String) throws -> String {
        let result = try Support.shell(
            "cd \(Support.quote(directory)) && { find . ! -type d -printf '%P|%y|%m|%U:%G|%s|%T@|%l|%n\\n'; "
                + "find . -type d -printf '%P|%y|%m|%U:%G|%T@\\n'; } | LC_ALL=C sort"
        )
        #expect(result.status == 0)
        return result.output
    }

    static func stream(file: String, chunk: Int, into sink: any ByteSink) throws {
        let handle = try #require(FileHandle(forReadingAtPath: file))
        defer { try? handle.close() }
        while let data = try handle.read(upToCount: chunk), !data.isEmpty {
            try data.withUnsafeBytes { try sink.write($0) }
        }
    }

    static func index(_ components: [(String, ComponentRecord.Kind)]) -> ArchiveIndex {
        ArchiveIndex(
            stack: "demo",
            components: components.map {
                ArchiveIndex.IndexComponent(
                    service: "svc",
                    type: $0.1 == .file ? "dump" : "volume",
                    archivePath: $0.0,
                    kind: $0.1,
                    container: "demo-svc-1"
                )
            }
        )
    }

    /// What a test run knows of its archive; the writer adds the components.
    static func header(formatVersion: Int = Manifest.currentFormatVersion) -> Manifest.Header {
        Manifest.Header(
            formatVersion: formatVersion, toolVersion: "0.0.0-test", host: "testhost", stack: "demo",
            archiveName: "out.tar.zst", compression: "zstd", startedAt: Date(timeIntervalSince1970: 1_700_000_000),
            warnings: [])
    }

    static func manifest(_ records: [ComponentRecord], formatVersion: Int = Manifest.currentFormatVersion) -> Manifest {
        Manifest(
            formatVersion: formatVersion,
            toolVersion: "0.0.0-test",
            host: "testhost",
            stack: "demo",
            archiveName: "out.tar.zst",
            compression: "zstd",
            startedAt: Date(timeIntervalSince1970: 1_700_000_000),
            finishedAt: Date(timeIntervalSince1970: 1_700_000_042),
            components: records.map {
                Manifest.ManifestComponent(service: "svc", container: "demo-svc-1", type: "t", record: $0)
            },
            warnings: []
        )
    }

    static func makeWriter(
        _ directory: Support.TemporaryDirectory,
        name: String = "out.tar.zst"
    ) throws -> ArchiveWriter {
        try ArchiveWriter(
            outputPath: directory.path(name),
            compressor: ZstdCompressor(settings: CompressionSettings(level: 3, threads: 2))
        )
    }

    static func fileSize(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    static func shellOutput(_ script: String) throws -> String {
        let result = try Support.shell(script)
        #expect(result.status == 0, "\(script): \(result.output)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - The full round trip

    @Test func archiveRoundTripsThroughGNUTarAndZstd() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        try Self.makeSampleTree(in: directory)
        let index = Self.index([
            ("db/dump.sql", .file), ("volumes/data", .tree), ("volumes/data-pax", .tree), ("config/app.conf", .tree),
        ])
        let writer = try Self.makeWriter(directory)
        // Each component's progress is told its content bytes (the manifest's `sizeBytes`).
        let silent = ProgressSettings(interval: nil)
        let fileProgress = ProgressReporter(operation: "dump", subject: "db", total: nil, logger: Logger(label: "t"),
                                            settings: silent)
        let treeProgress = ProgressReporter(operation: "copy", subject: "data", total: nil, logger: Logger(label: "t"),
                                            settings: silent)
        try writer.writeIndex(index)
        writer.progress = fileProgress

        let dump = Support.sampleBytes(count: 5 * 1_048_576 + 13, seed: 11)
        let fileRecord = try await writer.addFile(at: "db/dump.sql", mode: 0o640) { sink in
            let sizes = [1, 7, 4093, 65_521, 1_048_577, 3]
            var offset = 0
            var turn = 0
            try dump.withUnsafeBytes { all in
                while offset < all.count {
                    let end = min(offset + sizes[turn % sizes.count], all.count)
                    turn += 1
                    try sink.write(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
                    offset = end
                }
            }
        }
        writer.progress = treeProgress
        let gnuRecord = try await writer.addTar(at: "volumes/data") { sink in
            try Self.stream(file: directory.path("gnu.tar"), chunk: 10_007, into: sink)
        }
        writer.progress = nil
        let paxRecord = try await writer.addTar(at: "volumes/data-pax") { sink in
            try Self.stream(file: directory.path("pax.tar"), chunk: 333_333, into: sink)
        }
        let singleRecord = try await writer.addTar(at: "config/app.conf") { sink in
            try Self.stream(file: directory.path("single.tar"), chunk: 512, into: sink)
        }
        let finished = try await writer.finish(Self.header())
        #expect(finished.ok, "\(finished.problems)")
        let sealed = try #require(finished.manifest).components
        #expect(sealed.map(\.record.archivePath) == [fileRecord, gnuRecord, paxRecord, singleRecord].map(\.archivePath))
        await #expect(throws: StackVaultError.self) { try await writer.finish(Self.header()) }

        // Records.
        let output = directory.path("out.tar.zst")
        #expect(fileRecord.sha256.isEmpty && sealed[0].sha256 == SHA256.hash(dump).hex)
        #expect(fileRecord.sizeBytes == Int64(dump.count) && fileRecord.entries == 1 && fileRecord.kind == .file)
        let tarEntries = try Self.shellOutput("tar -tf \(Support.quote(directory.path("gnu.tar"))) | wc -l")
        #expect(gnuRecord.entries == Int(tarEntries))
        let contentBytes = try Self.shellOutput(
            "cd \(Support.quote(directory.path("src"))) && find data -type f -printf '%i %s\\n' | sort -u "
                + "| awk '{s+=$2} END {print s}'"
        )
        #expect(gnuRecord.sizeBytes == Int64(contentBytes))
        #expect(
            paxRecord
                == ComponentRecord(
                    archivePath: "volumes/data-pax",
                    kind: .tree,
                    sizeBytes: gnuRecord.sizeBytes,
                    entries: gnuRecord.entries,
                    sha256: ""
                )
        )
        // A tree's SHA-256 is computed by the read-back and known once the archive is finished: the same tree has
        // the same digest, whatever the tar format; the file's digest is the one computed on the way in.
        #expect(gnuRecord.sha256.isEmpty)
        #expect(sealed[1].sha256.count == 64 && sealed[1].sha256 == sealed[2].sha256 && sealed[3].sha256.count == 64)
        #expect(sealed[1].sha256 != sealed[3].sha256)
        #expect(singleRecord.entries == 1 && singleRecord.sizeBytes == 12)
        #expect(!writer.warnings.isEmpty && writer.warnings.allSatisfy { $0.contains("latin1-") }, "\(writer.warnings)")

        // Sizes and progress.
        let fileSize = try #require(try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int)
        #expect(writer.compressedBytesWritten == Int64(fileSize))
        #expect(fileProgress.doneBytes == Int64(dump.count) && treeProgress.doneBytes == gnuRecord.sizeBytes)
        #expect(try Self.shellOutput("stat -c %a \(Support.quote(output))") == "600")

        // zstd accepts it; the index comes first, the manifest last.
        #expect(try Support.shell("zstd -q -t \(Support.quote(output))").status == 0)
        let names = try Self.shellOutput("tar --zstd -tf \(Support.quote(output)) 2>/dev/null").split(separator: "\n")
        #expect(names.first == "stackvault-index.json" && names.last == "stackvault.json")

        // GNU tar extracts it; the only complaint allowed is about the one name that is not UTF-8.
        try FileManager.default.createDirectory(atPath: directory.path("x"), withIntermediateDirectories: true)
        let extraction = try Support.shell(
            "tar --zstd -xpf \(Support.quote(output)) -C \(Support.quote(directory.path("x")))"
        )
        #expect(extraction.status == 0, "\(extraction.output)")
        let complaints = extraction.output.split(separator: "\n")
        #expect(complaints.allSatisfy { $0.contains("hdrcharset") }, "\(extraction.output)")
        #expect(complaints.count <= 2, "one per tree at most: \(extraction.output)")

        // Both trees come back exactly: content, names, modes, owners, mtimes, symlink targets, link counts.
        let sourceListing = try Self.listing(directory.path("src/data"))
        for tree in ["volumes/data", "volumes/data-pax"] {
            #expect(try Self.listing(directory.path("x/\(tree)")) == sourceListing, "\(tree)")
            let diff = try Support.shell(
                "diff -r --no-dereference \(Support.quote(directory.path("src/data"))) "
                    + Support.quote(directory.path("x/\(tree)"))
            )
            #expect(diff.status == 0, "\(diff.output)")
            let inodes = try Self.shellOutput(
                "cd \(Support.quote(directory.path("x/\(tree)"))) "
                    + "&& stat -c %i plain.txt hardlink-to-plain | uniq | wc -l"
            )
            #expect(inodes == "1", "the hard link must extract as the same inode")
            #expect(
                try Self.shellOutput("stat -c '%a %Y' \(Support.quote(directory.path("x/\(tree)/script.sh")))")
                    == "751 981173106"
            )
            #expect(try Self.shellOutput("stat -c %Y \(Support.quote(directory.path("x/\(tree)")))") == "1500000000")
        }
        #expect(sourceListing.contains("link-to-hello|l|777|4321:8765|"))
        #expect(sourceListing.contains("long-dangling-link|l|777"))

        // The file component and the single-file tree.
        #expect(
            try Self.shellOutput("sha256sum \(Support.quote(directory.path("x/db/dump.sql"))) | cut -d' ' -f1")
                == sealed[0].sha256
        )
        #expect(try Self.shellOutput("stat -c %a \(Support.quote(directory.path("x/db/dump.sql")))") == "640")
        #expect(try String(contentsOfFile: directory.path("x/config/app.conf"), encoding: .utf8) == "key = value\n")

        // The JSON entries decode to what was written (the index's JSON leaves out the manifest-only origins).
        let writtenIndex = try ArchiveIndex(jsonData: index.jsonData())
        #expect(writtenIndex.components.allSatisfy { $0.container.isEmpty })
        #expect(
            try ArchiveIndex(
                jsonData: Data(contentsOf: URL(fileURLWithPath: directory.path("x/stackvault-index.json")))
            ) == writtenIndex
        )
        #expect(
            try Manifest(jsonData: Data(contentsOf: URL(fileURLWithPath: directory.path("x/stackvault.json"))))
                == finished.manifest
        )

        // And the verifier agrees.
        let report = try ArchiveVerifier.verify(path: output, compressor: ZstdCompressor())
        #expect(report.ok, "\(report.problems)")
        #expect(report.problems.isEmpty && report.notes.isEmpty)
        #expect(report.manifest == finished.manifest && report.index == writtenIndex)
        #expect(report.components.count == 4 && report.components.allSatisfy(\.ok))
        #expect(report.entries == names.count)
        #expect(report.compressedBytes == Int64(fileSize))
    }

    // MARK: - Damage

    /// A small finished archive: one file, one tree.
    static func makeSmallArchive(
        in directory: Support.TemporaryDirectory,
        name: String = "small.tar.zst",
        formatVersion: Int = 1
    ) async throws -> String {
        let made = try Support.shell(
            "cd \(Support.quote(directory.root)) && mkdir -p t/data/sub && printf 'a\\n' > t/data/a "
                + "&& head -c 200000 /dev/urandom > t/data/sub/b && tar -C t -cf tree-\(name).tar data"
        )
        try #require(made.status == 0, "\(made.output)")
        let writer = try Self.makeWriter(directory, name: name)
        try writer.writeIndex(Self.index([("db/x.sql", .file), ("volumes/t", .tree)]))
        _ = try await writer.addFile(at: "db/x.sql", mode: 0o600) { sink in
            try Support.feed(Support.sampleBytes(count: 1_048_576, seed: 3), chunk: 100_000, into: sink)
        }
        _ = try await writer.addTar(at: "volumes/t") { sink in
            try Self.stream(file: directory.path("tree-\(name).tar"), chunk: 4096, into: sink)
        }
        try await writer.finish(Self.header(formatVersion: formatVersion))
        return directory.path(name)
    }

    @Test func verifierReportsAFlippedByteAndTruncation() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let path = try await Self.makeSmallArchive(in: directory)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try ArchiveVerifier.verify(path: path, compressor: ZstdCompressor()).ok)

        var flipped = good
        flipped[flipped.count / 2] ^= 0x01
        let cases: [(String, Data)] = [
            ("flipped", flipped), ("half", good.prefix(good.count / 2)), ("last byte gone", good.dropLast()),
            ("empty", Data()),
        ]
        for (label, data) in cases {
            let damaged = directory.path("damaged-\(label)")
            try data.write(to: URL(fileURLWithPath: damaged))
            let report = try ArchiveVerifier.verify(path: damaged, compressor: ZstdCompressor())
            #expect(!report.ok, "\(label)")
            #expect(!report.problems.isEmpty, "\(label)")
        }
        let truncated = try ArchiveVerifier.verify(path: directory.path("damaged-half"), compressor: ZstdCompressor())
        #expect(truncated.problems.contains { $0.contains("truncated") }, "\(truncated.problems)")
        #expect(truncated.problems.contains { $0.contains("no manifest") }, "\(truncated.problems)")
    }

    @Test func verifierRejectsUnknownManifestVersionsAndForeignArchives() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        // The writer reads its archive back and refuses to present one it cannot read: no file is left.
        let refused = await #expect(throws: StackVaultError.self) {
            try await Self.makeSmallArchive(in: directory, name: "refused.tar.zst", formatVersion: 2)
        }
        #expect(refused?.message.contains("format version 2") == true, "\(String(describing: refused))")
        #expect(!FileManager.default.fileExists(atPath: directory.path("refused.tar.zst")))

        // An archive from a future stackvault (here: a good one whose manifest says version 2, repacked in order).
        let good = try await Self.makeSmallArchive(in: directory)
        let future = directory.path("future.tar.zst")
        let repacked = try Support.shell(
            "cd \(Support.quote(directory.root)) && mkdir f && tar --zstd -C f -xf \(Support.quote(good)) "
                + "&& sed -i 's/\"formatVersion\" : 1/\"formatVersion\" : 2/' f/stackvault.json "
                + "&& tar --zstd -tf \(Support.quote(good)) > f.list "
                + "&& tar --zstd -C f --no-recursion -T f.list -cf \(Support.quote(future))"
        )
        try #require(repacked.status == 0, "\(repacked.output)")
        let report = try ArchiveVerifier.verify(path: future, compressor: ZstdCompressor())
        #expect(!report.ok)
        #expect(report.problems.contains { $0.contains("format version 2") }, "\(report.problems)")

        // A tar.zst that GNU tar made: no index, no manifest.
        let foreign = directory.path("foreign.tar.zst")
        #expect(
            try Support.shell("tar --zstd -C \(Support.quote(directory.root)) -cf \(Support.quote(foreign)) t").status
                == 0
        )
        let foreignReport = try ArchiveVerifier.verify(path: foreign, compressor: ZstdCompressor())
        #expect(!foreignReport.ok)
        #expect(foreignReport.problems.contains { $0.contains("does not start with its index") })
        #expect(foreignReport.problems.contains { $0.contains("no manifest") })

        #expect(throws: StackVaultError.self) {
            try ArchiveVerifier.verify(path: directory.path("missing"), compressor: ZstdCompressor())
        }
    }

    @Test func verifierFlagsUnsafeEntryNames() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        var tar = UstarBuilder()
        tar.add(ArchiveIndex.entryName, content: Array(try Self.index([("v", .tree)]).jsonData()))
        tar.add("v/ok", content: Array("fine".utf8))
        tar.add("v/../../evil", content: Array("bad".utf8))
        tar.add("/etc/evil", content: Array("bad".utf8))
        try Data(tar.finished()).write(to: URL(fileURLWithPath: directory.path("evil.tar")))
        #expect(try Support.shell("zstd -q \(Support.quote(directory.path("evil.tar")))").status == 0)
        let report = try ArchiveVerifier.verify(path: directory.path("evil.tar.zst"), compressor: ZstdCompressor())
        #expect(!report.ok)
        #expect(report.problems.contains { $0.contains("'v/../../evil'") && $0.contains("..") }, "\(report.problems)")
        #expect(report.problems.contains { $0.contains("'/etc/evil'") && $0.contains("absolute") })
    }

    // MARK: - Input-side failures

    @Test func addFileWhoseProduceThrowsAddsNothing() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let writer = try Self.makeWriter(directory)
        let output = directory.path("out.tar.zst")
        try writer.writeIndex(Self.index([("db/a.sql", .file)]))
        let before = writer.compressedBytesWritten
        await #expect(throws: Boom.self) {
            _ = try await writer.addFile(at: "db/a.sql", mode: 0o600) { sink in
                try Support.feed(Support.sampleBytes(count: 3 * 1_048_576, seed: 1), chunk: 65_536, into: sink)
                // The content streams into the archive itself: no temporary file.
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory.root) == ["out.tar.zst"])
                throw Boom()
            }
        }
        // Cut back to the index alone.
        #expect(writer.compressedBytesWritten < 2_000 && writer.compressedBytesWritten > before)
        #expect(try Self.fileSize(output) == Int(writer.compressedBytesWritten))
        // The writer is still usable, and the same component can be added afterwards.
        _ = try await writer.addFile(at: "db/a.sql", mode: 0o600) { sink in
            try Support.feed(Array("ok\n".utf8), chunk: 1, into: sink)
        }
        try await writer.finish(Self.header())
        let names = try Self.shellOutput("tar --zstd -tf \(Support.quote(directory.path("out.tar.zst")))")
        #expect(names == "stackvault-index.json\ndb/a.sql\nstackvault.json")
        #expect(try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor()).ok)
    }

    @Test func maliciousTarStreamsAreRefusedNamingTheEntry() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        func tar(_ entries: [(String, UInt8, String)]) -> [UInt8] {
            var builder = UstarBuilder()
            for (name, type, link) in entries { builder.add(name, type: type, content: [], link: link) }
            return builder.finished()
        }
        let cases: [(String, [UInt8], String)] = [
            ("dotdot", tar([("../evil", UInt8(ascii: "0"), "")]), "'../evil'"),
            (
                "inner", tar([("data/", UInt8(ascii: "5"), ""), ("data/../../evil", UInt8(ascii: "0"), "")]),
                "'data/../../evil'"
            ),
            ("absolute", tar([("/etc/evil", UInt8(ascii: "0"), "")]), "'/etc/evil'"),
            (
                "hardlink", tar([("data/", UInt8(ascii: "5"), ""), ("data/h", UInt8(ascii: "1"), "../../etc/shadow")]),
                "'../../etc/shadow'"
            ),
            ("outside", tar([("data/", UInt8(ascii: "5"), ""), ("other/x", UInt8(ascii: "0"), "")]), "'other/x'"),
        ]
        let writer = try Self.makeWriter(directory)
        try writer.writeIndex(Self.index(cases.map { ("bad/\($0.0)", .tree) } + [("bad/followed-by-data", .tree)]))
        for (label, bytes, culprit) in cases {
            let error = await #expect(throws: StackVaultError.self, "\(label)") {
                _ = try await writer.addTar(at: "bad/\(label)") { sink in
                    try Support.feed(bytes, chunk: 100, into: sink)
                }
            }
            #expect(error?.message.contains(culprit) == true, "\(label): \(String(describing: error))")
        }
        // The producer keeps writing after the reader refused: the reader's error wins over the broken pipe.
        let error = await #expect(throws: StackVaultError.self) {
            _ = try await writer.addTar(at: "bad/followed-by-data") { sink in
                try Support.feed(tar([("../evil", UInt8(ascii: "0"), "")]), chunk: 512, into: sink)
                try Support.feed([UInt8](repeating: 0, count: 8 * 1_048_576), chunk: 65_536, into: sink)
            }
        }
        #expect(error?.message.contains("'../evil'") == true, "\(String(describing: error))")

        try await writer.finish(Self.header())
        let report = try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor())
        #expect(report.ok, "\(report.problems)")
        #expect(report.notes.count == cases.count + 1)
        let names = try Self.shellOutput("tar --zstd -tf \(Support.quote(directory.path("out.tar.zst")))")
        #expect(!names.contains("evil") && !names.contains("other"))
    }

    @Test func addTarRethrowsTheProducersErrorAndStaysUsable() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        try Self.makeSampleTree(in: directory)
        let writer = try Self.makeWriter(directory)
        try writer.writeIndex(Self.index([("volumes/broken", .tree), ("volumes/data", .tree)]))
        let tarBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: directory.path("gnu.tar"))))
        await #expect(throws: Boom.self) {
            _ = try await writer.addTar(at: "volumes/broken") { sink in
                try Support.feed(Array(tarBytes.prefix(tarBytes.count / 2)), chunk: 65_536, into: sink)
                throw Boom()
            }
        }
        _ = try await writer.addTar(at: "volumes/data") { sink in
            try Support.feed(tarBytes, chunk: 65_536, into: sink)
        }
        try await writer.finish(Self.header())
        let report = try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor())
        #expect(report.ok, "\(report.problems)")
        #expect(report.notes.count == 1 && report.notes[0].contains("volumes/broken"), "\(report.notes)")
        // The partial component still leaves a well-formed archive.
        #expect(
            try Support.shell("tar --zstd -tf \(Support.quote(directory.path("out.tar.zst"))) > /dev/null").status == 0
        )
    }

    @Test func extendedAttributesAndSubsecondMtimesAreKept() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        var tar = UstarBuilder()
        tar.add("data/", type: UInt8(ascii: "5"))
        tar.addPaxHeader(["SCHILY.xattr.user.stackvault": "hello", "mtime": "1600000000.123456789"])
        tar.add("data/f", content: Array("content\n".utf8))
        let writer = try Self.makeWriter(directory)
        try writer.writeIndex(Self.index([("volumes/x", .tree)]))
        _ = try await writer.addTar(at: "volumes/x") { sink in
            try Support.feed(tar.finished(), chunk: 1000, into: sink)
        }
        try await writer.finish(Self.header())
        let output = Support.quote(directory.path("out.tar.zst"))
        let headers = try Self.shellOutput("zstd -q -d -c \(output) | tr '\\0' '\\n' | grep -a -E 'xattr|mtime' | sort")
        #expect(headers.contains("SCHILY.xattr.user.stackvault=hello"), "\(headers)")
        #expect(headers.contains("mtime=1600000000.123456789"), "\(headers)")
        let listed = try Self.shellOutput("tar --zstd --full-time -tvf \(output) volumes/x/f")
        #expect(listed.contains("volumes/x/f"))
        #expect(try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor()).ok)
    }

    // MARK: - Rules and lifecycle

    @Test func indexComesFirstAndListsEveryComponent() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let writer = try Self.makeWriter(directory)
        await #expect(throws: StackVaultError.self) {
            _ = try await writer.addFile(at: "a", mode: 0o600) { _ in }
        }
        #expect(throws: StackVaultError.self) { try writer.writeIndex(Self.index([("a", .file), ("a/b", .tree)])) }
        #expect(throws: StackVaultError.self) { try writer.writeIndex(Self.index([("../a", .file)])) }
        #expect(throws: StackVaultError.self) { try writer.writeIndex(Self.index([("a/", .file)])) }
        #expect(throws: StackVaultError.self) { try writer.writeIndex(Self.index([("stackvault.json", .file)])) }
        try writer.writeIndex(Self.index([("a", .file), ("t", .tree)]))
        #expect(throws: StackVaultError.self) { try writer.writeIndex(Self.index([("a", .file)])) }
        await #expect(throws: StackVaultError.self) {
            _ = try await writer.addFile(at: "unlisted", mode: 0o600) { _ in }
        }
        await #expect(throws: StackVaultError.self) {
            _ = try await writer.addFile(at: "t", mode: 0o600) { _ in }
        }
        let record = try await writer.addFile(at: "a", mode: 0o600) { _ in }
        #expect(record.sizeBytes == 0 && record.entries == 1)
        await #expect(throws: StackVaultError.self) {
            _ = try await writer.addFile(at: "a", mode: 0o600) { _ in }
        }
        // The writer builds the manifest itself: the components added, in order, as the index describes them
        // (a manifest that disagrees with what was written cannot be made).
        let sealed = try await writer.finish(Self.header())
        #expect(sealed.manifest?.components.map(\.archivePath) == ["a"])
        #expect(sealed.manifest?.components.first?.container == "demo-svc-1")
        await #expect(throws: StackVaultError.self) { try await writer.finish(Self.header()) }
        writer.abort()  // no-op once finished
        #expect(FileManager.default.fileExists(atPath: directory.path("out.tar.zst")))
        #expect(try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor()).ok)
    }

    @Test func abortAndDeinitRemoveThePartialOutput() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let writer = try Self.makeWriter(directory, name: "aborted.tar.zst")
        try writer.writeIndex(Self.index([("a", .file)]))
        _ = try await writer.addFile(at: "a", mode: 0o600) { sink in try Support.feed([1, 2, 3], chunk: 1, into: sink) }
        #expect(FileManager.default.fileExists(atPath: directory.path("aborted.tar.zst")))
        writer.abort()
        writer.abort()
        #expect(!FileManager.default.fileExists(atPath: directory.path("aborted.tar.zst")))
        await #expect(throws: StackVaultError.self) { try await writer.finish(Self.header()) }

        do {
            let dropped = try Self.makeWriter(directory, name: "dropped.tar.zst")
            try dropped.writeIndex(Self.index([]))
        }
        #expect(!FileManager.default.fileExists(atPath: directory.path("dropped.tar.zst")))
    }

    @Test func outputIsCreatedExclusively() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: directory.path("exists.tar.zst")))
        let error = #expect(throws: StackVaultError.self) { _ = try Self.makeWriter(directory, name: "exists.tar.zst") }
        #expect(error?.message.contains("exists already") == true)
        #expect(try String(contentsOfFile: directory.path("exists.tar.zst"), encoding: .utf8) == "keep me")
    }

    // MARK: - Definitions

    @Test func treeDigestFollowsItsDefinition() {
        var digest = TreeDigest()
        digest.addEntry(relativePath: "", type: .directory, mode: 0o40755, uid: 0, gid: 0, size: 0)
        digest.addEntry(relativePath: "a.txt", type: .file, mode: 0o644, uid: 1000, gid: 100, size: 5)
        Array("hello".utf8).withUnsafeBytes { digest.addContent($0) }
        digest.addEntry(relativePath: "l", type: .symlink, mode: 0o777, uid: 0, gid: 0, size: 0, linkTarget: "a.txt")
        digest.addEntry(
            relativePath: "h",
            type: .hardlink,
            mode: 0o644,
            uid: 1000,
            gid: 100,
            size: 0,
            linkTarget: "a.txt"
        )
        let expected =
            "\0d\0755\u{0}0\u{0}0\u{0}0\0\0" + "a.txt\0f\0644\u{0}1000\u{0}100\u{0}5\0\0hello"
            + "l\0l\0777\u{0}0\u{0}0\u{0}0\0a.txt\0" + "h\0h\0644\u{0}1000\u{0}100\u{0}0\0a.txt\0"
        #expect(digest.finalize() == SHA256.hash(expected))
        #expect(digest.entries == 4 && digest.contentBytes == 5)
        #expect(TreeDigest.EntryType.allCases.map(\.character) == ["f", "d", "l", "h", "c", "b", "p"])
    }

    @Test func manifestJSONIsPrettySortedAndRoundTrips() throws {
        let manifest = Self.manifest([
            ComponentRecord(archivePath: "db/x.sql", kind: .file, sizeBytes: 1, entries: 1, sha256: "ab")
        ])
        let json = String(decoding: try manifest.jsonData(), as: UTF8.self)
        #expect(json.contains("\n  \"archiveName\" : \"out.tar.zst\",\n  \"components\" : ["))
        #expect(json.contains("\"startedAt\" : \"2023-11-14T22:13:20Z\""))
        #expect(json.contains("\"archivePath\" : \"db/x.sql\""))
        #expect(try Manifest(jsonData: Data(json.utf8)) == manifest)
        #expect(manifest.tool == "stackvault" && Manifest.currentFormatVersion == 1)
        #expect(throws: StackVaultError.self) { try Manifest(jsonData: Data("{}".utf8)) }
    }
}

/// Builds ustar archives byte by byte, for entries real tools refuse to create.
struct UstarBuilder {
    private var bytes: [UInt8] = []

    mutating func add(_ name: String, type: UInt8 = UInt8(ascii: "0"), content: [UInt8] = [], link: String = "") {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ string: String, at offset: Int, width: Int) {
            for (index, byte) in string.utf8.prefix(width).enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            put(
                String(repeating: "0", count: width - 1 - String(value, radix: 8).count) + String(value, radix: 8),
                at: offset,
                width: width - 1
            )
        }
        put(name, at: 0, width: 100)
        octal(type == UInt8(ascii: "5") ? 0o755 : 0o644, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(content.count, at: 124, width: 12)
        octal(1_600_000_000, at: 136, width: 12)
        header[156] = type
        put(link, at: 157, width: 100)
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        for index in 148..<156 { header[index] = UInt8(ascii: " ") }
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(
            String(repeating: "0", count: 6 - String(checksum, radix: 8).count) + String(checksum, radix: 8),
            at: 148,
            width: 6
        )
        header[154] = 0
        bytes += header + content
        bytes += [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    /// A PAX extended header ('x') for the next entry.
    mutating func addPaxHeader(_ records: [String: String]) {
        var body: [UInt8] = []
        for (key, value) in records.sorted(by: { $0.key < $1.key }) {
            let rest = " \(key)=\(value)\n"
            var length = rest.utf8.count + 1
            while String(length).count + rest.utf8.count != length { length += 1 }
            body += Array("\(length)\(rest)".utf8)
        }
        add("PaxHeaders/next", type: UInt8(ascii: "x"), content: body)
    }

    func finished() -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: 1024)
    }
}
