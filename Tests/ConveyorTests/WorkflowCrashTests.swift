import Conveyor
import ConveyorLocalPostgres
import Foundation
import PostgresNIO
import Testing

/// Workflow runs through killed worker processes and a restarted database: every run ends, and no step body runs
/// again once its output is stored.
@Suite struct WorkflowCrashTests {
    struct Steps: Workflow {
        static let name = "demo.steps"
        struct Input: Codable, Sendable {
            var steps: Int
            var milliseconds: Int
            var record: Bool
        }
        func run(_ input: Input, context: WorkflowContext) async throws -> Int { 0 }
    }

    static let workerArguments = [
        "--queue", "wf:4", "--lease", "1.5", "--heartbeat", "0.3", "--poll", "0.3", "--reaper", "0.3",
        "--database-timeout", "3", "--grace", "2",
    ]

    /// Starts `runs` five-step runs whose step bodies record each execution in `demo_step_runs`.
    static func startRuns(_ db: TestDatabase, runs: Int, milliseconds: Int) async throws {
        _ = try await db.execute(
            "CREATE TABLE {schema}.demo_step_runs (run_id text NOT NULL, step text NOT NULL, at timestamptz NOT NULL)"
        )
        for index in 0..<runs {
            try await db.client.workflows.start(
                Steps.self,
                input: .init(steps: 5, milliseconds: milliseconds, record: true),
                options: .init(id: WorkflowRunID("crash-\(index)"), queue: "wf")
            )
        }
    }

    /// Checks that every run completed with five stored steps, that every body ran at least once, at most
    /// `extra` times more in all, and never after its step's output was stored.
    static func checkRuns(_ db: TestDatabase, runs: Int, extra: Int) async throws {
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.workflow_runs WHERE status = 'completed'") == runs)
        #expect(
            try await db.scalar("SELECT count(*) FROM {schema}.workflow_steps WHERE status = 'completed'") == runs * 5
        )
        #expect(try await db.scalar("SELECT count(DISTINCT (run_id, step)) FROM {schema}.demo_step_runs") == runs * 5)
        let reruns = try await db.scalar("SELECT count(*) FROM {schema}.demo_step_runs") - runs * 5
        #expect(reruns <= extra, "\(reruns) step bodies ran again")
        // A body that started after its step's output was committed ran although the step was stored.
        let late = try await db.scalar(
            """
            SELECT count(*) FROM {schema}.demo_step_runs b
            JOIN {schema}.workflow_steps s ON s.run_id = b.run_id AND s.name = b.step
            WHERE b.at > s.finished_at
            """
        )
        #expect(late == 0)
    }

    @Test(
        "runs survive repeated SIGKILLs of their workers: every run ends, and stored steps never run again",
        .database
    )
    func runsSurviveKilledWorkers() async throws {
        let db = try TestDatabase.get()
        let runs = 40
        try await Self.startRuns(db, runs: runs, milliseconds: 40)
        var workers = try (0..<2).map { _ in try WorkerProcess(database: db, arguments: Self.workerArguments) }
        var kills = 0
        let completed = "SELECT count(*) FROM {schema}.workflow_runs WHERE status = 'completed'"
        try await FaultTests.explaining(workers) {
            // Kill a worker whenever some step has run since the last kill, until every run is past its first step,
            // then let the survivors finish.
            while kills < 6, try await db.scalar(completed) < runs {
                let before = try await db.scalar("SELECT count(*) FROM {schema}.demo_step_runs")
                try await db.waitUntil("more steps ran", timeout: .seconds(60)) {
                    try await db.scalar("SELECT count(*) FROM {schema}.demo_step_runs") >= before + 8
                }
                await workers[kills % 2].kill()
                kills += 1
                workers[(kills - 1) % 2] = try WorkerProcess(database: db, arguments: Self.workerArguments)
            }
            try await db.waitUntil("every run completed", timeout: .seconds(120)) {
                try await db.scalar(completed) == runs
            }
        }
        for worker in workers { #expect(await worker.terminate() == 0, "\(worker.output)") }
        #expect(kills > 0)
        // A kill interrupts at most the four runs its worker was executing, one step body each.
        try await Self.checkRuns(db, runs: runs, extra: kills * 4)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_owner IS NOT NULL") == 0)
    }

    @Test("runs survive an immediate restart of their database mid-run")
    func runsSurviveDatabaseRestart() async throws {
        try await FaultTests.withOwnServer(durable: true) { server, db in
            let runs = 30
            try await Self.startRuns(db, runs: runs, milliseconds: 100)
            let worker = try WorkerProcess(url: db.url, schema: db.schema, arguments: Self.workerArguments)
            try await FaultTests.explaining([worker]) {
                try await db.waitUntil("some steps ran", timeout: .seconds(60)) {
                    try await db.scalar("SELECT count(*) FROM {schema}.demo_step_runs") >= 20
                }
                try await server.crash()
                try await server.startAgain()
                try await db.waitUntilReachable("every run completed", timeout: .seconds(120)) {
                    try await db.scalar("SELECT count(*) FROM {schema}.workflow_runs WHERE status = 'completed'")
                        == runs
                }
            }
            #expect(worker.isRunning, "\(worker.output)")
            #expect(await worker.terminate() == 0, "\(worker.output)")
            // The restart cuts off at most the four bodies running and the writes in flight: a body whose write
            // was lost with the server runs again, before its output is stored.
            try await Self.checkRuns(db, runs: runs, extra: 4 + 4)
        }
    }
}
