import Conveyor
import Foundation
import Testing

/// `conveyor workflows …` and the demo's workflow, as a user runs them: real processes on the test database.
@Suite(.database) struct WorkflowCommandTests {
    struct Ran {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs `conveyor` with `arguments` (and the test database's URL and schema) to its end.
    ///
    /// Its output goes to files, read once it exited: reading a pipe while it runs would block one of the few
    /// threads that every test's tasks share (and starve other tests' heartbeats) for as long as it runs.
    static func conveyor(_ db: TestDatabase, _ arguments: [String]) async throws -> Ran {
        let base = NSTemporaryDirectory() + "conveyor-cli-\(UUID().uuidString)"
        let (outPath, errPath) = (base + ".out", base + ".err")
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let process = Process()
        process.executableURL = WorkerProcess.executable
        process.arguments = arguments + ["--database-url", db.url, "--schema", db.schema]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        let exited = Gate()
        process.terminationHandler = { _ in exited.open() }
        try process.run()
        await exited.wait()
        return Ran(
            status: process.terminationStatus,
            output: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            errors: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }

    @Test("the command line starts, lists, shows, forks and signals runs, with stable codes on refusal")
    func workflowCommands() async throws {
        let db = try TestDatabase.get()
        let started = try await Self.conveyor(
            db,
            ["workflows", "start", "demo.ship", "7", "--id", "cli-1", "--queue", "q"]
        )
        #expect(started.status == 0, "\(started.errors)")
        #expect(started.output.contains("started run cli-1"))
        let again = try await Self.conveyor(
            db,
            ["workflows", "start", "demo.ship", "7", "--id", "cli-1", "--queue", "q"]
        )
        #expect(again.output.contains("already exists"))
        let worker = try WorkerProcess(database: db, arguments: ["--queue", "q:2", "--poll", "0.2"])
        try await db.waitUntil("the run completed") {
            try await db.client.workflows.get("cli-1")?.status == .completed
        }
        let shown = try await Self.conveyor(db, ["workflows", "show", "cli-1"])
        #expect(shown.output.contains("status:       completed"), "\(shown.output)")
        #expect(shown.output.contains("book-courier [step] completed"), "\(shown.output)")
        #expect(shown.output.contains("\"parcel-7\""), "\(shown.output)")
        let listed = try await Self.conveyor(db, ["workflows", "list", "--status", "completed"])
        #expect(listed.output.contains("cli-1"), "\(listed.output)")
        let forked = try await Self.conveyor(
            db,
            ["workflows", "fork", "cli-1", "--from-step", "book-courier", "--new-id", "cli-2"]
        )
        #expect(forked.status == 0, "\(forked.errors)")
        try await db.waitUntil("the fork completed") {
            try await db.client.workflows.get("cli-2")?.status == .completed
        }
        #expect(try await db.client.workflows.get("cli-2")?.forkedFrom == "cli-1")
        let refused = try await Self.conveyor(db, ["workflows", "signal", "cli-1", "approved", "\"x\""])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("INVALID_WORKFLOW_STATE"), "\(refused.errors)")
        let missing = try await Self.conveyor(db, ["workflows", "show", "nobody"])
        #expect(missing.status == 1)
        #expect(missing.errors.contains("WORKFLOW_NOT_FOUND"), "\(missing.errors)")
        let cancelled = try await Self.conveyor(db, ["workflows", "cancel", "cli-1"])
        #expect(cancelled.output.contains("had ended (completed)"), "\(cancelled.output)")
        #expect(await worker.terminate() == 0, "\(worker.output)")
    }

    @Test("the demo runs its jobs and a workflow that sleeps, waits for a signal, fans out and starts a child")
    func demoRunsWorkflow() async throws {
        let db = try TestDatabase.get()
        let demo = try await Self.conveyor(db, ["demo", "--jobs", "50"])
        #expect(demo.status == 0, "\(demo.errors)")
        #expect(demo.output.contains("sent signal approved"), "\(demo.output)")
        #expect(demo.output.contains("status:       completed"), "\(demo.output)")
        for step in ["reserve-stock", "cool-off", "approved", "print-label", "email-customer"] {
            #expect(demo.output.contains(" \(step) ["), "\(step) missing in \(demo.output)")
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.workflow_runs WHERE status = 'completed'") == 2)
    }
}
