import Conveyor
import ConveyorPostgres
import Foundation
import PostgresNIO

/// The workflow `conveyor bench` measures W3 with: three sequential steps that do nothing.
struct BenchThreeSteps: Workflow {
    static let name = "bench.three-steps"

    func run(_ input: Int, context: WorkflowContext) async throws -> Int {
        let a = try await context.step("one") { input + 1 }
        let b = try await context.step("two") { a + 1 }
        return try await context.step("three") { b + 1 }
    }
}

extension BenchWorkloads {
    /// Transactions committed or rolled back in the bench's database so far (the drain's polls add about 20/s).
    static func transactions(_ env: BenchEnvironment) async throws -> Double {
        try await env.postgres.query(PostgresQuery(unsafeSQL: "SELECT pg_catalog.pg_stat_clear_snapshot()"))
        let rows = try await env.postgres.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT (xact_commit + xact_rollback)::float8 FROM pg_catalog.pg_stat_database
                    WHERE datname = current_database()
                    """
            )
        )
        for try await value in rows.decode(Double.self) { return value }
        return 0
    }

    /// W3: start `runs` workflows of three no-op steps, then let one worker process with the bench's slots drain
    /// them; workflows/s from the database's own timestamps (first execution start to last run end).
    func workflows(runs: Int) async throws -> [Measurement] {
        let env = self.environment
        let (schema, client) = try await env.freshSchema("w3")
        let store = try PostgresJobStore(client: env.postgres, schema: schema)
        var started = 0
        while started < runs {
            let count = min(1000, runs - started)
            let batch = try (0..<count).map { index in
                try client.workflows.makeNewRun(
                    BenchThreeSteps.self,
                    input: started + index,
                    options: .init(id: WorkflowRunID("w3-\(started + index)"), queue: "bench")
                )
            }
            _ = try await store.startWorkflowRuns(batch, notify: false, logger: env.logger)
            started += count
        }
        try await env.postgres.query(PostgresQuery(unsafeSQL: "CHECKPOINT"))
        let transactionsBefore = try await Self.transactions(env)
        let cpuBefore = ProcessCPU.postgresSeconds()
        let workers = try env.startWorkers(1, schema: schema)
        try await env.waitDrained(schema)
        let workerCPU = workers.map { ProcessCPU.seconds(pid: $0.process.processIdentifier) }.reduce(0, +)
        let postgresCPU = ProcessCPU.postgresSeconds() - cpuBefore
        workers.forEach { $0.stop() }
        // Backends publish their counts when idle, at most once a second: wait that out before reading.
        try await Task.sleep(for: .milliseconds(1500))
        let transactions = try await Self.transactions(env) - transactionsBefore
        let span = try await env.scalar(
            """
            SELECT extract(epoch FROM max(r.finished_at) - min(j.attempted_at))::float8
            FROM {schema}.workflow_runs r JOIN {schema}.jobs j ON j.id = r.job_id
            """,
            schema: schema
        )
        let completed = try await env.scalar(
            "SELECT count(*)::float8 FROM {schema}.workflow_runs WHERE status = 'completed'",
            schema: schema
        )
        let steps = try await env.scalar(
            "SELECT count(*)::float8 FROM {schema}.workflow_steps WHERE status = 'completed'",
            schema: schema
        )
        let seconds = max(span, 1e-9)
        return [
            Measurement(name: "W3 workflows", unit: "workflows/s", value: completed / seconds),
            Measurement(name: "W3 steps", unit: "steps/s", value: steps / seconds),
            Measurement(name: "W3 completed", unit: "runs", value: completed),
            Measurement(
                name: "W3 transactions per workflow",
                unit: "commits",
                value: transactions / Double(max(runs, 1))
            ),
            Measurement(
                name: "W3 worker CPU per workflow",
                unit: "µs",
                value: workerCPU * 1e6 / Double(max(runs, 1))
            ),
            Measurement(
                name: "W3 PostgreSQL CPU per workflow",
                unit: "µs",
                value: postgresCPU * 1e6 / Double(max(runs, 1))
            ),
        ]
    }
}
