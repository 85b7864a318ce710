import Foundation
import Testing

@testable import StackVaultCore

/// Sparse files in tree components: `addTar` keeps the sparse entries `stackvault helper tar-create` writes
/// (`GNU.sparse` 1.0, only the data regions), their holes are never read or hashed byte by byte, the verifier
/// accepts sane maps in trees and names the entry of a bad one, and GNU tar extracts them with their holes.
@Suite("Sparse files in archives")
struct ArchiveSparseTests {
    typealias Support = ArchiveTestSupport

    /// Runs `script` with bash in `directory`, stopping at the first failing command.
    static func bash(in directory: Support.TemporaryDirectory, _ script: String) async throws
        -> (status: Int32, output: String)
    {
        try await DiskTarTestSupport.bash("set -e; cd \(Support.quote(directory.root))\n" + script)
    }

    /// A 16 MiB file ending in a hole, a file that is one 1 TiB hole, a file with 64 small data regions at odd
    /// offsets, a hard link to a sparse file, and a plain file: the archive holds only their data, verifies, and
    /// GNU tar (`tar --zstd -xf`) gives back the content and the holes.
    @Test func sparseEntriesKeepOnlyTheirDataVerifyAndExtractWithGNUTar() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let made = try await Self.bash(in: directory, """
            mkdir -p src/data; echo small > src/data/plain
            truncate -s 16M src/data/sparse
            head -c 8192 /dev/urandom | dd of=src/data/sparse bs=4096 seek=1024 conv=notrunc status=none
            truncate -s 1T src/data/hole
            truncate -s 5M src/data/regions
            for i in $(seq 0 63); do
              printf 'region %d' $i | dd of=src/data/regions bs=1 seek=$((i * 81920 + 1000)) conv=notrunc status=none
            done
            ln src/data/sparse src/data/sparse-link
            \(Support.quote(DiskTarTestSupport.binary)) helper tar-create src/data > data.tar 2>/dev/null
            [ "$(stat -c %s data.tar)" -lt 1048576 ]
            """)
        try #require(made.status == 0, "\(made.output)")
        let writer = try ArchiveWriterTests.makeWriter(directory)
        try writer.writeIndex(ArchiveWriterTests.index([("volumes/data", .tree)]))
        let record = try await writer.addTar(at: "volumes/data") { sink in
            try ArchiveWriterTests.stream(file: directory.path("data.tar"), chunk: 65_536, into: sink)
        }
        let finished = try await writer.finish(ArchiveWriterTests.header())
        #expect(finished.ok, "\(finished.problems)")
        // Data regions only (file-system blocks around the written bytes), never the logical 1 TiB + 21 MiB.
        #expect(record.sizeBytes > 8192 && record.sizeBytes < 1 << 20, "\(record.sizeBytes)")
        #expect(try ArchiveWriterTests.fileSize(directory.path("out.tar.zst")) < 1 << 20)
        let verified = try ArchiveVerifier.verify(path: directory.path("out.tar.zst"), compressor: ZstdCompressor())
        #expect(verified.ok, "\(verified.problems)")

        let result = try await Self.bash(in: directory, """
            mkdir x; tar --zstd -xf out.tar.zst -C x
            cd x/volumes/data
            cmp ../../../src/data/sparse sparse && cmp ../../../src/data/regions regions && echo same
            [ "$(stat -c %i sparse)" = "$(stat -c %i sparse-link)" ] && echo linked
            echo "$(stat -c %s hole) $(du -k hole | cut -f1) $(du -k sparse | cut -f1)"
            """)
        #expect(result.output == "same\nlinked\n1099511627776 0 8\n", "\(result.output)")
    }

    /// Restoring: for the helper (`tar-extract`) the tree keeps its sparse entries and the holes come back while a
    /// preallocated file of zeros stays allocated, and reading the restored directory back gives the same tree
    /// digest (what a drill compares); for Docker's archive upload the same tree is sent whole, holes as zeros.
    @Test func restoredSparseFilesKeepTheirHolesAndTheirDigest() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let bin = Support.quote(DiskTarTestSupport.binary)
        let made = try await Self.bash(in: directory, """
            mkdir -p src/data dst
            truncate -s 16M src/data/sparse
            head -c 8192 /dev/urandom | dd of=src/data/sparse bs=4096 seek=1024 conv=notrunc status=none
            truncate -s 3M src/data/regions
            for i in $(seq 0 29); do
              printf 'r%d' $i | dd of=src/data/regions bs=1 seek=$((i * 100000 + 7)) conv=notrunc status=none
            done
            head -c 1048576 /dev/zero > src/data/zeros
            ln src/data/sparse src/data/link
            \(bin) helper tar-create src/data > data.tar 2>/dev/null
            """)
        try #require(made.status == 0, "\(made.output)")
        func archive(_ tar: String, _ name: String) async throws -> String? {
            let writer = try ArchiveWriterTests.makeWriter(directory, name: name)
            try writer.writeIndex(ArchiveWriterTests.index([("volumes/data", .tree)]))
            _ = try await writer.addTar(at: "volumes/data") { sink in
                try ArchiveWriterTests.stream(file: directory.path(tar), chunk: 65_536, into: sink)
            }
            let finished = try await writer.finish(ArchiveWriterTests.header())
            #expect(finished.ok, "\(finished.problems)")
            return finished.components.first?.actualSHA256
        }
        let digest = try await archive("data.tar", "out.tar.zst")
        let local = try LocalArchive.open(localPath: directory.path("out.tar.zst"), compressor: ZstdCompressor())

        let sparseTree = CollectingSink()
        try local.writeTree("volumes/data", as: "data", layout: .wholeKeepingHoles, into: sparseTree)
        try Data(sparseTree.bytes).write(to: URL(fileURLWithPath: directory.path("restore.tar")))
        let restored = try await Self.bash(in: directory, """
            \(bin) helper tar-extract dst < restore.tar > /dev/null 2>&1
            cmp src/data/sparse dst/sparse && cmp src/data/regions dst/regions && cmp src/data/zeros dst/zeros
            [ "$(stat -c %i dst/sparse)" = "$(stat -c %i dst/link)" ]
            echo "$(du -k dst/sparse | cut -f1) $(du -k dst/zeros | cut -f1)"
            [ "$(du -k dst/regions | cut -f1)" -le "$(du -k src/data/regions | cut -f1)" ]
            mkdir back; cd back; ln -s ../dst data; \(bin) helper tar-create data > ../back.tar 2>/dev/null
            """)
        #expect(restored.status == 0 && restored.output == "8 1024\n", "\(restored.output)")
        #expect(try await archive("back.tar", "back.tar.zst") == digest)

        let denseTree = CollectingSink()
        try local.writeTree("volumes/data", as: "data", layout: .whole, into: denseTree)
        #expect(denseTree.bytes.count > 16 << 20)
        try Data(denseTree.bytes).write(to: URL(fileURLWithPath: directory.path("dense.tar")))
        let dense = try await Self.bash(in: directory, """
            mkdir d; tar -xf dense.tar -C d; cmp src/data/sparse d/data/sparse; du -k d/data/sparse | cut -f1
            """)
        #expect(dense.output == "16384\n", "\(dense.output)")
    }

    /// The digest of a sparse entry depends on its logical content only: holes at other places, data regions that
    /// hold zeros, other chunkings all digest the same; other content or size does not.
    @Test func sparseDigestDependsOnTheLogicalContentOnly() {
        func digest(size: Int64, _ regions: [(Int64, [UInt8])], chunk: Int = 1 << 20) -> SHA256.Digest {
            var hash = TreeDigest()
            hash.addEntry(relativePath: "f", type: .file, mode: 0o644, uid: 0, gid: 0, size: size, sparse: true)
            for (offset, bytes) in regions {
                var start = 0
                while start < bytes.count {
                    let end = min(bytes.count, start + chunk)
                    bytes[start..<end].withUnsafeBytes { hash.addContent($0, at: offset + Int64(start)) }
                    start = end
                }
            }
            return hash.finalize()
        }
        let data = Array("some data".utf8)
        let size: Int64 = 100_000
        let reference = digest(size: size, [(50_000, data)])
        // The same content with zeros stored as data around it, in odd chunks, or as one data region.
        #expect(digest(size: size, [(40_960, [UInt8](repeating: 0, count: 9040) + data + [0, 0, 0])]) == reference)
        #expect(digest(size: size, [(49_999, [0] + data)], chunk: 3) == reference)
        var whole = [UInt8](repeating: 0, count: Int(size))
        whole.replaceSubrange(50_000..<50_009, with: data)
        #expect(digest(size: size, [(0, whole)], chunk: 4097) == reference)
        #expect(digest(size: size, [(0, []), (50_000, data)]) == reference)
        // Other content, another place, another size: another digest; and never the dense digest.
        #expect(digest(size: size, [(50_000, Array("some date".utf8))]) != reference)
        #expect(digest(size: size, [(50_001, data)]) != reference)
        #expect(digest(size: size + 1, [(50_000, data)]) != reference)
        var dense = TreeDigest()
        dense.addEntry(relativePath: "f", type: .file, mode: 0o644, uid: 0, gid: 0, size: size)
        whole.withUnsafeBytes { dense.addContent($0) }
        #expect(dense.finalize() != reference)
        // A file that is one hole, and an empty sparse file.
        #expect(digest(size: 1 << 40, []) != digest(size: 1 << 41, []))
        #expect(digest(size: 0, []) != digest(size: 1, []))
    }

    /// The byte layout of the definition in `TreeDigest`'s doc comment, spelt out for one small file.
    @Test func sparseDigestFollowsItsDefinition() {
        var hash = TreeDigest()
        hash.addEntry(relativePath: "", type: .directory, mode: 0o755, uid: 0, gid: 0, size: 0)
        hash.addEntry(relativePath: "f", type: .file, mode: 0o600, uid: 1, gid: 2, size: 10_000, sparse: true)
        Array("abc".utf8).withUnsafeBytes { hash.addContent($0, at: 5000) }
        hash.addEntry(relativePath: "g", type: .file, mode: 0o600, uid: 1, gid: 2, size: 2)
        Array("hi".utf8).withUnsafeBytes { hash.addContent($0) }
        #expect(hash.contentBytes == 5 && hash.entries == 3)

        func count(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        var secondBlock = [UInt8](repeating: 0, count: 4096)
        secondBlock.replaceSubrange(904..<907, with: Array("abc".utf8))
        var expected = Array("\0d\0755\u{0}0\u{0}0\u{0}0\0\0".utf8)
        expected += Array("f\0s\0600\u{0}1\u{0}2\u{0}10000\0\0".utf8)
        expected += count(1) + secondBlock  // block 0 is all zeros: counted
        expected += count(0) + [UInt8](repeating: 0, count: 10_000 - 8192)  // the short last block, hashed
        expected += count(0)  // no zero block after it
        expected += Array("g\0f\0600\u{0}1\u{0}2\u{0}2\0\0hi".utf8)  // a dense file: as ever
        #expect(hash.finalize() == SHA256.hash(expected))
    }

    /// A tree with no sparse file digests exactly as before sparse entries existed, so archives written then still
    /// verify: the pinned value was checked with the `stackvault verify` of main at 7417132 on this very archive.
    @Test func denseArchivesDigestAsBefore() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let made = try await Self.bash(in: directory, """
            mkdir -p data/sub; printf 'hello\\n' > data/a; head -c 70000 /dev/zero > data/sub/zeros
            printf 'x' >> data/sub/zeros; ln -s a data/l
            tar --format=pax --sort=name --owner=0 --group=0 --numeric-owner --mode=go-w \\
                --mtime=@1600000000 -cf data.tar data
            """)
        try #require(made.status == 0, "\(made.output)")
        let writer = try ArchiveWriterTests.makeWriter(directory)
        try writer.writeIndex(ArchiveWriterTests.index([("volumes/data", .tree)]))
        _ = try await writer.addTar(at: "volumes/data") { sink in
            try ArchiveWriterTests.stream(file: directory.path("data.tar"), chunk: 4096, into: sink)
        }
        let finished = try await writer.finish(ArchiveWriterTests.header())
        #expect(finished.ok, "\(finished.problems)")
        #expect(finished.components.first?.actualSHA256 == Self.denseDigest)
    }

    static let denseDigest = "fecf21885058cc45fbff9102059910fb85d871b7a4cea8a6132ed490138be670"

    // MARK: - Bad sparse maps

    /// A tar stream whose entry `v/f` is a `GNU.sparse` 1.0 file of `size` bytes with the map `regions` (their data
    /// bytes `x`).
    static func sparseTar(size: Int, regions: [(Int, Int)], index: ArchiveIndex? = nil) throws -> [UInt8] {
        var tar = UstarBuilder()
        if let index { tar.add(ArchiveIndex.entryName, content: Array(try index.jsonData())) }
        tar.add("v/", type: UInt8(ascii: "5"))
        tar.addPaxHeader([
            "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "v/f",
            "GNU.sparse.realsize": "\(size)",
        ])
        var map = Array(("\(regions.count)\n" + regions.map { "\($0.0)\n\($0.1)\n" }.joined()).utf8)
        map += [UInt8](repeating: 0, count: (512 - map.count % 512) % 512)
        let data = [UInt8](repeating: UInt8(ascii: "x"), count: regions.reduce(0) { $0 + $1.1 })
        tar.add("v/GNUSparseFile.0/f", content: map + data)
        return tar.finished()
    }

    static let badMaps: [(label: String, size: Int, regions: [(Int, Int)], problem: String)] = [
        ("overlapping", 100_000, [(0, 4096), (2048, 4096)], "out of order or overlapping"),
        ("out of order", 100_000, [(50_000, 10), (0, 10)], "out of order or overlapping"),
        ("past the size", 1000, [(990, 20)], "past its size"),
    ]

    @Test func verifierAcceptsASaneMapAndNamesTheEntryOfABadOne() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let index = ArchiveWriterTests.index([("v", .tree)])
        for (label, size, regions, problem) in [("sane", 100_000, [(0, 10), (50_000, 4096)], "")] + Self.badMaps {
            let file = directory.path("\(label).tar")
            try Data(try Self.sparseTar(size: size, regions: regions, index: index))
                .write(to: URL(fileURLWithPath: file))
            #expect(try Support.shell("zstd -q \(Support.quote(file))").status == 0)
            let report = try ArchiveVerifier.verify(path: file + ".zst", compressor: ZstdCompressor())
            let sparseProblems = report.problems.filter { $0.contains("sparse") }
            if problem.isEmpty {
                #expect(sparseProblems.isEmpty, "\(label): \(report.problems)")
            } else {
                #expect(sparseProblems.contains { $0.contains("'v/f'") && $0.contains(problem) },
                        "\(label): \(report.problems)")
            }
        }
    }

    @Test func verifierRefusesASparseEntryInAFileComponent() throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.path("file.tar")
        let index = ArchiveWriterTests.index([("v/f", .file)])
        try Data(try Self.sparseTar(size: 100_000, regions: [(0, 10)], index: index))
            .write(to: URL(fileURLWithPath: file))
        #expect(try Support.shell("zstd -q \(Support.quote(file))").status == 0)
        let report = try ArchiveVerifier.verify(path: file + ".zst", compressor: ZstdCompressor())
        #expect(report.problems.contains { $0.contains("'v/f' is stored sparse") && $0.contains("file component") },
                "\(report.problems)")
    }

    @Test func addTarRefusesABadMapNamingTheEntry() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let writer = try ArchiveWriterTests.makeWriter(directory)
        try writer.writeIndex(ArchiveWriterTests.index(Self.badMaps.map { ("bad/\($0.label)", .tree) }))
        for (label, size, regions, problem) in Self.badMaps {
            let bytes = try Self.sparseTar(size: size, regions: regions)
            let error = await #expect(throws: StackVaultError.self, "\(label)") {
                _ = try await writer.addTar(at: "bad/\(label)") { sink in
                    try Support.feed(bytes, chunk: 512, into: sink)
                }
            }
            #expect(error?.message.contains("'v/f'") == true && error?.message.contains(problem) == true,
                    "\(label): \(String(describing: error))")
        }
        writer.abort()
    }
}
