import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL driver: Conveyor's ``JobStore`` on a postgres-nio `PostgresClient`.
///
/// Every table lives in one schema (default `conveyor`). The store runs no background work of its own: the
/// `PostgresClient` must be running (add it to your `ServiceGroup`, or call its `run()` in a task).
///
/// ```swift
/// let postgres = PostgresClient(configuration: config)
/// let store = try PostgresJobStore(client: postgres, schema: "conveyor")
/// let conveyor = ConveyorClient(store: store)
/// ```
public struct PostgresJobStore: JobStore {
    public let client: PostgresClient
    public let schema: SchemaName
    let statements: Statements

    /// - Throws: `INVALID_SCHEMA_NAME` when `schema` is not a plain lower-case identifier.
    public init(client: PostgresClient, schema: String = "conveyor") throws {
        self.client = client
        self.schema = try SchemaName(schema)
        self.statements = Statements(schema: self.schema)
    }

    /// The migration SQL as one script (`conveyor migrate --print`), for teams that run their own migration tool.
    public static func migrationScript(schema: String = "conveyor") throws -> String {
        Migrations.script(schema: try SchemaName(schema))
    }

    /// The newest migration version this build knows.
    public static var latestMigrationVersion: Int { Migrations.all.last?.version ?? 0 }

    // MARK: Commits

    /// Runs `body` on one connection between `BEGIN` and `COMMIT`, and returns once the commit is done.
    ///
    /// Writes go through here or through procedures that commit (the heartbeat excepted). postgres-nio reports a statement finished at PostgreSQL's CommandComplete
    /// message, which an autocommit statement sends *before* its transaction commits: a commit that failed (a
    /// deferred constraint, a crash before the WAL flush) would go unnoticed, and an enqueue could report a job
    /// that was never stored. An explicit `COMMIT` reports completion only after the commit, WAL flush included.
    func committed<Result: Sendable>(
        logger: Logger,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await self.client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return result
            } catch {
                // After a failed COMMIT the transaction is gone already; the ROLLBACK only warns then.
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    // MARK: Migrations

    /// Applies every pending migration in one transaction under a transaction-scoped advisory lock keyed by the
    /// schema name: concurrent migrators queue on the lock, and each one that gets it sees what the others applied.
    public func migrate(logger: Logger) async throws -> [Int] {
        try await self.run("migrating schema \(self.schema.name)") {
            try await self.client.withTransaction(logger: logger) { connection in
                try await self.migrate(on: connection, logger: logger)
            }
        }
    }

    func migrate(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        var lockBinds = PostgresBindings()
        lockBinds.append(self.schema.name)
        try await connection.query(
            PostgresQuery(unsafeSQL: self.statements.migrationLock, binds: lockBinds),
            logger: logger
        )
        try await connection.query(
            PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(self.schema.quoted)"),
            logger: logger
        )
        try await connection.query(
            PostgresQuery(unsafeSQL: Migrations.bookkeepingTable(schema: self.schema)),
            logger: logger
        )
        var applied = Set<Int>()
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT version FROM \(self.schema.quoted).schema_migrations"),
            logger: logger
        )
        for try await version in rows.decode(Int.self) {
            applied.insert(version)
        }
        var appliedNow: [Int] = []
        for migration in Migrations.all where !applied.contains(migration.version) {
            for statement in migration.statements {
                try await connection.query(
                    PostgresQuery(unsafeSQL: Migrations.render(statement, schema: self.schema)),
                    logger: logger
                )
            }
            var binds = PostgresBindings()
            binds.append(migration.version)
            binds.append(migration.name)
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: "INSERT INTO \(self.schema.quoted).schema_migrations (version, name) VALUES ($1, $2)",
                    binds: binds
                ),
                logger: logger
            )
            appliedNow.append(migration.version)
            logger.info(
                "applied migration",
                metadata: ["schema": "\(self.schema.name)", "version": "\(migration.version)"]
            )
        }
        return appliedNow
    }

    // MARK: Errors

    /// Runs a database operation and maps driver errors to ``ConveyorError`` at this edge.
    func run<Result>(_ what: String, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as ConveyorError {
            throw error
        } catch let error as PSQLError {
            let state = error.serverInfo?[.sqlState]
            if state == PostgresError.Code.uniqueViolation.raw {
                throw ConveyorError(.duplicateJob, "\(what): a job with this unique key exists", underlying: error)
            }
            throw ConveyorError(
                .databaseError,
                "\(what) failed" + (state.map { " (SQLSTATE \($0))" } ?? ""),
                underlying: error
            )
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ConveyorError(.databaseError, "\(what) failed", underlying: error)
        }
    }
}
