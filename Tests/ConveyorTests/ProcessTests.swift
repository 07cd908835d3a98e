import Conveyor
import Foundation
import PostgresNIO
import Testing

/// Invariants that need real processes: several workers on one queue, and a worker killed with SIGKILL.
@Suite(.database) struct ProcessTests {
    struct Record: JobArguments {
        static let kind = "demo.record"
        var file: String
        var milliseconds: Int
    }

    struct Crash: JobArguments {
        static let kind = "demo.crash"
    }

    static func recordFile() -> String {
        NSTemporaryDirectory() + "conveyor-record-\(UUID().uuidString).txt"
    }

    @Test("three worker processes on one queue never run one job at the same time")
    func leasesAreExclusiveAcrossProcesses() async throws {
        let db = try TestDatabase.get()
        let file = Self.recordFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Most jobs are short; a few outlive the lease and must be kept by heartbeats, not taken over.
        var requests = (0..<600).map { _ in JobRequest(Record(file: file, milliseconds: 2), options: .init(queue: "q"))
        }
        requests += (0..<6).map { _ in JobRequest(Record(file: file, milliseconds: 2500), options: .init(queue: "q")) }
        let workers = try (0..<3).map { _ in
            try WorkerProcess(
                database: db,
                arguments: [
                    "--queue", "q:10", "--lease", "1.5", "--heartbeat", "0.3", "--poll", "0.2", "--reaper", "0.3",
                ]
            )
        }
        // All three wait for work before it arrives, so that they share it: enqueued first, the jobs could all go
        // to the process that started first (600 of them take it about 0.2 s).
        try await db.waitUntil("the three workers are listening") { try await db.listeners() == 3 }
        let jobs = try await db.client.jobs.enqueue(requests)
        try await db.waitUntil("every job completed", timeout: .seconds(120)) {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == jobs.count
        }
        for worker in workers { #expect(await worker.terminate() == 0, "\(worker.output)") }

        let runs = try RecordedRun.read(file)
        let byJob = Dictionary(grouping: runs, by: \.job)
        #expect(Set(byJob.keys) == Set(jobs.map(\.id.rawValue)))
        for (job, runs) in byJob {
            let ordered = runs.sorted { $0.start < $1.start }
            for (first, second) in zip(ordered, ordered.dropFirst()) {
                #expect(first.end <= second.start, "job \(job) ran twice at once: \(first) and \(second)")
            }
        }
        // No lease expired, so no job ran twice at all.
        #expect(runs.count == jobs.count)
        #expect(Set(runs.map(\.pid)).count > 1)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_owner IS NOT NULL") == 0)
    }

    @Test("a worker killed mid-run loses no job: a second worker finishes them and records LEASE_EXPIRED")
    func killedWorkerLosesNothing() async throws {
        let db = try TestDatabase.get()
        let file = Self.recordFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        let total = 3000
        // Every 50th job runs for 1.5 s, so some attempt is always in flight when the kill comes.
        try await db.client.jobs.enqueue(
            contentsOf: (0..<total).map { index in Record(file: file, milliseconds: index % 50 == 0 ? 1500 : 5) },
            options: .init(queue: "q", maxAttempts: 5)
        )
        let arguments = ["--queue", "q:10", "--lease", "1", "--heartbeat", "0.2", "--poll", "0.2", "--reaper", "0.3"]
        let first = try WorkerProcess(database: db, arguments: arguments)
        try await db.waitUntil("the first worker is in the middle of the run", timeout: .seconds(60)) {
            let completed = try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'")
            let running = try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'")
            return completed >= 300 && running >= 3
        }
        await first.kill()
        // Nobody else works the queue yet, so these are exactly the attempts the kill interrupted.
        var interrupted: [Int64] = []
        for try await id in try await db.execute("SELECT id FROM {schema}.jobs WHERE state = 'running'").decode(
            Int64.self
        ) {
            interrupted.append(id)
        }
        #expect(!interrupted.isEmpty)

        let second = try WorkerProcess(database: db, arguments: arguments)
        try await db.waitUntil("every job finished", timeout: .seconds(120)) {
            try await db.scalar(
                "SELECT count(*) FROM {schema}.jobs WHERE state IN ('completed', 'discarded')"
            ) == total
        }
        #expect(await second.terminate() == 0, "\(second.output)")
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == total)
        for id in interrupted {
            let job = try #require(try await db.client.jobs.get(JobID(id)))
            #expect(job.state == .completed)
            #expect(job.attempts.first?.errorCode == .leaseExpired, "job \(id): \(job.attempts)")
            #expect(job.attempts.last?.outcome == .completed)
        }
        // Every job's handler ran at least once: at-least-once, nothing lost.
        let ran = Set(try RecordedRun.read(file).map(\.job))
        #expect(ran.count == total)
    }

    @Test("a job that kills its worker every time ends in the dead-letter queue after max attempts")
    func crashingJobIsDeadLettered() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Crash(), options: .init(queue: "q", maxAttempts: 2))
        let arguments = [
            "--queue", "q:1", "--lease", "0.6", "--heartbeat", "0.2", "--poll", "0.1", "--reaper", "0.2",
            "--retry-delay", "0.05",
        ]
        var crashes = 0
        try await db.waitUntil("the crashing job was dead-lettered", timeout: .seconds(90)) {
            if try await db.client.jobs.get(job.id)?.state == .discarded { return true }
            let worker = try WorkerProcess(database: db, arguments: arguments)
            // The worker either crashes on the job or, once it is dead-lettered, keeps running: stop it then.
            try await db.waitUntil("the worker crashed or the job was dead-lettered", timeout: .seconds(30)) {
                if !worker.isRunning { return true }
                return try await db.client.jobs.get(job.id)?.state == .discarded
            }
            if worker.isRunning {
                await worker.terminate()
            } else {
                crashes += 1
            }
            return try await db.client.jobs.get(job.id)?.state == .discarded
        }
        let dead = try #require(try await db.client.jobs.get(job.id))
        #expect(dead.deadReason == .maxAttemptsExceeded)
        #expect(dead.attempts.map(\.errorCode) == [.leaseExpired, .leaseExpired])
        #expect(crashes == 2)
    }
}
