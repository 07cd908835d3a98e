import Conveyor
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

/// What every workload shares: the server, a connection pool for the benchmark's own queries, and a way to start
/// worker processes.
struct BenchEnvironment: Sendable {
    let url: String
    let postgres: PostgresClient
    let logger: Logger
    let slots: Int

    /// A fresh, migrated schema for one run; dropped by ``drop(_:)``.
    func freshSchema(_ name: String) async throws -> (schema: String, client: ConveyorClient) {
        let schema = "bench_\(name)_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let store = try PostgresJobStore(client: self.postgres, schema: schema)
        let client = ConveyorClient(store: store, logger: self.logger)
        try await client.migrate()
        return (schema, client)
    }

    /// Drops every schema a benchmark run created (`bench_…`) but `kept`, before and after the runs.
    func dropBenchSchemas(except kept: String? = nil) async throws {
        let rows = try await self.postgres.query(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'bench\\_%'"
        )
        var schemas: [String] = []
        for try await name in rows.decode(String.self) { schemas.append(name) }
        for schema in schemas where schema != kept {
            try await self.postgres.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"))
        }
    }

    /// One number from a query on `schema` (`{schema}` in the text).
    func scalar(_ sql: String, schema: String) async throws -> Double {
        let text = sql.replacingOccurrences(of: "{schema}", with: "\"\(schema)\"")
        for try await value in try await self.postgres.query(PostgresQuery(unsafeSQL: text)).decode(Double?.self) {
            return value ?? 0
        }
        return 0
    }

    /// The highest job id in `schema` (0 when the table is empty): the jobs inserted after this call have larger
    /// ids.
    func lastJobID(_ schema: String) async throws -> Int64 {
        Int64(try await self.scalar("SELECT coalesce(max(id), 0)::float8 FROM {schema}.jobs", schema: schema))
    }

    /// Waits until no job of `schema` is available, due or running (W9's jobs scheduled a day ahead do not count).
    ///
    /// Polls every 50 ms with two `EXISTS` probes, each matching a partial index's predicate, so that waiting
    /// neither scans the finished rows (W4 has millions) nor counts the remaining ones: the poll runs on the
    /// server under test and its cost would be charged to the workload. Rates come from the database's timestamps,
    /// not from when this notices.
    func waitDrained(_ schema: String, timeout: Duration = .seconds(600)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let left = try await self.scalar(
                """
                SELECT (EXISTS (SELECT 1 FROM {schema}.jobs WHERE state = 'available')
                        OR EXISTS (SELECT 1 FROM {schema}.jobs
                                   WHERE state IN ('scheduled', 'retryable') AND run_at <= now())
                        OR EXISTS (SELECT 1 FROM {schema}.jobs WHERE state = 'running'))::int::float8
                """,
                schema: schema
            )
            if left == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConveyorError(.databaseError, "the benchmark did not drain within \(timeout)")
    }

    /// Waits until `count` sessions LISTEN on the schema's channel: the workers are up and idle.
    func waitListening(_ schema: String, count: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            var binds = PostgresBindings()
            binds.append("LISTEN \"\(schema).jobs_available\"%")
            let rows = try await self.postgres.query(
                PostgresQuery(
                    unsafeSQL:
                        "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE query LIKE $1 AND state = 'idle'",
                    binds: binds
                )
            )
            for try await listening in rows.decode(Int.self) where listening >= count {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ConveyorError(.databaseError, "workers did not start listening within a minute")
    }

    func startWorkers(_ count: Int, schema: String, queue: String = "bench") throws -> [BenchWorker] {
        try (0..<count).map { _ in
            try BenchWorker(url: self.url, schema: schema, arguments: ["--queue", "\(queue):\(self.slots)"])
        }
    }
}

/// A `conveyor worker` child process.
final class BenchWorker: @unchecked Sendable {
    let process = Process()

    init(url: String, schema: String, arguments: [String]) throws {
        self.process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        self.process.arguments =
            ["worker", "--database-url", url, "--schema", schema, "--log-level", "error"] + arguments
        self.process.standardInput = FileHandle.nullDevice
        self.process.standardOutput = FileHandle.nullDevice
        try self.process.run()
    }

    /// The peak resident set size so far, in bytes (`VmHWM`).
    var peakResidentBytes: Int {
        guard
            let status = try? String(contentsOfFile: "/proc/\(self.process.processIdentifier)/status", encoding: .utf8)
        else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return kilobytes * 1024
        }
        return 0
    }

    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGTERM)
        }
        self.process.waitUntilExit()
    }

    deinit {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }
}
