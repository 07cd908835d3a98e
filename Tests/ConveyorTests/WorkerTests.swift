import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

@Suite(.database) struct WorkerTests {
    @Test("a worker runs every job once and completes it with an attempt record")
    func workerCompletesJobs() async throws {
        let db = try TestDatabase.get()
        let recorder = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in recorder.append(args.value) }
        let jobs = try await db.client.jobs.enqueue(contentsOf: (0..<200).map { Echo(value: $0) })
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("all jobs completed") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == 200
            }
        }
        #expect(recorder.all.sorted() == Array(0..<200))
        let job = try #require(try await db.client.jobs.get(jobs[17].id))
        #expect(job.state == .completed)
        #expect(job.finishedAt != nil)
        #expect(job.leaseOwner == nil)
        #expect(job.attempts.count == 1)
        #expect(job.attempts.first?.outcome == .completed)
        #expect(job.attempts.first?.attempt == 1)
        #expect(job.attempts.first.map { $0.finishedAt >= $0.startedAt } == true)
        // Stored as migration 3 writes attempt records: a positional array.
        let layout = try await db.scalar(
            "SELECT count(*) FROM {schema}.jobs WHERE jsonb_typeof(attempts -> 0) = 'array'"
        )
        #expect(layout == 200)
    }

    @Test("a worker whose results cannot be written stops fetching two completion batches ahead of its writes")
    func unwrittenResultsHoldBackFetching() async throws {
        let db = try TestDatabase.get()
        // Completions wait for an advisory lock that this test holds: handlers finish, their results cannot be
        // written, and fetches (which do not take the lock) would go on leasing every job without backpressure.
        try await db.beforeCompletion(
            "hold_completions",
            run: "PERFORM pg_advisory_xact_lock_shared(hashtext(TG_TABLE_SCHEMA))"
        )
        let recorder = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in recorder.append(args.value) }
        try await db.client.jobs.enqueue(contentsOf: (0..<200).map { Echo(value: $0) })
        var binds = PostgresBindings()
        binds.append(db.schema)
        try await db.postgres.withConnection { connection in
            let lock = PostgresQuery(unsafeSQL: "SELECT pg_advisory_lock(hashtext($1))", binds: binds)
            _ = try await connection.query(lock, logger: db.logger).collect()
            try await db.withWorker(
                registry,
                configure: {
                    $0.queues = ["default": .init(slots: 2, prefetch: 4)]
                    $0.completionBatchSize = 5
                    $0.pollInterval = .milliseconds(50)
                }
            ) { _ in
                // At most 2 slots + 4 prefetched + 2 batches of 5 unwritten results are held.
                try await db.waitUntil("the worker ran as far ahead as it may") { recorder.all.count >= 10 }
                // A window for fetches that should not happen: twenty poll ticks and the lanes' own wake-ups.
                try await Task.sleep(for: .seconds(1))
                #expect(recorder.all.count <= 16)
                #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") <= 16)
                let unlock = PostgresQuery(unsafeSQL: "SELECT pg_advisory_unlock(hashtext($1))", binds: binds)
                _ = try await connection.query(unlock, logger: db.logger).collect()
                try await db.waitUntil("every job completed once written") {
                    try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == 200
                }
            }
        }
        #expect(recorder.all.sorted() == Array(0..<200))
    }

    @Test("a handler sees the job's tags, namespace and attempt in its context")
    func contextCarriesTheJob() async throws {
        let db = try TestDatabase.get()
        let seen = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, context in
            if context.tags == ["billing", "eu-west"], context.namespace == "acme", context.attempt == 1,
                context.queue == "default", context.kind == Echo.kind
            {
                seen.append(args.value)
            }
        }
        _ = try await db.client.jobs.enqueue(
            Echo(value: 7),
            options: .init(tags: ["billing", "eu-west"], namespace: "acme")
        )
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the job completed") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == 1
            }
        }
        #expect(seen.all == [7])
    }

    @Test("a throwing job retries with backoff and then completes")
    func failingJobRetriesThenCompletes() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Flaky.self, retryPolicy: .constant(.milliseconds(50))) { args, context in
            if context.attempt <= args.failures { throw TestFailure("attempt \(context.attempt) fails") }
        }
        let enqueued = try await db.client.jobs.enqueue(Flaky(failures: 2))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the job completed") {
                try await db.client.jobs.get(enqueued.id)?.state == .completed
            }
        }
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.attempt == 3)
        #expect(job.attempts.map(\.outcome) == [.failed, .failed, .completed])
        #expect(job.attempts.map(\.errorCode) == [.handlerError, .handlerError, nil])
        #expect(job.attempts[0].error == "attempt 1 fails")
        #expect(job.lastError == "attempt 2 fails")
        // Backoff: each retry started no sooner than the policy's delay after the previous attempt finished.
        for (previous, next) in zip(job.attempts, job.attempts.dropFirst()) {
            #expect(next.startedAt.timeIntervalSince(previous.finishedAt) >= 0.045)
        }
    }

    @Test("a job that always fails ends in the dead-letter queue with MAX_ATTEMPTS_EXCEEDED")
    func exhaustedJobIsDeadLettered() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Flaky.self, retryPolicy: .constant(.milliseconds(10))) { _, _ in
            throw TestFailure("always")
        }
        let enqueued = try await db.client.jobs.enqueue(Flaky(failures: 99), options: .init(maxAttempts: 3))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the job was dead-lettered") {
                try await db.client.jobs.get(enqueued.id)?.state == .discarded
            }
        }
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.deadReason == .maxAttemptsExceeded)
        #expect(job.attempts.count == 3)
        let dead = try await db.client.jobs.deadLettered()
        #expect(dead.jobs.map(\.id) == [enqueued.id])
    }

    @Test("non-retryable errors, discards, cancels and unknown kinds end the job at once with their reason")
    func immediateOutcomes() async throws {
        let db = try TestDatabase.get()
        struct Refused: NonRetryableError {}
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            switch args.value {
            case 1: throw Refused()
            case 2: throw JobControl.discard(reason: "spam")
            case 3: throw JobControl.cancel(reason: "no longer needed")
            default: break
            }
        }
        let refused = try await db.client.jobs.enqueue(Echo(value: 1))
        let discarded = try await db.client.jobs.enqueue(Echo(value: 2))
        let cancelled = try await db.client.jobs.enqueue(Echo(value: 3))
        let unknown = try await db.client.jobs.enqueue(kind: "test.nobody-handles-this", argumentsJSON: "{}")
        let malformed = try await db.client.jobs.enqueue(kind: Echo.kind, argumentsJSON: #"{"value": "seven"}"#)
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("every job finished") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE finished_at IS NOT NULL") == 5
            }
        }
        let expectations: [(EnqueuedJob, JobState, DeadLetterReason?)] = [
            (refused, .discarded, .nonRetryable),
            (discarded, .discarded, .discarded),
            (cancelled, .cancelled, nil),
            (unknown, .discarded, .unknownKind),
            (malformed, .discarded, .malformedArguments),
        ]
        for (enqueued, state, reason) in expectations {
            let job = try #require(try await db.client.jobs.get(enqueued.id))
            #expect(job.state == state)
            #expect(job.deadReason == reason)
            #expect(job.attempts.count == 1)
        }
    }

    @Test("a snoozed job runs again later without using up an attempt")
    func snoozeRunsAgainLater() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, context in
            if context.attempt == 1,
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE attempts = '[]'") == 1
            {
                throw JobControl.snooze(.milliseconds(300))
            }
        }
        let enqueued = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 1))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the snoozed job completed") {
                try await db.client.jobs.get(enqueued.id)?.state == .completed
            }
        }
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.attempts.map(\.outcome) == [.snoozed, .completed])
        #expect(job.attempt == 1)
        let gap = job.attempts[1].startedAt.timeIntervalSince(job.attempts[0].finishedAt)
        #expect(gap >= 0.29)
    }

    @Test("an attempt past its timeout is cancelled and retried, then dead-lettered with TIMEOUT when not retried")
    func timeouts() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self, timeout: .milliseconds(200), retryPolicy: .constant(.milliseconds(10))) {
            args,
            _ in
            if args.value == 0 { try await Task.sleep(for: .seconds(60)) }
        }
        registry.register(Flaky.self, timeout: .milliseconds(200), retryOnTimeout: false) { _, _ in
            try await Task.sleep(for: .seconds(60))
        }
        let slow = try await db.client.jobs.enqueue(Echo(value: 0), options: .init(maxAttempts: 2))
        let final = try await db.client.jobs.enqueue(Flaky(failures: 0))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("both jobs were dead-lettered") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'discarded'") == 2
            }
        }
        let retried = try #require(try await db.client.jobs.get(slow.id))
        #expect(retried.deadReason == .maxAttemptsExceeded)
        #expect(retried.attempts.map(\.errorCode) == [.timeout, .timeout])
        let notRetried = try #require(try await db.client.jobs.get(final.id))
        #expect(notRetried.deadReason == .timeout)
        #expect(notRetried.attempts.count == 1)
    }

    @Test("a slot whose handler timed out goes on to run the jobs fetched behind it")
    func timedOutSlotRunsBufferedJobs() async throws {
        let db = try TestDatabase.get()
        let ran = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self, timeout: .milliseconds(200)) { args, _ in
            if args.value == 0 { try await Task.sleep(for: .seconds(60)) }
            ran.append(args.value)
        }
        // One batch: the same run_at, so the slow job is fetched first and the others wait in the buffer behind it.
        let jobs = try await db.client.jobs.enqueue(
            contentsOf: (0..<5).map { Echo(value: $0) },
            options: .init(maxAttempts: 1)
        )
        try await db.withWorker(
            registry,
            configure: { $0.queues = ["default": .init(slots: 1, prefetch: 4)] }
        ) { _ in
            try await db.waitUntil("every job ended") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state IN ('completed', 'discarded')")
                    == 5
            }
        }
        #expect(ran.all.sorted() == [1, 2, 3, 4])
        let slow = try #require(try await db.client.jobs.get(jobs[0].id))
        #expect(slow.deadReason == .maxAttemptsExceeded)
        #expect(slow.attempts.map(\.errorCode) == [.timeout])
        for job in jobs.dropFirst() {
            #expect(try await db.client.jobs.get(job.id)?.state == .completed)
        }
    }

    @Test("cancelling a waiting job stops it from running; cancelling a running job stops its handler")
    func cancellation() async throws {
        let db = try TestDatabase.get()
        let started = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            started.append(args.value)
            try await Task.sleep(for: .seconds(60))
        }
        let waiting = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(delay: .seconds(3600)))
        let cancelledWaiting = try await db.client.jobs.cancel(waiting.id)
        #expect(cancelledWaiting.state == .cancelled)

        let running = try await db.client.jobs.enqueue(Echo(value: 2))
        try await db.withWorker(registry, configure: { $0.heartbeatInterval = .milliseconds(100) }) { _ in
            try await db.waitUntil("the job is running") { started.all == [2] }
            let requested = try await db.client.jobs.cancel(running.id)
            #expect(requested.state == .running)
            #expect(requested.cancelRequestedAt != nil)
            try await db.waitUntil("the running job was cancelled") {
                try await db.client.jobs.get(running.id)?.state == .cancelled
            }
        }
        let job = try #require(try await db.client.jobs.get(running.id))
        #expect(job.attempts.map(\.outcome) == [.cancelled])
        #expect(job.attempts.first?.errorCode == .cancelled)
        await #expect(throws: ConveyorError.self) { try await db.client.jobs.cancel(JobID(999_999)) }
    }

    @Test("retrying a dead-lettered job runs it again; replaying creates a new job that points at the original")
    func retryAndReplay() async throws {
        let db = try TestDatabase.get()
        let runs = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            runs.append(args.value)
            if runs.all.count == 1 { throw NonRetryable(TestFailure("first run")) }
        }
        let original = try await db.client.jobs.enqueue(Echo(value: 5), options: .init(maxAttempts: 1))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the job was dead-lettered") {
                try await db.client.jobs.get(original.id)?.state == .discarded
            }
            let retried = try await db.client.jobs.retry(original.id)
            #expect(retried.state == .available)
            #expect(retried.maxAttempts == 2)
            try await db.waitUntil("the retried job completed") {
                try await db.client.jobs.get(original.id)?.state == .completed
            }
            let replay = try await db.client.jobs.replay(original.id)
            #expect(replay.id != original.id)
            try await db.waitUntil("the replay completed") {
                try await db.client.jobs.get(replay.id)?.state == .completed
            }
            let copy = try #require(try await db.client.jobs.get(replay.id))
            #expect(copy.replayOf == original.id)
            #expect(copy.argumentsJSON == (try await db.client.jobs.get(original.id))?.argumentsJSON)
        }
        #expect(runs.all == [5, 5, 5])
        let history = try #require(try await db.client.jobs.get(original.id))
        #expect(history.attempts.map(\.outcome) == [.failed, .completed])
        let retryCompleted = await #expect(throws: ConveyorError.self) { try await db.client.jobs.retry(original.id) }
        #expect(retryCompleted?.code == .invalidJobState)
        let waiting = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(delay: .seconds(60)))
        let replayWaiting = await #expect(throws: ConveyorError.self) { try await db.client.jobs.replay(waiting.id) }
        #expect(replayWaiting?.code == .invalidJobState)
    }

    @Test("a paused queue is not fetched from until it is resumed")
    func pauseAndResume() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        try await db.client.queues.pause("default")
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        let other = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(queue: "other"))
        // The fetch itself refuses a paused queue, whoever asks.
        let fetched = try await db.lease(10, as: "probe", for: .seconds(30))
        #expect(fetched.isEmpty)
        try await db.withWorker(
            registry,
            configure: { $0.queues = ["default": .init(slots: 2), "other": .init(slots: 2)] }
        ) {
            _ in
            try await db.waitUntil("the job of the running queue completed") {
                try await db.client.jobs.get(other.id)?.state == .completed
            }
            #expect(try await db.client.jobs.get(job.id)?.state == .available)
            let queues = try await db.client.queues.list()
            #expect(queues.first { $0.name == "default" }?.isPaused == true)
            try await db.client.queues.resume("default")
            try await db.waitUntil("the job completed after resume") {
                try await db.client.jobs.get(job.id)?.state == .completed
            }
        }
    }
}
