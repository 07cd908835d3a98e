import Conveyor
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

/// A migrated schema of its own for one test, on the test process's PostgreSQL.
///
/// The server is a private cluster that the first test starts and the process stops at exit, or the server that
/// `CONVEYOR_TEST_DATABASE_URL` points at. Every connection has an empty `search_path`, so any SQL that forgets
/// to qualify a table with the schema fails.
struct TestDatabase: Sendable {
    @TaskLocal static var current: TestDatabase?

    let url: String
    let schema: String
    let postgres: PostgresClient
    let store: PostgresJobStore
    let client: ConveyorClient
    let logger: Logger

    /// The database of the running test; fails the test when it was not given the `.database` trait.
    static func get() throws -> TestDatabase {
        try #require(Self.current, "the test needs the .database trait")
    }

    /// A `PostgresClient` configuration for the test server with an empty `search_path`.
    static func configuration(url: String) throws -> PostgresClient.Configuration {
        var configuration = try PostgresClient.Configuration(url: url)
        configuration.options.additionalStartupParameters = [("search_path", "")]
        configuration.options.maximumConnections = 8
        return configuration
    }

    /// Runs `body` with a new migrated schema on the test server, or on the server at `url`.
    static func withFreshSchema(on server: String? = nil, _ body: (TestDatabase) async throws -> Void) async throws {
        let url: String
        if let server { url = server } else { url = try await TestServer.shared.url() }
        let schema = "t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var logger = Logger(label: "conveyor.test")
        logger.logLevel =
            ProcessInfo.processInfo.environment["CONVEYOR_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .error
        let postgres = PostgresClient(configuration: try Self.configuration(url: url), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            defer { group.cancelAll() }
            let store = try PostgresJobStore(client: postgres, schema: schema)
            let client = ConveyorClient(store: store, logger: logger)
            try await client.migrate()
            let database = TestDatabase(
                url: url,
                schema: schema,
                postgres: postgres,
                store: store,
                client: client,
                logger: logger
            )
            do {
                try await body(database)
            } catch {
                try? await database.dropSchema()
                throw error
            }
            try await database.dropSchema()
        }
    }

    func dropSchema() async throws {
        try await self.postgres.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(self.schema)\" CASCADE"))
    }

    /// Runs SQL that the test writes itself (assertions on stored rows), with `{schema}` replaced.
    @discardableResult
    func execute(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) async throws -> PostgresRowSequence {
        let text = sql.replacingOccurrences(of: "{schema}", with: "\"\(self.schema)\"")
        return try await self.postgres.query(PostgresQuery(unsafeSQL: text, binds: binds), logger: self.logger)
    }

    /// Makes inserting an `Echo` job with `value` fail: at once, or only when its transaction commits (a deferred
    /// constraint trigger), so that a statement succeeds and its commit fails.
    func refuseInserts(ofValue value: Int, atCommit: Bool) async throws {
        try await self.execute(
            """
            CREATE FUNCTION {schema}.refuse_value() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.args ->> 'value' = '\(value)' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                RETURN NEW;
            END $$
            """
        )
        try await self.execute(
            atCommit
                ? """
                CREATE CONSTRAINT TRIGGER refuse_value AFTER INSERT ON {schema}.jobs
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_value()
                """
                : """
                CREATE TRIGGER refuse_value BEFORE INSERT ON {schema}.jobs
                FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_value()
                """
        )
    }

    /// Runs `action`, a PL/pgSQL statement, in a trigger whenever a job of this schema is about to become
    /// `completed` and `condition` (on `NEW`) holds: a stand-in for a database that holds, refuses or fails results.
    func beforeCompletion(_ name: String, when condition: String = "true", run action: String) async throws {
        try await self.execute(
            """
            CREATE FUNCTION {schema}.\(name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.state = 'completed' AND (\(condition)) THEN \(action); END IF;
                RETURN NEW;
            END $$
            """
        )
        try await self.execute(
            """
            CREATE TRIGGER \(name) BEFORE UPDATE ON {schema}.jobs
            FOR EACH ROW EXECUTE FUNCTION {schema}.\(name)()
            """
        )
    }

    /// Sessions that LISTEN on this schema's channel, from the server's activity view. Only idle ones count: a
    /// LISTEN that is still executing has not registered yet, and a notification sent then would be missed.
    func listeners() async throws -> Int {
        var binds = PostgresBindings()
        binds.append("LISTEN \"\(self.schema).jobs_available\"%")
        return try await self.scalar(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE query LIKE $1 AND state = 'idle'",
            binds
        )
    }

    /// Runs `body` with a store on this schema whose sessions all start after this call, with `parameters`.
    func withNewSessions<Result: Sendable>(
        startupParameters parameters: [(String, String)] = [],
        _ body: (PostgresJobStore) async throws -> Result
    ) async throws -> Result {
        var configuration = try Self.configuration(url: self.url)
        configuration.options.additionalStartupParameters += parameters
        let postgres = PostgresClient(configuration: configuration, backgroundLogger: self.logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            defer { group.cancelAll() }
            return try await body(try PostgresJobStore(client: postgres, schema: self.schema))
        }
    }

    /// Leases up to `limit` jobs of `queue` as worker `workerID` would, without running them, through this
    /// database's store or `store`.
    func lease(
        _ limit: Int = 1,
        queue: String = "default",
        as workerID: String,
        for duration: Duration,
        synchronousCommit: Bool = false,
        on store: PostgresJobStore? = nil
    ) async throws -> [FetchedJob] {
        try await (store ?? self.store).fetch(
            queue: queue,
            limit: limit,
            workerID: workerID,
            leaseDuration: duration,
            synchronousCommit: synchronousCommit,
            logger: self.logger
        )
    }

    /// Takes back expired leases as the reaper does, retrying at once: the leases found, and the jobs written.
    func reapExpiredLeases() async throws -> (expired: [ExpiredLease], reaped: [JobID]) {
        let expired = try await self.store.expiredLeases(limit: 10, logger: self.logger)
        let reaped = try await self.store.complete(
            expired.map {
                JobCompletion(
                    lease: $0.lease,
                    transition: .after(
                        .leaseExpired,
                        attempt: $0.attempt,
                        maxAttempts: $0.maxAttempts,
                        retryPolicy: .constant(.zero),
                        unitRandom: 0.5
                    ),
                    durationMicroseconds: nil,
                    requireExpiredLease: true
                )
            },
            logger: self.logger
        )
        return (expired, reaped)
    }

    /// One integer from a query, such as a count.
    func scalar(_ sql: String, _ binds: PostgresBindings = PostgresBindings()) async throws -> Int {
        for try await value in try await self.execute(sql, binds).decode(Int.self) {
            return value
        }
        throw TestFailure("query returned no rows: \(sql)")
    }

    /// Waits, checking every 20 ms, until `condition` holds or `timeout` passes; fails the test on timeout.
    func waitUntil(
        _ what: String,
        timeout: Duration = .seconds(30),
        condition: () async throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("timed out after \(timeout) waiting until \(what)")
    }

    /// As ``waitUntil(_:timeout:condition:)`` while the server may be down: a check that fails or takes longer than
    /// 5 s counts as not yet.
    func waitUntilReachable(
        _ what: String,
        timeout: Duration = .seconds(60),
        condition: @escaping @Sendable () async throws -> Bool
    ) async throws {
        try await self.waitUntil(what, timeout: timeout) {
            (try? await BoundedCall.run(timeout: .seconds(5), "checking: \(what)", condition)) ?? false
        }
    }

    /// A count from a query while the server may be down: `nil` when it failed or took longer than 5 s.
    func reachableScalar(_ sql: String) async -> Int? {
        try? await BoundedCall.run(timeout: .seconds(5), "querying") { try await self.scalar(sql) }
    }

    /// Runs a worker in the background of `body`, then shuts it down gracefully and waits for it to return.
    func withWorker(
        _ registry: JobRegistry,
        configure: (inout ConveyorWorker.Configuration) -> Void = { _ in },
        _ body: (ConveyorWorker) async throws -> Void
    ) async throws {
        var configuration = ConveyorWorker.Configuration()
        configuration.migrateOnStart = false
        configuration.pollInterval = .milliseconds(200)
        configure(&configuration)
        let worker = ConveyorWorker(
            client: self.client,
            registry: registry,
            configuration: configuration,
            logger: self.logger
        )
        try await TestServiceRunner.run(worker, body)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts the test process's PostgreSQL once, on first use, and stops it when the process exits.
actor TestServer {
    static let shared = TestServer()

    /// The one start, shared by every test that asks while it runs (an actor alone would let each caller that
    /// arrives during the `await` start a cluster of its own).
    private var starting: Task<String, any Error>?

    func url() async throws -> String {
        if let starting { return try await starting.value }
        let task = Task<String, any Error> {
            if let url = ProcessInfo.processInfo.environment["CONVEYOR_TEST_DATABASE_URL"], !url.isEmpty {
                return url
            }
            var logger = Logger(label: "conveyor.test.postgres")
            logger.logLevel = .warning
            // Every test runs at once, each with a pool of its own and some with worker processes: leave room, so
            // that no test waits on a refused connection.
            let cluster = try await LocalPostgres.startEphemeral(settings: .init(maxConnections: 600), logger: logger)
            cluster.stopAtExit()
            return cluster.url
        }
        self.starting = task
        return try await task.value
    }
}

/// The `.database` trait: the test runs with its own migrated schema in ``TestDatabase/current``.
struct DatabaseTrait: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil || !test.isSuite else {
            try await function()
            return
        }
        try await TestConcurrency.shared.run {
            try await TestDatabase.withFreshSchema { database in
                try await TestDatabase.$current.withValue(database) {
                    try await function()
                }
            }
        }
    }
}

extension Trait where Self == DatabaseTrait {
    /// Gives the test its own migrated schema on a real PostgreSQL server.
    static var database: Self { DatabaseTrait() }
}

extension JobCompletion {
    /// The result of a leased job whose handler succeeded.
    static func succeeded(_ job: FetchedJob) -> JobCompletion {
        JobCompletion(
            lease: JobLease(id: job.id, token: job.leaseToken),
            transition: .after(
                .succeeded,
                attempt: job.attempt,
                maxAttempts: job.maxAttempts,
                retryPolicy: .default,
                unitRandom: 0
            ),
            durationMicroseconds: 10
        )
    }
}
