import ArgumentParser
import Foundation
import Logging
import StackVaultCore
import StackVaultStorage
import StackVaultStrategies

@main
struct StackVaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stackvault",
        abstract: "Backs up labelled Docker Compose stacks: database dumps and directories, one archive per stack.",
        version: StackVault.version,
        subcommands: [
            PlanCommand.self, BackupCommand.self, PruneCommand.self, ListCommand.self, VerifyCommand.self,
            RestoreCommand.self, DrillCommand.self, StatusCommand.self, DaemonCommand.self, RunNowCommand.self,
            ScheduleCommand.self,
            HealthCommand.self, HelperCommand.self,
        ],
        defaultSubcommand: PlanCommand.self
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Where archives go: file:///dir, s3://bucket/prefix (default: $BACKUP_TARGET, " + "$S3_BUCKET_URL, else ./backups)."))
    var target: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default: $LOG_LEVEL or info).")
    var logLevel: String?
}

/// What all commands need, built from options and the environment.
struct Environment {
    let variables: [String: String]
    let logger: Logger
    let docker: DockerClient
    let strategies: StrategyRegistry
    let storageRegistry: StorageRegistry

    /// `logs`: where log lines go; `daemon` logs to stdout, the others to stderr (their stdout carries the plan or
    /// the summary).
    init(options: GlobalOptions, logs: LogDestination = .standardError) throws {
        let variables = ProcessInfo.processInfo.environment
        self.variables = variables
        let levels = Logger.Level.allCases.map(\.rawValue)
        let levelName = try options.logLevel.map { try EnvironmentValue.choice("--log-level", $0, from: levels) }
            ?? EnvironmentValue.choice("LOG_LEVEL", variables["LOG_LEVEL"], from: levels)
        let level = levelName.flatMap { Logger.Level(rawValue: $0) } ?? .info
        let format = try LogFormat(environment: variables)
        Logging.bootstrapOnce(level: level, format: format, destination: logs)
        // Text lines say the numbers already; JSON lines also carry them as fields.
        ProgressReporter.settings = try ProgressSettings.parse(environment: variables, metadataFields: format == .json)
        var logger = Logger(label: "stackvault")
        logger.logLevel = level
        self.logger = logger
        self.docker = try DockerClient(environment: variables)
        self.strategies = try BuiltinStrategies.registry()
        self.storageRegistry = try BuiltinStorageBackends.registry()
    }

    /// `--target`, else BACKUP_TARGET, else S3_BUCKET_URL, else ./backups.
    func targetURL(_ option: String?) -> String {
        for candidate in [option, variables["BACKUP_TARGET"], variables["S3_BUCKET_URL"]] {
            if let value = candidate?.trimmingCharacters(in: .whitespaces), !value.isEmpty { return value }
        }
        return "./backups"
    }

    func storage(_ option: String?) throws -> any StorageBackend {
        try storageRegistry.backend(for: targetURL(option), environment: variables)
    }
}

enum Logging {
    private static let once: Void = ()
    nonisolated(unsafe) private static var bootstrapped = false

    static func bootstrapOnce(level: Logger.Level, format: LogFormat = .text,
                              destination: LogDestination = .standardError) {
        guard !bootstrapped else { return }
        bootstrapped = true
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .text:
                handler = destination == .standardOutput ? StreamLogHandler.standardOutput(label: label)
                    : StreamLogHandler.standardError(label: label)
            case .json:
                handler = JSONLogHandler(label: label, destination: destination)
            }
            handler.logLevel = level
            return handler
        }
    }
}

/// Exit codes: 0 success, 1 a stack or service failed, 2 Docker unreachable or bad configuration.
enum ExitStatus {
    static let failure = ExitCode(1)
    static let unreachable = ExitCode(2)

    static func code(for error: any Error) -> ExitCode {
        if let error = error as? StackVaultError, error.code == .dockerUnreachable || error.code == .invalidConfiguration
            || error.code == .dockerAPI
        {
            return unreachable
        }
        return failure
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("stackvault: \(message)\n".utf8))
}
