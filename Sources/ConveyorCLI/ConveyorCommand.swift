import ArgumentParser
import Conveyor
import Foundation
import Logging

@main
struct ConveyorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "A durable job queue and workflow engine on PostgreSQL.",
        discussion: """
            Commands that talk to a database use --database-url, else DATABASE_URL, else the server that \
            `conveyor dev` is running in this directory.
            """,
        subcommands: [
            DevCommand.self, DemoCommand.self, MigrateCommand.self, EnqueueCommand.self, JobsCommand.self,
            DeadLetterCommand.self, RetryCommand.self, ReplayCommand.self, CancelCommand.self, QueuesCommand.self,
            WorkflowsCommand.self, WorkerCommand.self, WorkersCommand.self, StatsCommand.self, ServeCommand.self,
            LimitsCommand.self, IngestCommand.self, SchedulesCommand.self, PoolsCommand.self, TenantsCommand.self,
            BenchCommand.self,
        ]
    )
}

/// Runs a command body, printing any error as one line on stderr and exiting non-zero.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CancellationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A duration from a command-line number of seconds (or of `unit` seconds: 0.001 for milliseconds).
///
/// - Throws: `INVALID_OPTION` naming `option` when the number is infinite, NaN or too large for a duration, which
///   `Duration.seconds(_:)` would trap on.
func duration(seconds value: Double, unit: Double = 1, option: String) throws -> Duration {
    guard let duration = Duration.checkedSeconds(value * unit) else {
        throw ConveyorError(.invalidOption, "--\(option) must be a finite number of seconds, got \(value)")
    }
    return duration
}
