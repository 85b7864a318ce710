public import StackVaultCore

/// What the dump strategies share: run a shell script inside the running container through `docker exec`,
/// stream its stdout into one archive file, and refuse empty, failed or truncated dumps.
///
/// The scripts name environment variables only; the container's own environment (inherited by exec) holds the
/// secrets, so no password appears in any process's arguments, in the sidecar's memory, or in its logs.
public struct LogicalDump: Sendable {
    /// The tool's name for messages (`pg_dumpall`).
    public var tool: String
    /// `sh -c` script run in the container.
    public var script: String
    /// Text every complete dump ends with.
    public var completionMarker: String
    /// The dump's format, for counting its databases and rows (``DumpScanner``); nil: not counted.
    public var dialect: DumpScanner.Dialect?
    /// Explains a known cause from the tool's error output (nil: no known cause), appended to a failed dump's error.
    public var diagnose: @Sendable (String) -> String?

    public init(tool: String, script: String, completionMarker: String, dialect: DumpScanner.Dialect? = nil,
                diagnose: @escaping @Sendable (String) -> String? = { _ in nil }) {
        self.tool = tool
        self.script = script
        self.completionMarker = completionMarker
        self.dialect = dialect
        self.diagnose = diagnose
    }

    public func run(
        _ component: ComponentSpec,
        container: ContainerDetails,
        context: BackupContext,
        into archive: any ArchiveSink
    ) async throws -> ComponentRecord {
        let where_ = "service \(context.service) (container \(container.name)) of stack \(context.stack)"
        var scanner: DumpScanner?
        let record = try await archive.addFile(at: component.archivePath, mode: 0o600) { sink in
            let counted = dialect.map { DumpScanner($0, downstream: sink) }
            scanner = counted
            let tail = TailSink(downstream: counted ?? sink, keep: 512)
            let stderr = TailCollectingSink(limit: 16 << 10)
            let exitCode = try await context.docker.exec(
                in: container.id, command: ["sh", "-c", script], environment: [], stdout: tail, stderr: stderr)
            var errorText = ContainerShell.readable(stderr.text, cut: stderr.dropped > 0)
            if let cause = diagnose(errorText) { errorText += " (\(cause))" }
            guard exitCode == 0 else {
                throw StackVaultError(.dumpFailed,
                    "\(tool) failed in \(where_) with exit code \(exitCode)"
                        + (errorText.isEmpty ? "" : ": \(errorText)"))
            }
            guard tail.totalBytes > 0 else {
                throw StackVaultError(.dumpFailed, "\(tool) in \(where_) produced an empty dump"
                    + (errorText.isEmpty ? "" : ": \(errorText)"))
            }
            guard tail.tailText.contains(completionMarker) else {
                throw StackVaultError(.dumpFailed,
                    "\(tool) in \(where_) produced a truncated dump (it does not end with '\(completionMarker)')"
                        + (errorText.isEmpty ? "" : ": \(errorText)"))
            }
        }
        if let scanner { try archive.recordContents(scanner.contents, of: component.archivePath) }
        return record
    }

    /// `true`/`false` (any case); anything else names the label.
    public static func isEnabled(_ label: BackupLabel) throws -> Bool {
        switch label.value.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": return true
        case "false": return false
        default: throw PlanProblem("label \(label.key)=\(label.value): expected true or false")
        }
    }

    /// True when any of `names` is set (non-empty) in the container's environment.
    public static func hasAny(_ names: [String], in container: ContainerDetails) -> Bool {
        names.contains { !(container.environment[$0] ?? "").isEmpty }
    }
}

/// Passes bytes on and remembers the last few, to check how a stream ended.
final class TailSink: ByteSink {
    private let downstream: any ByteSink
    private let keep: Int
    private var tail: [UInt8] = []
    private(set) var totalBytes: Int64 = 0

    init(downstream: any ByteSink, keep: Int) {
        self.downstream = downstream
        self.keep = keep
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try downstream.write(bytes)
        totalBytes += Int64(bytes.count)
        tail.append(contentsOf: bytes.suffix(keep))
        if tail.count > keep { tail.removeFirst(tail.count - keep) }
    }

    var tailText: String { String(decoding: tail, as: UTF8.self) }
}

import Foundation
