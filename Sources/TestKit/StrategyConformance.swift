public import StackVaultCore
import Logging

/// The strategy conformance suite: what every `BackupStrategy` (and every `RestoreStrategy`) must do, as named
/// checks run against each implementation with the in-memory `FakeDockerEngine` and `InMemoryArchiveSink`, the
/// way restic's `internal/backend/test/suite.go` runs one suite against every backend.
///
/// A new strategy passes the same checks as the built-in ones: give it a `Fixture` and call `run`.
public enum StrategyConformance {
    /// A check the strategy did not pass.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// What a strategy is checked with.
    public struct Fixture: Sendable {
        /// A label that selects the strategy and asks for a backup (`backup.database.pg_dumpall=true`).
        public var label: BackupLabel
        /// The container the label is on; it is added to a fresh `FakeDockerEngine`.
        public var container: ContainerDetails
        /// Makes the fake answer a good backup (an exec's complete dump, or a directory's tar).
        public var primeSuccess: @Sendable (FakeDockerEngine) -> Void
        /// Makes the fake answer the way a broken tool or a failed read does, and the text the error must carry.
        public var primeFailure: @Sendable (FakeDockerEngine) -> Void
        public var failureText: String
        /// A value of the label's key that turns the strategy off (`false`); nil when there is none.
        public var disablingValue: String?

        public init(label: BackupLabel, container: ContainerDetails,
                    primeSuccess: @escaping @Sendable (FakeDockerEngine) -> Void,
                    primeFailure: @escaping @Sendable (FakeDockerEngine) -> Void, failureText: String,
                    disablingValue: String? = nil) {
            self.label = label
            self.container = container
            self.primeSuccess = primeSuccess
            self.primeFailure = primeFailure
            self.failureText = failureText
            self.disablingValue = disablingValue
        }
    }

    /// The checks, by name, in the order `run` performs them.
    public static let checks = [
        "its label key selects it, alone in a registry",
        "plan touches nothing",
        "plan returns components of its own type under the service's folder",
        "a disabling label value plans nothing",
        "backup writes the planned component at its archive path, with the kind its requirement implies",
        "its own complete output passes checkCompleteness",
        "a failing tool fails the backup with the tool's text",
        "a restore strategy describes what it would do",
    ]

    /// Runs every check against `strategy`; throws a `Failure` naming the first one that fails.
    public static func run(_ strategy: any BackupStrategy, fixture: Fixture) async throws {
        let service = "svc"
        let docker = FakeDockerEngine(containers: [fixture.container])

        // 1.
        try check(0, strategy.matches(labelKey: fixture.label.key), "matches(labelKey: \(fixture.label.key)) is false")
        let registry = try StrategyRegistry([strategy])
        try check(0, registry.strategy(forLabelKey: fixture.label.key)?.type == strategy.type,
                  "the registry does not resolve \(fixture.label.key) to it")

        // 2. and 3.
        let components = try strategy.plan(label: fixture.label, service: service, container: fixture.container)
        try check(1, docker.calls.isEmpty, "Docker was called: \(docker.calls)")
        try check(2, !components.isEmpty, "no component for \(fixture.label.key)=\(fixture.label.value)")
        for component in components {
            try check(2, component.type == strategy.type, "component type '\(component.type)', not '\(strategy.type)'")
            try check(2, component.archivePath.hasPrefix("\(service)/"),
                      "archive path '\(component.archivePath)' is outside the folder '\(service)/'")
        }

        // 4.
        if let off = fixture.disablingValue {
            let disabled = try strategy.plan(label: BackupLabel(key: fixture.label.key, value: off), service: service,
                                             container: fixture.container)
            try check(3, disabled.isEmpty, "\(fixture.label.key)=\(off) planned \(disabled.map(\.archivePath))")
        }

        // 5. and 6.
        fixture.primeSuccess(docker)
        let context = BackupContext(docker: docker, logger: .init(label: "conformance"), stack: "stack",
                                    service: service)
        for component in components {
            let sink = InMemoryArchiveSink()
            let record = try await strategy.backup(component, container: fixture.container, context: context,
                                                   into: sink)
            let kind = PlannedComponent(spec: component, strategy: strategy).kind
            try check(4, record.archivePath == component.archivePath,
                      "record path '\(record.archivePath)', planned '\(component.archivePath)'")
            try check(4, record.kind == kind, "record kind \(record.kind), requirement \(strategy.requirement)")
            let written = kind == .file ? sink.files[component.archivePath] : sink.tars[component.archivePath]
            try check(4, written != nil, "nothing written at \(component.archivePath)")
            if kind == .file, let bytes = written {
                try check(4, !bytes.isEmpty, "an empty file at \(component.archivePath)")
                let entry = PlannedComponent(spec: component, strategy: strategy)
                    .indexEntry(service: service, container: fixture.container.name).manifestComponent(record: record)
                let tail = Array(bytes.suffix(RestoreLimits.completenessTailBytes))
                let problem = strategy.checkCompleteness(of: entry, tail: tail)
                try check(5, problem == nil, "checkCompleteness refuses its own output: \(problem ?? "")")
            }
        }

        // 7.
        fixture.primeFailure(docker)
        for component in components {
            do {
                _ = try await strategy.backup(component, container: fixture.container, context: context,
                                              into: InMemoryArchiveSink())
                try check(6, false, "backup of \(component.archivePath) succeeded")
            } catch let failure as Failure {
                throw failure
            } catch {
                try check(6, "\(error)".contains(fixture.failureText),
                          "the error does not carry '\(fixture.failureText)': \(error)")
            }
        }

        // 8.
        if let restorer = strategy as? any RestoreStrategy {
            for component in components {
                let planned = PlannedComponent(spec: component, strategy: restorer)
                let entry = planned.indexEntry(service: service, container: fixture.container.name).manifestComponent(
                    record: ComponentRecord(archivePath: component.archivePath, kind: planned.kind, sizeBytes: 0,
                                            entries: 0, sha256: ""))
                let text = restorer.describeRestore(entry, into: fixture.container)
                try check(7, !text.isEmpty, "describeRestore is empty")
            }
        }
    }

    private static func check(_ index: Int, _ condition: Bool, _ detail: @autoclosure () -> String) throws {
        guard condition else { throw Failure(description: "\(checks[index]): \(detail())") }
    }
}
