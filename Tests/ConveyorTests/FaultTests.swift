import Conveyor
import ConveyorLocalPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

/// The database going away under running worker processes: restarted, its sessions terminated, or down at shutdown.
/// Restarts need a server of the test's own, so that other tests do not see them.
@Suite struct FaultTests {
    typealias Record = ProcessTests.Record

    /// Runs `body` with a fresh migrated schema on a PostgreSQL server of its own, which `body` may crash and start
    /// again.
    ///
    /// With `durable`, the server has fsync and synchronous_commit on, so that a crash keeps every commit (a test
    /// that counts rows written by handlers across a crash needs that).
    static func withOwnServer(
        durable: Bool = false,
        _ body: (LocalPostgres, TestDatabase) async throws -> Void
    ) async throws {
        var logger = Logger(label: "conveyor.test.postgres")
        logger.logLevel = .warning
        let server = try await LocalPostgres.startEphemeral(
            settings: .init(durable: durable, maxConnections: 100),
            logger: logger
        )
        do {
            try await TestDatabase.withFreshSchema(on: server.url) { db in try await body(server, db) }
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    /// Runs `body`, adding the workers' logs to any error it throws.
    static func explaining(_ workers: [WorkerProcess], _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            let logs = workers.enumerated().map { "--- worker \($0.offset) ---\n\($0.element.output.suffix(6000))" }
            throw TestFailure("\(error)\n" + logs.joined(separator: "\n"))
        }
    }

    /// Enqueues `total` jobs of queue `q` that record their runs in `file` and take `milliseconds` each, and starts
    /// two worker processes on them.
    static func startDrain(
        _ db: TestDatabase,
        file: String,
        total: Int,
        milliseconds: Int
    ) async throws -> [WorkerProcess] {
        try await db.client.jobs.enqueue(
            contentsOf: (0..<total).map { _ in Record(file: file, milliseconds: milliseconds) },
            options: .init(queue: "q")
        )
        return try (0..<2).map { _ in
            try WorkerProcess(url: db.url, schema: db.schema, arguments: Self.workerArguments)
        }
    }

    /// Checks that the workers that did the drain never exited, stops them, and checks they stopped cleanly
    /// holding no lease.
    static func stopAfterDrain(_ workers: [WorkerProcess], _ db: TestDatabase) async throws {
        for worker in workers {
            #expect(worker.isRunning, "\(worker.output)")
            #expect(await worker.terminate() == 0, "\(worker.output)")
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_owner IS NOT NULL") == 0)
    }

    static let workerArguments = [
        "--queue", "q:10", "--lease", "5", "--heartbeat", "1", "--poll", "0.5", "--reaper", "1",
        "--database-timeout", "3", "--grace", "5",
    ]

    @Test("worker processes drain every job through repeated immediate restarts of their database, then exit cleanly")
    func drainSurvivesRestarts() async throws {
        try await Self.withOwnServer { server, db in
            let file = ProcessTests.recordFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            // Short jobs keep fetches and result writes in flight at every moment, so each restart cuts some off;
            // at 10 ms each on 20 slots the drain lasts at least 10 s, longer than three restarts take.
            let total = 20_000
            let workers = try await Self.startDrain(db, file: file, total: total, milliseconds: 10)
            let completed = "SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'"
            try await Self.explaining(workers) {
                var before = 0
                for restart in 1...3 {
                    // Restart in the middle of the drain, each time after the workers made progress since the last.
                    let threshold = before + 1000
                    try await db.waitUntilReachable("progress before restart \(restart)", timeout: .seconds(120)) {
                        try await db.scalar(completed) >= threshold
                    }
                    try await server.crash()
                    try await server.startAgain()
                    before = await db.reachableScalar(completed) ?? before
                    #expect(before < total, "the drain ended before restart \(restart); the test proves nothing")
                }
                try await db.waitUntilReachable("every job completed", timeout: .seconds(180)) {
                    try await db.scalar(completed) == total
                }
            }
            // The same processes did it: none exited, and both stop cleanly.
            try await Self.stopAfterDrain(workers, db)
            #expect(Set(try RecordedRun.read(file).map(\.job)).count == total)
        }
    }

    @Test("worker processes drain every job while each of their connections is terminated, again and again")
    func drainSurvivesTerminatedConnections() async throws {
        try await TestDatabase.withFreshSchema { db in
            let file = ProcessTests.recordFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            // At 20 ms each on 20 slots the drain lasts at least 20 s, far longer than five rounds of terminations
            // need even on a loaded machine (where the jobs' own time does not stretch, but the rounds do).
            let total = 20_000
            let workers = try await Self.startDrain(db, file: file, total: total, milliseconds: 20)
            let completed = "SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'"
            var binds = PostgresBindings()
            binds.append("conveyor worker \(db.schema)")
            try await Self.explaining(workers) {
                var before = 0
                for round in 1...5 {
                    try await db.waitUntil("progress before round \(round)", timeout: .seconds(120)) {
                        try await db.scalar(completed) >= before + 100
                    }
                    let terminated = try await db.scalar(
                        """
                        SELECT count(pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
                        WHERE application_name = $1
                        """,
                        binds
                    )
                    #expect(terminated >= 2, "round \(round) found no worker sessions to terminate")
                    before = try await db.scalar(completed)
                    #expect(before < total, "the drain ended before round \(round); the test proves nothing")
                }
                try await db.waitUntil("every job completed", timeout: .seconds(180)) {
                    try await db.scalar(completed) == total
                }
            }
            try await Self.stopAfterDrain(workers, db)
        }
    }

    @Test("SIGTERM while the database is down returns within the grace period and the database timeout")
    func shutdownWithDatabaseDownIsBounded() async throws {
        try await Self.withOwnServer { server, db in
            let file = ProcessTests.recordFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            // Long jobs, so that some run and some finish while the database is down.
            try await db.client.jobs.enqueue(
                contentsOf: (0..<40).map { index in Record(file: file, milliseconds: index < 10 ? 300 : 60_000) },
                options: .init(queue: "q")
            )
            let worker = try WorkerProcess(
                url: db.url,
                schema: db.schema,
                arguments: [
                    "--queue", "q:10", "--lease", "30", "--heartbeat", "1", "--poll", "0.5", "--reaper", "1",
                    "--database-timeout", "2", "--grace", "1",
                ]
            )
            try await db.waitUntil("ten jobs run") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") >= 10
            }
            try await server.crash()
            let clock = ContinuousClock()
            let start = clock.now
            let status = await worker.terminate()
            let took = clock.now - start
            // Grace 1 s, results 2 s, and room for a loaded machine; without the bound it never returned.
            #expect(took < .seconds(12), "shutdown took \(took): \(worker.output)")
            #expect(status == 0, "\(worker.output)")
            // What could not be released is left to expire; nothing stored was lost.
            try await server.startAgain()
            try await db.waitUntilReachable("the server is back") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 40
            }
        }
    }
}
