import Conveyor
import ConveyorPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Results the database refuses or that hostile handlers produce, cancel requests through failures, and jobs that
/// wait for their time.
@Suite(.database) struct FailureTests {
    struct Hostile: Error, CustomStringConvertible {
        var description: String
    }

    @Test("handlers that throw errors holding NUL, invalid UTF-8 or 2 MB have their attempt recorded; others flow")
    func hostileErrorTextsAreStored() async throws {
        let db = try TestDatabase.get()
        let texts = [
            0: "nul\u{0}inside\u{0}",
            1: String(decoding: [0x62, 0x61, 0x64, 0xFF, 0xC0, 0x21] as [UInt8], as: UTF8.self),
            2: String(repeating: "x", count: 2 * 1024 * 1024),
        ]
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            if let text = texts[args.value] { throw Hostile(description: text) }
        }
        let jobs = try await db.client.jobs.enqueue(
            contentsOf: (0..<60).map { Echo(value: $0 % 20) },
            options: .init(maxAttempts: 1)
        )
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("every job finished") {
                try await db.scalar(
                    "SELECT count(*) FROM {schema}.jobs WHERE state IN ('completed', 'discarded')"
                ) == jobs.count
            }
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == 51)
        for (index, job) in jobs.enumerated() where texts[index % 20] != nil {
            let record = try #require(try await db.client.jobs.get(job.id))
            #expect(record.state == .discarded)
            let attempt = try #require(record.attempts.first)
            #expect(attempt.errorCode == .handlerError)
            let stored = try #require(attempt.error)
            #expect(!stored.utf8.contains(0))
            #expect(stored.utf8.count <= 4096)
            switch index % 20 {
            case 0: #expect(stored == "nulinside")
            case 1: #expect(stored == "bad\u{FFFD}\u{FFFD}!")
            default: #expect(stored.hasSuffix("… [truncated, 2097152 bytes in all]"))
            }
        }
    }

    @Test("a result the database refuses is isolated: its neighbours are written and it ends RESULT_REJECTED")
    func refusedResultIsIsolated() async throws {
        let db = try TestDatabase.get()
        // The database refuses to complete the job with value 7 (as it refused results holding NUL).
        try await db.beforeCompletion(
            "refuse_completion",
            when: "NEW.args ->> 'value' = '7'",
            run: "RAISE EXCEPTION 'refused by the test'"
        )
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        let first = try await db.client.jobs.enqueue(contentsOf: (0..<100).map { Echo(value: $0) })
        try await db.withWorker(
            registry,
            configure: {
                // Results gather into batches of many, so the refused one has neighbours in its statement.
                $0.completionFlushInterval = .milliseconds(50)
                $0.queues = ["default": .init(slots: 20)]
            }
        ) { _ in
            try await db.waitUntil("every job finished") {
                try await db.scalar(
                    "SELECT count(*) FROM {schema}.jobs WHERE state IN ('completed', 'discarded')"
                ) == first.count
            }
            // The worker goes on with new work.
            let later = try await db.client.jobs.enqueue(contentsOf: (100..<110).map { Echo(value: $0) })
            try await db.waitUntil("later jobs completed") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'")
                    == first.count - 1 + later.count
            }
        }
        let refused = try #require(try await db.client.jobs.get(first[7].id))
        #expect(refused.state == .discarded)
        #expect(refused.deadReason == .resultRejected)
        let attempt = try #require(refused.attempts.last)
        #expect(attempt.errorCode == .resultRejected)
        #expect(attempt.error?.contains("SQLSTATE P0001") == true, "\(attempt.error ?? "")")
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_owner IS NOT NULL") == 0)
    }

    @Test("a worker that cannot write a result for half the lease stops extending it, so the job is taken back")
    func unwritableResultLetsTheLeaseExpire() async throws {
        let db = try TestDatabase.get()
        // Every attempt to complete fails as a serialization failure would: transient, so the worker keeps the
        // result and retries it, while its heartbeats could go on extending the lease for ever.
        try await db.beforeCompletion(
            "refuse_for_now",
            run: "RAISE EXCEPTION 'not now' USING ERRCODE = 'serialization_failure'"
        )
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 5))
        try await db.withWorker(
            registry,
            configure: {
                $0.leaseDuration = .seconds(2)
                $0.heartbeatInterval = .milliseconds(100)
                $0.reaperInterval = .milliseconds(200)
            }
        ) { _ in
            try await db.waitUntil("the lease expired and was taken back", timeout: .seconds(30)) {
                try await db.client.jobs.get(job.id)?.attempts.first?.errorCode == .leaseExpired
            }
            try await db.execute("DROP TRIGGER refuse_for_now ON {schema}.jobs")
            try await db.waitUntil("the job completed once results could be written") {
                try await db.client.jobs.get(job.id)?.state == .completed
            }
        }
    }

    @Test("a job asked to cancel whose attempt then fails ends cancelled, not retryable")
    func cancelRequestOutlivesFailure() async throws {
        let db = try TestDatabase.get()
        let release = Gate()
        var registry = JobRegistry()
        registry.register(Echo.self, retryPolicy: .constant(.zero)) { _, _ in
            await release.wait()
            throw TestFailure("failed after the cancel request")
        }
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        try await db.withWorker(
            registry,
            configure: {
                // No heartbeat comes before the failure, so the worker never sees the request itself.
                $0.leaseDuration = .seconds(7200)
                $0.heartbeatInterval = .seconds(3600)
            }
        ) { _ in
            try await db.waitUntil("the job runs") { try await db.client.jobs.get(job.id)?.state == .running }
            let requested = try await db.client.jobs.cancel(job.id)
            #expect(requested.state == .running)
            release.open()
            try await db.waitUntil("the attempt's result was written") {
                try await db.client.jobs.get(job.id)?.attempts.count == 1
            }
        }
        let record = try #require(try await db.client.jobs.get(job.id))
        #expect(record.state == .cancelled)
        #expect(record.attempts.map(\.outcome) == [.failed])
        #expect(record.finishedAt != nil)
    }

    @Test("a scheduled job and a retry run on time though the poll is an hour away")
    func dueJobsAreStagedOnTime() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        registry.register(Flaky.self, retryPolicy: .constant(.milliseconds(300))) { args, context in
            if context.attempt <= args.failures { throw TestFailure("attempt \(context.attempt) fails") }
        }
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            // Enqueued once the worker runs: only its stager, told by the database when the job is due, or by its own
            // result when the retry is, can make them available before the poll.
            let scheduled = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(delay: .milliseconds(400)))
            let retried = try await db.client.jobs.enqueue(Flaky(failures: 1))
            try await db.waitUntil("both completed", timeout: .seconds(20)) {
                let first = try await db.client.jobs.get(scheduled.id)?.state
                let second = try await db.client.jobs.get(retried.id)?.state
                return first == .completed && second == .completed
            }
            let job = try #require(try await db.client.jobs.get(scheduled.id))
            let started = try #require(job.attempts.first?.startedAt)
            #expect(started.timeIntervalSince(job.createdAt) >= 0.39)
        }
    }

    @Test("queue counts cover waiting, running and dead-lettered jobs, and not the finished ones they never read")
    func queueCountsSkipFinishedJobs() async throws {
        let db = try TestDatabase.get()
        try await db.client.jobs.enqueue(contentsOf: (0..<4).map { Echo(value: $0) }, options: .init(queue: "q"))
        try await db.client.jobs.enqueue(
            contentsOf: (0..<2).map { Echo(value: $0) },
            options: .init(queue: "q", delay: .seconds(3600))
        )
        let leased = try await db.lease(2, queue: "q", as: "probe", for: .seconds(60))
        _ = try await db.store.complete([.succeeded(leased[0])], logger: db.logger)
        let counts = try #require(try await db.client.queues.list().first { $0.name == "q" }).counts
        #expect(counts == [.available: 2, .scheduled: 2, .running: 1])
    }

    @Test("a worker whose schema lost a function it needs stops with SCHEMA_MISMATCH instead of running half alive")
    func fatalErrorEndsTheWorker() async throws {
        let db = try TestDatabase.get()
        try await db.execute("DROP FUNCTION {schema}.stage_due_jobs(integer, text)")
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        var configuration = ConveyorWorker.Configuration()
        configuration.migrateOnStart = false
        configuration.pollInterval = .milliseconds(100)
        let worker = ConveyorWorker(
            client: db.client,
            registry: registry,
            configuration: configuration,
            logger: db.logger
        )
        let error = await #expect(throws: ConveyorError.self) { try await worker.run() }
        #expect(error?.code == .schemaMismatch)
    }

    @Test("an enqueue through a PostgresClient that is not running fails with NO_CONNECTION instead of hanging")
    func enqueueWithoutRunningClientFails() async throws {
        let db = try TestDatabase.get()
        let postgres = PostgresClient(configuration: try TestDatabase.configuration(url: db.url))
        let store = try PostgresJobStore(client: postgres, schema: db.schema, connectionWaitTimeout: .milliseconds(300))
        let client = ConveyorClient(store: store)
        let error = await #expect(throws: ConveyorError.self) {
            try await client.jobs.enqueue(Echo(value: 1))
        }
        #expect(error?.code == .noConnection)
        #expect(error?.isTransient == true)
    }

    @Test("durations no process could hold are refused with INVALID_OPTION, not a trap")
    func hugeDurationsAreRefused() async throws {
        let db = try TestDatabase.get()
        for options in [
            JobOptions(delay: .seconds(Int64.max)), JobOptions(delay: .seconds(-1)),
            JobOptions(timeout: .seconds(Int64.max)), JobOptions(runAt: Date(timeIntervalSince1970: 1e300)),
        ] {
            let error = await #expect(throws: ConveyorError.self) {
                try await db.client.jobs.enqueue(Echo(value: 1), options: options)
            }
            #expect(error?.code == .invalidOption)
        }
        var configuration = ConveyorWorker.Configuration()
        configuration.leaseDuration = .seconds(Int64.max)
        #expect(throws: ConveyorError.self) { try configuration.validate() }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
    }

    @Test("the command line refuses an infinite delay with INVALID_OPTION and stores nothing")
    func commandLineRefusesInfiniteDelay() async throws {
        let db = try TestDatabase.get()
        let process = Process()
        process.executableURL = WorkerProcess.executable
        process.arguments = [
            "enqueue", "demo.work", "--database-url", db.url, "--schema", db.schema, "--delay", "inf",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let exited = Gate()
        process.terminationHandler = { _ in exited.open() }
        try process.run()
        await exited.wait()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 1)
        #expect(text.contains("INVALID_OPTION"), "\(text)")
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
    }
}

/// A one-shot gate: `wait()` returns once `open()` was called, before or after.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = self.state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = self.state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if isOpen { continuation.resume() }
        }
    }
}
