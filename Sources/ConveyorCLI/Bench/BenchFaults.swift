import Conveyor
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

extension BenchWorkloads {
    // MARK: W8

    /// W8 faults: a drain of `jobs` no-op jobs while the private server is killed (`pg_ctl stop -m immediate`) and
    /// started again `restarts` times, 3 s of draining apart. For each restart: the time from the server accepting
    /// connections again to the next result a worker wrote, and whether every job completed in the end.
    func faults(cluster: LocalPostgres, restarts: Int) async throws -> [Measurement] {
        let env = self.environment
        let (schema, client) = try await env.freshSchema("w8")
        try await Self.enqueueNoops(self.jobs, inBatchesOf: 1000, queue: "bench", client: client)
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let workers = try (0..<self.processes).map { _ in
            try BenchWorker(
                url: env.url,
                schema: schema,
                arguments: [
                    "--queue", "bench:\(env.slots)", "--database-timeout", "2", "--lease", "10", "--heartbeat", "2",
                ]
            )
        }
        defer { workers.forEach { $0.stop() } }
        let completed = "SELECT count(*)::float8 FROM {schema}.jobs WHERE state = 'completed'"
        let clock = ContinuousClock()
        var resumed: [Double] = []
        for _ in 0..<restarts {
            try await Task.sleep(for: .seconds(3))
            let before = try await self.whenReachable { try await env.scalar(completed, schema: schema) }
            if before >= Double(self.jobs) { break }
            try await cluster.crash()
            try await cluster.startAgain()
            let ready = clock.now
            // The first count after the restart may still be the one before it; progress is a count above it.
            let atReady = try await self.whenReachable { try await env.scalar(completed, schema: schema) }
            while try await self.whenReachable({ try await env.scalar(completed, schema: schema) }) <= atReady {
                if clock.now - ready > .seconds(60) { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            resumed.append((clock.now - ready).inSeconds * 1000)
        }
        try await self.whenReachable { try await env.waitDrained(schema, timeout: .seconds(300)) }
        let done = try await self.whenReachable { try await env.scalar(completed, schema: schema) }
        let survivors = workers.filter { $0.process.isRunning }.count
        return [
            Measurement(name: "W8 restarts during the drain", unit: "count", value: Double(resumed.count)),
            Measurement(name: "W8 server ready → next result, median", unit: "ms", value: resumed.percentile(0.5)),
            Measurement(name: "W8 server ready → next result, max", unit: "ms", value: resumed.max() ?? 0),
            Measurement(name: "W8 jobs completed", unit: "%", value: 100 * done / Double(self.jobs)),
            Measurement(name: "W8 worker processes still running", unit: "count", value: Double(survivors)),
        ]
    }

    /// Runs `body` until it succeeds, each try bounded, while the server may be restarting (up to a minute).
    private func whenReachable<Value: Sendable>(
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while true {
            do {
                return try await BoundedCall.run(timeout: .seconds(5), "a benchmark query", body)
            } catch {
                if clock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    // MARK: W9

    /// Adds `count` jobs of queue `bench` scheduled a day ahead to `schema`, as a table of delayed jobs (reminders,
    /// trials, long backoffs) holds them, then vacuums and analyzes the table.
    func scheduleAhead(_ count: Int, schema: String) async throws {
        let env = self.environment
        try await env.postgres.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO "\(schema)".jobs (kind, queue, state, run_at)
                    SELECT 'bench.noop', 'bench', 'scheduled', now() + interval '1 day' + g * interval '1 ms'
                    FROM generate_series(1, \(count)) AS g
                    """
            )
        )
        try await env.postgres.query(PostgresQuery(unsafeSQL: "VACUUM ANALYZE \"\(schema)\".jobs"))
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
    }

    /// The median time of a fetch that finds nothing due in queue `bench` of `schema` (what every idle poll and the
    /// tail of every drain costs), over `calls` calls.
    func emptyFetch(schema: String, calls: Int = 200) async throws -> Double {
        let store = try PostgresJobStore(client: self.environment.postgres, schema: schema)
        let clock = ContinuousClock()
        var times: [Double] = []
        for _ in 0..<calls {
            let start = clock.now
            let jobs = try await store.fetch(
                queue: "bench",
                limit: 300,
                workerID: "bench-probe",
                leaseDuration: .seconds(30),
                synchronousCommit: false,
                logger: self.environment.logger
            )
            times.append((clock.now - start).inSeconds * 1000)
            guard jobs.isEmpty else {
                throw ConveyorError(.invalidConfiguration, "the empty fetch probe found jobs in \(schema)")
            }
        }
        return times.percentile(0.5)
    }
}
