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
    /// How long an enqueue, a migration or a notification waits for a connection from the pool before it fails
    /// with `NO_CONNECTION` (default 5 s).
    ///
    /// postgres-nio queues such a request without limit when the `PostgresClient` is not running, and until the
    /// database is back when it is unreachable; this bound turns both into a clear error. Once the call has its
    /// connection it is not bounded. (A worker bounds each of its own calls as a whole, by
    /// ``ConveyorWorker/Configuration/databaseTimeout``.)
    public var connectionWaitTimeout: Duration
    let statements: Statements

    /// - Throws: `INVALID_SCHEMA_NAME` when `schema` is not a plain lower-case identifier.
    public init(
        client: PostgresClient,
        schema: String = "conveyor",
        connectionWaitTimeout: Duration = .seconds(5)
    )
        throws
    {
        self.client = client
        self.schema = try SchemaName(schema)
        self.connectionWaitTimeout = connectionWaitTimeout
        self.statements = Statements(schema: self.schema)
    }

    /// Runs `body` on a pooled connection, failing with `NO_CONNECTION` when none is handed out within
    /// ``connectionWaitTimeout``.
    func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await BoundedCall.run(
                timeout: self.connectionWaitTimeout,
                "getting a database connection",
                startedBy: { [client] started in
                    try await client.withConnection { connection in
                        // Too late: the caller was told NO_CONNECTION, so nothing may be written now.
                        guard started() else { throw CancellationError() }
                        return try await body(connection)
                    }
                }
            )
        } catch let error as ConveyorError where error.code == .databaseTimeout {
            throw ConveyorError(
                .noConnection,
                "no database connection within \(self.connectionWaitTimeout): the PostgresClient is not running (add "
                    + "it to your ServiceGroup, or call its run()), or the database cannot be reached",
                underlying: error
            )
        }
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
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await self.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            do {
                let result = try await body(connection)
                try await connection.query("COMMIT", logger: logger)
                return result
            } catch {
                // After a failed COMMIT the transaction is gone already; the ROLLBACK only warns then. On a
                // connection that died, postgres-nio can drop a statement without ever answering it, so none is
                // sent there (the server rolls back a dead session's transaction by itself).
                if !connection.isClosed {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                }
                throw error
            }
        }
    }

    // MARK: Migrations

    /// Applies every pending migration in one transaction under a transaction-scoped advisory lock keyed by the
    /// schema name: concurrent migrators queue on the lock, and each one that gets it sees what the others applied.
    public func migrate(logger: Logger) async throws -> [Int] {
        try await self.run("migrating schema \(self.schema.name)") {
            try await self.committed(logger: logger) { connection in
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
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Self.mapped(error, what)
        }
    }

    /// The ``ConveyorError`` for a driver error, classified as the worker needs it: `DATABASE_UNAVAILABLE` for
    /// what a retry can outlive, `SCHEMA_MISMATCH` for what no retry fixes, `DUPLICATE_JOB` for a unique key, and
    /// `DATABASE_ERROR` (a problem of the statement's rows) for the rest. The message names the SQLSTATE, never the
    /// server's text, which may quote stored values.
    static func mapped(_ error: any Error, _ what: String) -> ConveyorError {
        if let error = error as? ConveyorError { return error }
        if let transaction = error as? PostgresTransactionError {
            // The closure's error comes first: it is why the transaction was rolled back.
            if let closure = transaction.closureError { return Self.mapped(closure, what) }
            if let begin = transaction.beginError { return Self.mapped(begin, what) }
            if let commit = transaction.commitError { return Self.mapped(commit, what) }
            if let rollback = transaction.rollbackError { return Self.mapped(rollback, what) }
        }
        if error is PostgresDecodingError {
            // A row that does not decode will not decode next time either.
            return ConveyorError(.databaseError, "\(what) failed: a result did not decode", underlying: error)
        }
        guard let error = error as? PSQLError else {
            // NIO channel and socket errors, and the pool's own (shut down, circuit breaker open): the connection
            // is gone or cannot be had now.
            return ConveyorError(.databaseUnavailable, "\(what) failed: the connection failed", underlying: error)
        }
        guard let state = error.serverInfo?[.sqlState] else {
            switch error.code {
            // A protocol message the client could not make sense of leaves the connection unusable too.
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
                .queryCancelled, .sslUnsupported, .failedToAddSSLHandler, .unexpectedBackendMessage,
                .messageDecodingFailure:
                return ConveyorError(
                    .databaseUnavailable,
                    "\(what) failed: the connection to the database was lost or could not be made",
                    underlying: error
                )
            default:
                return ConveyorError(.databaseError, "\(what) failed (\(error.code))", underlying: error)
            }
        }
        return ConveyorError(Self.code(forSQLState: state), "\(what) failed (SQLSTATE \(state))", underlying: error)
    }

    /// How a server error's SQLSTATE is classified (see ``mapped(_:_:)``).
    static func code(forSQLState state: String) -> ConveyorError.Code {
        if state == PostgresError.Code.uniqueViolation.raw { return .duplicateJob }
        switch state {
        // Serialization failure, deadlock, lock not available, a read-only transaction (a replica, or a
        // primary not yet promoted).
        case "40001", "40P01", "55P03", "25006":
            return .databaseUnavailable
        default:
            break
        }
        switch state.prefix(2) {
        // 08 connection exception, 53 insufficient resources (too many connections, out of memory or disk),
        // 57 operator intervention (admin shutdown, crash shutdown, cannot connect now, query cancelled), 58
        // system error (I/O).
        case "08", "53", "57", "58":
            return .databaseUnavailable
        // 3D invalid catalog (database), 3F invalid schema, 42 syntax error or access rule violation (a table or
        // function missing, a permission denied), 28 invalid authorization, 0A feature not supported.
        case "3D", "3F", "42", "28", "0A":
            return .schemaMismatch
        default:
            return .databaseError
        }
    }
}
