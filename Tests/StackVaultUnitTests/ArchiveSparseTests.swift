import Foundation
import Testing

@testable import StackVaultCore

/// A sparse entry in a directory's tar (what `stackvault helper tar-create` writes for a sparse file) goes into the
/// archive whole: `addTar` copies its holes as zeros (the archive format has no sparse entries: its verifier
/// refuses them), a trailing hole included, and the archive verifies.
@Suite("Sparse files in archives")
struct ArchiveSparseTests {
    typealias Support = ArchiveTestSupport

    @Test func aSparseEntryEndingInAHoleIsCopiedWhole() async throws {
        let directory = try Support.TemporaryDirectory()
        defer { directory.remove() }
        let made = try await DiskTarTestSupport.bash("""
            set -e
            cd \(Support.quote(directory.root))
            mkdir -p src/data; echo small > src/data/plain
            truncate -s 16M src/data/sparse
            head -c 8192 /dev/urandom | dd of=src/data/sparse bs=4096 seek=1024 conv=notrunc status=none
            \(Support.quote(DiskTarTestSupport.binary)) helper tar-create src/data > data.tar 2>/dev/null
            [ "$(stat -c %s data.tar)" -lt 65536 ]
            """)
        try #require(made.status == 0, "\(made.output)")
        let writer = try ArchiveWriterTests.makeWriter(directory)
        try writer.writeIndex(ArchiveWriterTests.index([("volumes/data", .tree)]))
        let record = try await writer.addTar(at: "volumes/data") { sink in
            try ArchiveWriterTests.stream(file: directory.path("data.tar"), chunk: 65_536, into: sink)
        }
        let finished = try await writer.finish(ArchiveWriterTests.header())
        #expect(finished.ok, "\(finished.problems)")
        #expect(record.sizeBytes == (16 << 20) + 6)

        let result = try await DiskTarTestSupport.bash("""
            set -e
            cd \(Support.quote(directory.root))
            mkdir x; zstd -dcq out.tar.zst | tar -xf - -C x
            cmp src/data/sparse x/volumes/data/sparse && echo same
            """)
        #expect(result.output == "same\n", "\(result.output)")
    }
}
