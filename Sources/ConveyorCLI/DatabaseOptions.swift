import ArgumentParser
import Conveyor
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

/// Where the database is, shared by every command that needs one.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "postgres://user:password@host:port/database")
    var databaseURL: String?

    @Option(help: "The schema that holds Conveyor's tables (env CONVEYOR_SCHEMA).")
    var schema: String = ProcessInfo.processInfo.environment["CONVEYOR_SCHEMA"] ?? "conveyor"

    /// The file in which `conveyor dev` leaves the URL of the server it runs.
    static let devURLFile = ".conveyor/url"

    /// The URL from the flag, then `DATABASE_URL`, then a running `conveyor dev`; `nil` when none is set.
    func configuredURL() -> String? {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty { return url }
        if let text = try? String(contentsOfFile: Self.devURLFile, encoding: .utf8) {
            let url = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !url.isEmpty { return url }
        }
        return nil
    }

    func requireURL() throws -> String {
        guard let url = self.configuredURL() else {
            throw ConveyorError(
                .invalidConfiguration,
                "no database: pass --database-url, set DATABASE_URL, or run `conveyor dev` in this directory"
            )
        }
        return url
    }

    /// Connects to `url`, runs `body` with a client on the configured schema, and closes the connections.
    func withClient<Result: Sendable>(
        url: String,
        logger: Logger,
        _ body: @Sendable (ConveyorClient, PostgresClient) async throws -> Result
    ) async throws -> Result {
        let postgres = PostgresClient(
            configuration: try PostgresClient.Configuration(url: url),
            backgroundLogger: logger
        )
        let store = try PostgresJobStore(client: postgres, schema: self.schema)
        let client = ConveyorClient(store: store, logger: logger)
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask {
                await postgres.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client, postgres)
        }
    }

    /// ``withClient(url:logger:_:)`` on the configured URL, for commands that only read and write jobs.
    func withClient<Result: Sendable>(
        _ body: @Sendable (ConveyorClient) async throws -> Result
    ) async throws -> Result {
        var logger = Logger(label: "conveyor.cli")
        logger.logLevel = .error
        return try await self.withClient(url: try self.requireURL(), logger: logger) { client, _ in
            try await body(client)
        }
    }
}
