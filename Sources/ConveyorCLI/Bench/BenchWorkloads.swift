import Conveyor
import ConveyorPostgres
import Foundation
import PostgresNIO

/// One measured figure of one run.
struct Measurement: Sendable {
    var name: String
    var unit: String
    var value: Double
}

/// The workloads of DESIGN.md, each returning its figures for one run.
struct BenchWorkloads: Sendable {
    let environment: BenchEnvironment
    let jobs: Int
    let processes: Int

    // MARK: W1 and W4

    /// W4's table: a schema with finished jobs in it, filled once per bench command. Every W4 run drains its own
    /// jobs through it after a VACUUM, so the runs after the first add their 20,000 to millions and need no new
    /// prefill (10,000,000 rows take about six minutes to write).
    struct PrefilledSchema: Sendable {
        let schema: String
        let client: ConveyorClient
        let rows: Int
    }

    /// Creates W4's schema with `rows` finished jobs (see ``prefillFinished(_:schema:)``).
    func prefilledSchema(rows: Int) async throws -> PrefilledSchema {
        let (schema, client) = try await self.environment.freshSchema("w4")
        try await self.prefillFinished(rows, schema: schema)
        return PrefilledSchema(schema: schema, client: client, rows: rows)
    }

    /// W1 drain (and, `in` a prefilled schema, W4): enqueue `jobs` no-op jobs in batches, then let the worker
    /// processes drain them; jobs/s is counted from the database's own timestamps.
    ///
    /// With `dashboard`, the admin API serves the schema from this process during the drain and the dashboard's
    /// overview is refreshed every second (``BenchDashboard``); the drain's figures and its CPU are reported then.
    ///
    /// With `concurrencyLimit`, the bench queue has that limit across every worker (W1l). With `fairTenants`, the
    /// queue is fair and the jobs are spread over that many tenants, one after another (W1f, with a limit too).
    /// With `tenantLimit`, the jobs are spread over `limitedTenants` tenants of a first-come queue, each with that
    /// concurrency limit (W1t).
    func drain(
        in prefilled: PrefilledSchema? = nil,
        dashboard: Bool = false,
        concurrencyLimit: Int? = nil,
        fairTenants: Int? = nil,
        tenantLimit: Int? = nil,
        limitedTenants: Int = 10
    ) async throws -> [Measurement] {
        let env = self.environment
        let (schema, client) =
            if let prefilled { (prefilled.schema, prefilled.client) } else { try await env.freshSchema("w1") }
        let prefix =
            if prefilled != nil { "W4" } else if dashboard { "W1 with dashboard" } else if fairTenants != nil {
                "W1 fair and limited"
            } else if concurrencyLimit != nil { "W1 limited" } else if tenantLimit != nil {
                "W1 tenant-limited"
            } else { "W1" }
        let tenants = fairTenants ?? (tenantLimit != nil ? limitedTenants : 1)
        if let tenantLimit {
            for tenant in 0..<tenants {
                try await client.tenants.setConcurrencyLimit("tenant-\(tenant)", maxRunning: tenantLimit)
            }
        }
        if let concurrencyLimit {
            try await client.queues.setConcurrencyLimit("bench", maxRunning: concurrencyLimit)
        }
        if fairTenants != nil {
            try await client.queues.setFairness("bench", true)
        }
        if prefilled != nil {
            // Every W4 run starts from a vacuumed, analyzed table (the prefill's dead rows, or the previous run's,
            // are gone and the free space map is current) with nothing left to checkpoint.
            try await env.postgres.query(PostgresQuery(unsafeSQL: "VACUUM ANALYZE \"\(schema)\".jobs"))
            try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        }
        // Only this run's jobs count (W4's table keeps the jobs of the runs before).
        let lastEarlierID = try await env.lastJobID(schema)
        let clock = ContinuousClock()
        let batchSize = 1000
        let enqueueCPU = (postgres: ProcessCPU.postgresSeconds(), bench: ProcessCPU.seconds(pid: getpid()))
        let start = clock.now
        try await Self.enqueueNoops(
            self.jobs,
            inBatchesOf: batchSize,
            queue: "bench",
            namespaces: tenants,
            client: client
        )
        let enqueueSeconds = (clock.now - start).inSeconds
        let enqueuePostgresCPU = ProcessCPU.postgresSeconds() - enqueueCPU.postgres
        let enqueueBenchCPU = ProcessCPU.seconds(pid: getpid()) - enqueueCPU.bench
        // Every drain starts without a checkpoint pending: one that began during a drain (after W4's prefill, say)
        // slowed every commit of it and halved a run.
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let cpuBefore = (postgres: ProcessCPU.postgresSeconds(), bench: ProcessCPU.seconds(pid: getpid()))
        let workers = try env.startWorkers(self.processes, schema: schema)
        var refreshes = 0
        if dashboard {
            (_, refreshes) = try await BenchDashboard.polling(client: client, logger: env.logger) {
                try await env.waitDrained(schema)
            }
        } else {
            try await env.waitDrained(schema)
        }
        let workerCPU = workers.map { ProcessCPU.seconds(pid: $0.process.processIdentifier) }.reduce(0, +)
        let postgresCPU = ProcessCPU.postgresSeconds() - cpuBefore.postgres
        let benchCPU = ProcessCPU.seconds(pid: getpid()) - cpuBefore.bench
        let memory = workers.map(\.peakResidentBytes).max() ?? 0
        workers.forEach { $0.stop() }
        let span = try await env.scalar(
            """
            SELECT extract(epoch FROM max(finished_at) - min(attempted_at))::float8
            FROM {schema}.jobs WHERE kind = 'bench.noop' AND id > \(lastEarlierID)
            """,
            schema: schema
        )
        let completed = try await env.scalar(
            """
            SELECT count(*)::float8 FROM {schema}.jobs
            WHERE kind = 'bench.noop' AND state = 'completed' AND id > \(lastEarlierID)
            """,
            schema: schema
        )
        var figures = [
            Measurement(name: "\(prefix) drain", unit: "jobs/s", value: completed / max(span, 1e-9)),
            Measurement(
                name: "\(prefix) enqueue, batches of \(batchSize)",
                unit: "jobs/s",
                value: Double(self.jobs) / enqueueSeconds
            ),
            Measurement(
                name: "\(prefix) enqueue client CPU per job",
                unit: "µs",
                value: enqueueBenchCPU * 1e6 / Double(self.jobs)
            ),
            Measurement(
                name: "\(prefix) enqueue PostgreSQL CPU per job",
                unit: "µs",
                value: enqueuePostgresCPU * 1e6 / Double(self.jobs)
            ),
            Measurement(name: "\(prefix) worker peak RSS", unit: "MB", value: Double(memory) / 1_048_576),
            Measurement(name: "\(prefix) worker CPU per job", unit: "µs", value: workerCPU * 1e6 / Double(self.jobs)),
            Measurement(
                name: "\(prefix) PostgreSQL CPU per job",
                unit: "µs",
                value: postgresCPU * 1e6 / Double(self.jobs)
            ),
            Measurement(name: "\(prefix) bench CPU per job", unit: "µs", value: benchCPU * 1e6 / Double(self.jobs)),
        ]
        if dashboard {
            // The drain and where its CPU went: the worker, PostgreSQL, and this process (the API server and the
            // overview's calls).
            return [
                figures[0], figures[5], figures[6], figures[7],
                Measurement(name: "\(prefix): overview refreshes", unit: "", value: Double(refreshes)),
            ]
        }
        if prefilled == nil && fairTenants == nil && tenantLimit == nil {
            // One job per call and per transaction, from one task: what an app's request handler does.
            let singles = min(2000, self.jobs)
            let singleStart = clock.now
            for _ in 0..<singles {
                try await client.jobs.enqueue(BenchJobs.Noop(), options: .init(queue: "bench-single"))
            }
            let singleSeconds = (clock.now - singleStart).inSeconds
            // The whole batch in one call: one transaction that copies the jobs in, building each part while the
            // server writes the one before.
            let bulkStart = clock.now
            try await client.jobs.enqueue(
                contentsOf: Array(repeating: BenchJobs.Noop(), count: self.jobs),
                options: .init(queue: "bench-bulk")
            )
            let bulkSeconds = (clock.now - bulkStart).inSeconds
            // Batches of 1000 from several tasks at once, as an app's concurrent request handlers enqueue: each
            // call is one transaction on a connection of its own, so the inserts run on several server processes.
            let callers = 4
            let concurrentStart = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        try await Self.enqueueNoops(
                            self.jobs / callers + (caller < self.jobs % callers ? 1 : 0),
                            inBatchesOf: batchSize,
                            queue: "bench-concurrent",
                            client: client
                        )
                    }
                }
                try await group.waitForAll()
            }
            let concurrentSeconds = (clock.now - concurrentStart).inSeconds
            figures += [
                Measurement(
                    name: "W1 enqueue, one call of \(self.jobs)",
                    unit: "jobs/s",
                    value: Double(self.jobs) / bulkSeconds
                ),
                Measurement(
                    name: "W1 enqueue, batches of \(batchSize) from \(callers) tasks",
                    unit: "jobs/s",
                    value: Double(self.jobs) / concurrentSeconds
                ),
                Measurement(name: "W1 enqueue, one per call", unit: "jobs/s", value: Double(singles) / singleSeconds),
            ]
        }
        return figures
    }

    /// Enqueues `count` no-op jobs on `queue`, one call (and transaction) per batch, one call after another: in
    /// `namespace`, or spread over `namespaces` tenants (`tenant-0`, `tenant-1`, …) in turn.
    static func enqueueNoops(
        _ count: Int,
        inBatchesOf batchSize: Int,
        queue: String,
        namespace: String? = nil,
        namespaces: Int = 1,
        client: ConveyorClient
    ) async throws {
        var remaining = count
        while remaining > 0 {
            let batch = min(batchSize, remaining)
            if namespaces > 1 {
                try await client.jobs.enqueue(
                    (0..<batch).map { index in
                        JobRequest(
                            BenchJobs.Noop(),
                            options: .init(
                                queue: queue,
                                namespace: "tenant-\((count - remaining + index) % namespaces)"
                            )
                        )
                    }
                )
            } else {
                try await client.jobs.enqueue(
                    contentsOf: Array(repeating: BenchJobs.Noop(), count: batch),
                    options: .init(queue: queue, namespace: namespace)
                )
            }
            remaining -= batch
        }
    }

    /// Fills the table with `rows` finished jobs the way the queue leaves them: each chunk is inserted as
    /// enqueued jobs, then updated as a fetch leases them and as the completer finishes them, so every row has
    /// the three versions a real job has and its final size (with its attempt record).
    ///
    /// Inserting finished rows directly, as earlier sessions did, made a table no queue produces: rows packed
    /// to the fillfactor, each page keeping a sliver of free space that fits exactly one new job. After the
    /// VACUUM the free space map then sent the drain's 20,000 new jobs to 20,000 different old pages, and W4
    /// measured that layout (every insert a full-page image after the checkpoint) rather than a large table.
    private func prefillFinished(_ rows: Int, schema: String) async throws {
        let env = self.environment
        let jobs = "\"\(schema)\".jobs"
        var done = 0
        while done < rows {
            let count = min(500_000, rows - done)
            // The chunk's rows are the ids after the table's last one (the updates read them by primary key).
            let after = try await env.lastJobID(schema)
            try await env.postgres.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO \(jobs) (kind, queue, args)
                        SELECT 'bench.old', 'bench', '{}' FROM generate_series(1, \(count))
                        """
                )
            )
            try await env.postgres.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE \(jobs)
                        SET state = 'running', attempt = 1, attempted_at = now(), lease_owner = 'bench-prefill',
                            lease_expires_at = now() + interval '30 seconds', lease_token = id
                        WHERE id > \(after)
                        """
                )
            )
            try await env.postgres.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE \(jobs)
                        SET state = 'completed', finished_at = now(), lease_owner = NULL,
                            lease_expires_at = NULL, lease_token = NULL,
                            attempts = attempts || jsonb_build_array(jsonb_build_array(
                                attempt, lease_owner, attempted_at AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
                                'completed', NULL, NULL, 1))
                        WHERE id > \(after)
                        """
                )
            )
            done += count
        }
        // The VACUUM ANALYZE and CHECKPOINT come before each W4 run (see drain(in:)).
    }

    // MARK: W2

    /// W2 latency: an idle, listening worker; one enqueue every `interval`; commit → handler start. With
    /// `scheduledAhead` jobs scheduled a day ahead in the same queue, it is W9; both also time a fetch that finds
    /// nothing due.
    func latency(samples: Int, interval: Duration, scheduledAhead: Int = 0) async throws -> [Measurement] {
        let env = self.environment
        let prefix = scheduledAhead > 0 ? "W9" : "W2"
        let (schema, client) = try await env.freshSchema(prefix.lowercased())
        if scheduledAhead > 0 { try await self.scheduleAhead(scheduledAhead, schema: schema) }
        let emptyFetch = try await self.emptyFetch(schema: schema)
        let file = NSTemporaryDirectory() + "conveyor-bench-\(schema).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Like a drain, W2 starts without the previous workload's checkpoint pending: one that ran during the
        // samples put its data-file flushes beside every commit's WAL flush.
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let workers = try env.startWorkers(1, schema: schema)
        defer { workers.forEach { $0.stop() } }
        try await env.waitListening(schema, count: 1)
        // Warm up connections and code paths.
        for _ in 0..<5 {
            try await client.jobs.enqueue(BenchJobs.Probe(file: file), options: .init(queue: "bench"))
        }
        try await env.waitDrained(schema)
        var committed: [Int64: UInt64] = [:]
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<samples {
            try await Task.sleep(until: start.advanced(by: interval * index), clock: clock)
            let job = try await client.jobs.enqueue(BenchJobs.Probe(file: file), options: .init(queue: "bench"))
            committed[job.id.rawValue] = DemoJobs.monotonicNanoseconds()
        }
        try await env.waitDrained(schema)
        let latencies = try Self.startLatencies(file: file, committed: committed)
        return [
            Measurement(name: "\(prefix) commit → start p50", unit: "ms", value: latencies.percentile(0.50)),
            Measurement(name: "\(prefix) commit → start p95", unit: "ms", value: latencies.percentile(0.95)),
            Measurement(name: "\(prefix) commit → start p99", unit: "ms", value: latencies.percentile(0.99)),
            Measurement(name: "\(prefix) fetch finding nothing due, median", unit: "ms", value: emptyFetch),
        ]
    }

    /// Milliseconds from each job's enqueue commit to its handler's start, from the probe file.
    static func startLatencies(file: String, committed: [Int64: UInt64]) throws -> [Double] {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var latencies: [Double] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let id = Int64(fields[0]), let start = UInt64(fields[1]),
                let enqueued = committed[id]
            else { continue }
            latencies.append(start > enqueued ? Double(start - enqueued) / 1e6 : 0)
        }
        return latencies
    }

    // MARK: W5

    /// W5 sustained: `rate` jobs/s for `duration`, spread over `tenants` tenants, while the workers run; with
    /// `fair`, in a fair queue (W5f).
    func sustained(rate: Int, duration: Duration, tenants: Int, fair: Bool = false) async throws -> [Measurement] {
        let env = self.environment
        let prefix = fair ? "W5 fair" : "W5"
        let (schema, client) = try await env.freshSchema("w5")
        if fair { try await client.queues.setFairness("bench", true) }
        let file = NSTemporaryDirectory() + "conveyor-bench-\(schema).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Starts without the previous workloads' checkpoint pending; checkpoints of its own run fall where they do.
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let workers = try env.startWorkers(self.processes, schema: schema)
        defer { workers.forEach { $0.stop() } }
        try await env.waitListening(schema, count: self.processes)
        let total = Int(Double(rate) * duration.inSeconds)
        let enqueuers = 4
        let clock = ContinuousClock()
        let start = clock.now
        let spacing = Duration.seconds(1) / rate
        let records = try await withThrowingTaskGroup(of: [(Int64, UInt64, Double)].self) { group in
            for lane in 0..<enqueuers {
                group.addTask {
                    var records: [(Int64, UInt64, Double)] = []
                    for index in stride(from: lane, to: total, by: enqueuers) {
                        try await Task.sleep(until: start.advanced(by: spacing * index), clock: clock)
                        let job = try await client.jobs.enqueue(
                            BenchJobs.Probe(file: file),
                            options: .init(queue: "bench", namespace: "tenant-\(index % tenants)")
                        )
                        records.append(
                            (job.id.rawValue, DemoJobs.monotonicNanoseconds(), Date().timeIntervalSince1970)
                        )
                    }
                    return records
                }
            }
            var all: [(Int64, UInt64, Double)] = []
            for try await part in group { all += part }
            return all
        }
        try await env.waitDrained(schema)
        let jobs = records
        let started = try Self.startLatencies(
            file: file,
            committed: Dictionary(uniqueKeysWithValues: jobs.map { ($0.0, $0.1) })
        )
        var finished: [Int64: Double] = [:]
        let rows = try await env.postgres.query(
            PostgresQuery(
                unsafeSQL:
                    "SELECT id, extract(epoch FROM finished_at)::float8 FROM \"\(schema)\".jobs WHERE kind = 'bench.probe'"
            )
        )
        for try await (id, at) in rows.decode((Int64, Double).self) { finished[id] = at }
        let completedLatencies = jobs.compactMap { job in finished[job.0].map { max(0, ($0 - job.2) * 1000) } }
        // The backlog once a second: jobs enqueued by then and not yet finished, from the enqueue times and the
        // database's finished_at after the run (sampling it with queries during the run loaded the server under
        // test more and more as finished rows piled up).
        let startWall = (jobs.map(\.2).min() ?? 0)
        let backlog = (1...max(1, Int(duration.inSeconds))).map { second -> Double in
            let at = startWall + Double(second)
            return Double(jobs.count { $0.2 <= at && (finished[$0.0].map { $0 > at } ?? true) })
        }
        let half = backlog.count / 2
        let firstHalf = backlog.prefix(half).reduce(0, +) / Double(max(half, 1))
        let secondHalf = backlog.suffix(backlog.count - half).reduce(0, +) / Double(max(backlog.count - half, 1))
        return [
            Measurement(
                name: "\(prefix) achieved enqueue rate",
                unit: "jobs/s",
                value: Double(jobs.count) / max(duration.inSeconds, 1e-9)
            ),
            Measurement(name: "\(prefix) enqueue → start p50", unit: "ms", value: started.percentile(0.50)),
            Measurement(name: "\(prefix) enqueue → start p99", unit: "ms", value: started.percentile(0.99)),
            Measurement(
                name: "\(prefix) enqueue → completed p50",
                unit: "ms",
                value: completedLatencies.percentile(0.50)
            ),
            Measurement(
                name: "\(prefix) enqueue → completed p99",
                unit: "ms",
                value: completedLatencies.percentile(0.99)
            ),
            Measurement(name: "\(prefix) backlog, first half mean", unit: "jobs", value: firstHalf),
            Measurement(name: "\(prefix) backlog, second half mean", unit: "jobs", value: secondHalf),
            Measurement(name: "\(prefix) backlog max", unit: "jobs", value: backlog.max() ?? 0),
        ]
    }

    // MARK: W6

    /// W6 fairness: tenants with weights 1, 2 and 3 in a fair queue, each with a backlog of `perWeight` jobs per
    /// unit of weight, drained by the worker processes. Reports each tenant's share of the jobs started while all
    /// three still had jobs waiting (until the first ran out), and how many jobs were leased between a fourth
    /// tenant's single job's enqueue, made once a fifth of the backlog ran, and its start.
    func fairness(perWeight: Int) async throws -> [Measurement] {
        let env = self.environment
        let (schema, client) = try await env.freshSchema("w6")
        try await client.queues.setFairness("bench", true)
        let weights = [1, 2, 3]
        for weight in weights {
            try await client.tenants.set("tenant-\(weight)", weight: Double(weight))
            try await Self.enqueueNoops(
                perWeight * weight,
                inBatchesOf: 1000,
                queue: "bench",
                namespace: "tenant-\(weight)",
                client: client
            )
        }
        // A job a fifth of the way into the lightest tenant's backlog: its lease says the drain is well under way.
        let marker =
            try await env.scalar(
                "SELECT min(id)::float8 FROM {schema}.jobs WHERE namespace = 'tenant-1'",
                schema: schema
            ) + Double(perWeight / 5)
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let workers = try env.startWorkers(self.processes, schema: schema)
        defer { workers.forEach { $0.stop() } }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(600)
        while try await env.scalar(
            "SELECT count(*)::float8 FROM {schema}.jobs WHERE id = \(Int64(marker)) AND state = 'available'",
            schema: schema
        ) > 0, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let quiet = try await client.jobs.enqueue(
            BenchJobs.Noop(),
            options: .init(queue: "bench", namespace: "tenant-quiet")
        )
        try await env.waitDrained(schema)
        // The window: from the first lease until the first tenant's last one.
        let until = """
            (SELECT min(last) FROM (
                SELECT max(attempted_at) AS last FROM {schema}.jobs
                WHERE namespace IN ('tenant-1', 'tenant-2', 'tenant-3') GROUP BY namespace) AS ends)
            """
        var started: [Double] = []
        for weight in weights {
            started.append(
                try await env.scalar(
                    """
                    SELECT count(*)::float8 FROM {schema}.jobs
                    WHERE namespace = 'tenant-\(weight)' AND attempted_at <= \(until)
                    """,
                    schema: schema
                )
            )
        }
        let window = try await env.scalar(
            "SELECT extract(epoch FROM \(until) - min(attempted_at))::float8 FROM {schema}.jobs",
            schema: schema
        )
        let before = try await env.scalar(
            """
            SELECT count(*)::float8 FROM {schema}.jobs j, {schema}.jobs q
            WHERE q.id = \(quiet.id.rawValue) AND j.id <> q.id
              AND j.attempted_at > q.created_at AND j.attempted_at < q.attempted_at
            """,
            schema: schema
        )
        let all = max(started.reduce(0, +), 1)
        var figures: [Measurement] = []
        var deviation = 0.0
        for (index, weight) in weights.enumerated() {
            let share = started[index] / all * 100
            let expected = Double(weight) / Double(weights.reduce(0, +)) * 100
            deviation = max(deviation, abs(share - expected) / expected * 100)
            figures.append(
                Measurement(
                    name: "W6 share of tenant with weight \(weight) (\(Int(expected.rounded())) % expected)",
                    unit: "%",
                    value: share
                )
            )
        }
        return figures + [
            Measurement(name: "W6 largest deviation from a weight's share", unit: "%", value: deviation),
            Measurement(name: "W6 window with all three waiting", unit: "s", value: window),
            Measurement(
                name: "W6 jobs leased between a fourth tenant's enqueue and its start",
                unit: "jobs",
                value: before
            ),
            Measurement(
                name: "W6 the same in fetch batches of \(env.slots)",
                unit: "batches",
                value: before / Double(env.slots)
            ),
        ]
    }

    // MARK: Idle

    /// Transactions per second that one idle worker process sends, from `pg_stat_database` of a database that
    /// only this worker uses (so autovacuum and the benchmark's own queries elsewhere do not count).
    func idle(seconds: Int, scheduledAhead: Int = 0) async throws -> [Measurement] {
        let env = self.environment
        let database = "conveyor_bench_idle_" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"))
        guard var components = URLComponents(string: env.url) else {
            throw ConveyorError(.invalidConfiguration, "cannot parse the database URL")
        }
        components.path = "/" + database
        guard let url = components.string else {
            throw ConveyorError(.invalidConfiguration, "cannot build the idle database URL")
        }
        let worker = try BenchWorker(url: url, schema: "conveyor", arguments: ["--queue", "bench:\(env.slots)"])
        try await env.waitListening("conveyor", count: 1)
        if scheduledAhead > 0 {
            let idleDatabase = PostgresClient(
                configuration: try PostgresClient.Configuration(url: url),
                backgroundLogger: env.logger
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await idleDatabase.run() }
                defer { group.cancelAll() }
                let scheduling = BenchWorkloads(
                    environment: BenchEnvironment(
                        url: url,
                        postgres: idleDatabase,
                        logger: env.logger,
                        slots: env.slots
                    ),
                    jobs: self.jobs,
                    processes: self.processes
                )
                try await scheduling.scheduleAhead(scheduledAhead, schema: "conveyor")
            }
        }
        try await Task.sleep(for: .seconds(2))
        let cpuBefore = ProcessCPU.postgresSeconds()
        func transactions() async throws -> Double {
            try await env.postgres.query(PostgresQuery(unsafeSQL: "SELECT pg_catalog.pg_stat_clear_snapshot()"))
            var binds = PostgresBindings()
            binds.append(database)
            let rows = try await env.postgres.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT (xact_commit + xact_rollback)::float8 FROM pg_catalog.pg_stat_database
                        WHERE datname = $1
                        """,
                    binds: binds
                )
            )
            for try await value in rows.decode(Double.self) { return value }
            return 0
        }
        let before = try await transactions()
        try await Task.sleep(for: .seconds(seconds))
        // Backends publish their counts when idle, at most once a second: wait that out before reading.
        try await Task.sleep(for: .milliseconds(1500))
        let after = try await transactions()
        let postgresCPU = ProcessCPU.postgresSeconds() - cpuBefore
        worker.stop()
        try await env.postgres.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database) WITH (FORCE)"))
        let name = scheduledAhead > 0 ? "W9 idle worker" : "idle worker"
        let window = Double(seconds) + 1.5
        return [
            Measurement(name: "\(name) queries", unit: "queries/s", value: max(0, after - before) / window),
            Measurement(name: "\(name) PostgreSQL CPU", unit: "ms/s", value: postgresCPU * 1000 / window),
        ]
    }
}

extension Array where Element == Double {
    /// Nearest-rank percentile; 0 for an empty array.
    func percentile(_ fraction: Double) -> Double {
        guard !self.isEmpty else { return 0 }
        let sorted = self.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.min(Swift.max(rank, 0), sorted.count - 1)]
    }
}
