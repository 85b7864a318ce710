import StackVaultCore
import StackVaultTestKit
import Testing

/// Every compressor runs the same `CompressorConformance` checks.
@Suite struct CompressorConformanceTests {
    @Test(arguments: [1, 3])
    func zstdConforms(level: Int) throws {
        try CompressorConformance.run(try ZstdCompressor(settings: .init(level: level, threads: 1)))
    }

    @Test func zstdWithWorkerThreadsConforms() throws {
        try CompressorConformance.run(try ZstdCompressor(settings: .init(level: 3, threads: 2)))
    }
}
