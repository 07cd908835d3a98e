import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

struct Held: JobArguments {
    static let kind = "test.held"
    var value: Int
}

/// Explain, one scenario per state and cause: each builds the state through the same calls the engine makes (a
/// fetch, a result, a cancel, a pause, a worker's presence, a real worker) and checks that the sentence and its
/// facts name the cause.
@Suite(.database) struct ExplainTests {
    func explain(_ db: TestDatabase, _ id: JobID) async throws -> JobExplanation {
        try await db.client.jobs.explain(id)
    }

    /// Leases the job and writes `result` for its attempt, as a worker's completer does.
    func finish(
        _ db: TestDatabase,
        _ result: AttemptResult,
        worker: String = "vm-88",
        queue: String = "default"
    ) async throws {
        let job = try #require(try await db.lease(queue: queue, as: worker, for: .seconds(30)).first)
        let transition = JobTransition.after(
            result,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            retryPolicy: RetryPolicy(base: .seconds(600)),
            unitRandom: 0
        )
        let written = try await db.store.complete(
            [
                JobCompletion(
                    lease: JobLease(id: job.id, token: job.leaseToken),
                    transition: transition,
                    durationMicroseconds: 5
                )
            ],
            logger: db.logger
        )
        #expect(written == [job.id])
    }

    func present(_ db: TestDatabase, queues: [String: Int], kinds: [String], id: String = "vm-1") async throws {
        try await db.store.registerWorker(
            WorkerPresence(id: id, queues: queues, kinds: kinds, workflows: []),
            logger: db.logger
        )
    }

    @Test("a job in a paused queue: paused since when, by whom, and to resume it")
    func pausedQueue() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "mail"))
        try await db.client.queues.pause("mail", by: "token:ops")
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .queuePaused)
        #expect(explanation.sentence.hasPrefix("queue mail is paused since "))
        #expect(explanation.sentence.contains("by token:ops"))
        #expect(explanation.facts["paused_by"] == "token:ops")
        #expect(explanation.facts["paused_at"] != nil)
        #expect(explanation.suggestedAction == "resume queue mail")
    }

    @Test("a job whose queue no live worker serves says so")
    func noWorker() async throws {
        let db = try TestDatabase.get()
        try await self.present(db, queues: ["other": 4], kinds: [Echo.kind])
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "mail"))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .noWorkerForQueue)
        #expect(explanation.sentence == "no live worker serves queue mail; the job waits until one starts")
        #expect(explanation.facts["live_workers"] == "0")
    }

    @Test("a job whose every live worker is in a paused pool names the pools, and is ready once one is not")
    func pausedPool() async throws {
        let db = try TestDatabase.get()
        try await db.store.registerWorker(
            WorkerPresence(id: "vm-2", pool: "night", queues: ["mail": 4], kinds: [Echo.kind], workflows: []),
            logger: db.logger
        )
        try await db.client.pools.pause("night")
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "mail"))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .poolPaused)
        #expect(
            explanation.sentence
                == "every live worker of queue mail is in a paused pool (night); the job waits until one is resumed"
        )
        #expect(explanation.facts["paused_pools"] == "night")
        #expect(explanation.suggestedAction == "resume pool night")
        try await self.present(db, queues: ["mail": 2], kinds: [Echo.kind], id: "vm-3")
        let ready = try await self.explain(db, job.id)
        #expect(ready.reason == .ready)
        #expect(ready.facts["slots"] == "2", "only the slots of workers that fetch count")
    }

    @Test("a job whose every slot is busy: waiting for a free slot, n of n busy, counted from a real worker")
    func waitingForSlot() async throws {
        let db = try TestDatabase.get()
        let running = Gate()
        let release = Gate()
        var registry = JobRegistry()
        registry.register(Held.self) { _, _ in
            running.open()
            await release.wait()
        }
        try await db.withWorker(
            registry,
            configure: {
                $0.queues = ["mail": .init(slots: 1, prefetch: 0)]
                $0.workerID = "vm-7"
            }
        ) { _ in
            let first = try await db.client.jobs.enqueue(Held(value: 1), options: .init(queue: "mail"))
            await running.wait()
            let second = try await db.client.jobs.enqueue(Held(value: 2), options: .init(queue: "mail"))
            let explanation = try await self.explain(db, second.id)
            #expect(explanation.reason == .waitingForSlot)
            #expect(explanation.sentence == "waiting for a free slot in queue mail (1 of 1 busy, next in line)")
            #expect(explanation.facts["slots"] == "1")
            #expect(explanation.facts["busy"] == "1")
            let running = try await self.explain(db, first.id)
            #expect(running.reason == .running)
            #expect(running.sentence.hasPrefix("running attempt 1 of "))
            #expect(running.sentence.contains("on worker vm-7"))
            release.open()
        }
    }

    @Test("a job no live worker of its queue can run: the worker that fetches it dead-letters it UNKNOWN_KIND")
    func kindNotRegistered() async throws {
        let db = try TestDatabase.get()
        try await self.present(db, queues: ["default": 5], kinds: ["test.other"])
        let job = try await db.client.jobs.enqueue(kind: "send-invoice", argumentsJSON: "{}")
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .kindNotRegistered)
        #expect(explanation.sentence.contains("registers kind send-invoice"))
        #expect(explanation.sentence.contains("UNKNOWN_KIND"))
    }

    @Test("a runnable job with free slots: ready, with how many are ahead of it")
    func ready() async throws {
        let db = try TestDatabase.get()
        try await self.present(db, queues: ["default": 5], kinds: [Echo.kind])
        _ = try await db.client.jobs.enqueue(contentsOf: [Echo(value: 1), Echo(value: 2)])
        let job = try await db.client.jobs.enqueue(Echo(value: 3))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .ready)
        #expect(
            explanation.sentence == "ready: the next fetch of queue default takes it (0 of 5 slots busy, 2 ahead of it)"
        )
        #expect(explanation.facts["ahead"] == "2")
    }

    @Test("a scheduled job: scheduled for when, and how long from now")
    func scheduled() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(delay: .seconds(630)))
        let record = try #require(try await db.client.jobs.get(job.id))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .scheduled)
        #expect(explanation.sentence.hasPrefix("scheduled for "))
        #expect(explanation.sentence.hasSuffix("(in 10 min)"))
        #expect(explanation.nextAt == record.runAt)
        #expect(explanation.facts["run_at"] == ExplainTime.iso(record.runAt))
    }

    @Test("a failed attempt: which attempt failed with what, and when the retry runs")
    func retryScheduled() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 5))
        try await self.finish(db, .failed(message: "smtp said 421"))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .retryScheduled)
        #expect(
            explanation.sentence.hasPrefix("attempt 1 of 5 failed (HANDLER_ERROR: smtp said 421); retry 2 of 5 at ")
        )
        #expect(explanation.facts["last_error"] == "smtp said 421")
        #expect(explanation.nextAt != nil)
    }

    @Test("a lease that was lost: when, which worker stopped heartbeating, and the retry")
    func leaseLost() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 25))
        try await self.finish(db, .leaseExpired, worker: "vm-88")
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .leaseLostRetry)
        #expect(explanation.sentence.hasPrefix("lease lost at "))
        #expect(explanation.sentence.contains("(worker vm-88 stopped heartbeating); retry 2 of 25 at "))
        #expect(explanation.facts["worker"] == "vm-88")
        #expect(explanation.facts["lease_lost_at"] != nil)
    }

    @Test("a running job whose lease expired before the reaper came: it is taken back and retried")
    func leaseExpired() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 3))
        _ = try await db.lease(as: "vm-9", for: .milliseconds(1))
        try await db.waitUntil("the lease expired") {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_expires_at < now()") == 1
        }
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .leaseExpired)
        #expect(explanation.sentence.contains("(worker vm-9 stopped heartbeating)"))
        #expect(explanation.sentence.hasSuffix("retries it (attempt 2 of 3)"))
    }

    @Test("a running job with a cancel request: who asked, and that the worker stops it at its next heartbeat")
    func cancelRequested() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        _ = try await db.lease(as: "vm-3", for: .seconds(30))
        try await db.client.jobs.cancel(job.id, by: "token:ops")
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .cancelRequested)
        #expect(explanation.sentence.contains("by token:ops; worker vm-3 stops the handler at its next heartbeat"))
        #expect(explanation.facts["performed_by"] == "token:ops")
    }

    @Test("a snoozed job: until when")
    func snoozed() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        try await self.finish(db, .snoozed(.seconds(3600)))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .snoozed)
        #expect(explanation.sentence.hasPrefix("snoozed by its handler until "))
        #expect(explanation.sentence.hasSuffix("(in 59 min)"))
    }

    @Test("a completed job: when, after how many attempts")
    func completed() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        try await self.finish(db, .succeeded)
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .completed)
        #expect(explanation.sentence.hasPrefix("completed at "))
        #expect(explanation.sentence.hasSuffix("after 1 attempt(s)"))
    }

    @Test("a job cancelled by an operator names the operator")
    func cancelled() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        try await db.client.jobs.cancel(job.id, by: "token:ops")
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .cancelled)
        #expect(explanation.sentence.hasSuffix("by token:ops"))
    }

    @Test("a job dead-lettered after its last attempt: the reason, the last error, and to fix then retry")
    func maxAttemptsExceeded() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 1))
        try await self.finish(db, .failed(message: "boom"))
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .deadLettered)
        #expect(explanation.sentence == "dead-lettered: MAX_ATTEMPTS_EXCEEDED after 1 of 1 attempts; last error: boom")
        #expect(explanation.suggestedAction == "fix the handler, then retry")
        #expect(explanation.facts["dead_reason"] == "MAX_ATTEMPTS_EXCEEDED")
    }

    @Test("a job no worker had a handler for: dead-lettered UNKNOWN_KIND by a real worker, named by kind")
    func unknownKind() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        let job = try await db.client.jobs.enqueue(kind: "send-invoice", argumentsJSON: "{}")
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the job is dead-lettered") {
                try await db.client.jobs.get(job.id)?.state == .discarded
            }
        }
        let explanation = try await self.explain(db, job.id)
        #expect(explanation.reason == .unknownKind)
        #expect(
            explanation.sentence.hasPrefix("no worker registered kind send-invoice: dead-lettered with UNKNOWN_KIND")
        )
        #expect(explanation.suggestedAction == "deploy a worker that registers send-invoice, then retry")
    }

    @Test("workflow runs: sleeping until, waiting for a signal, waiting for a child, and a version no worker has")
    func workflowWaits() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: Sleeper())
        registry.register(workflow: WaitsForever())
        registry.register(workflow: ParentOfWaiter())
        registry.register(workflow: VersionOne())
        try await db.withWorker(registry) { _ in
            _ = try await db.client.workflows.start(Sleeper.self, input: 3_600_000, options: .init(id: "sleepy"))
            _ = try await db.client.workflows.start(WaitsForever.self, input: 1, options: .init(id: "waiter"))
            _ = try await db.client.workflows.start(ParentOfWaiter.self, input: 1, options: .init(id: "parent"))
            _ = try await db.client.workflows.start(
                name: VersionOne.name,
                inputJSON: "1",
                options: .init(id: "future", version: 7)
            )
            for id: WorkflowRunID in ["sleepy", "waiter", "parent", "future"] {
                try await db.waitUntil("run \(id.rawValue) waits") {
                    try await db.client.workflows.get(id)?.status == .waiting
                }
            }
            let sleepy = try await db.client.workflows.explain("sleepy")
            #expect(sleepy.reason == .workflowSleeping)
            #expect(sleepy.sentence.hasPrefix("run sleepy is sleeping until "))
            #expect(sleepy.sentence.hasSuffix("(in 59 min) (step nap)"))
            let waiter = try await db.client.workflows.explain("waiter")
            #expect(waiter.reason == .workflowWaitingForSignal)
            #expect(waiter.sentence == "run waiter is waiting for signal go")
            #expect(waiter.facts["signal"] == "go")
            let parent = try await db.client.workflows.explain("parent")
            #expect(parent.reason == .workflowWaitingForChild)
            #expect(parent.sentence == "run parent is waiting for child parent-child")
            let future = try await db.client.workflows.explain("future")
            #expect(future.reason == .workflowWaitingForVersion)
            #expect(
                future.sentence
                    == "run future waits for a worker with version 7 of workflow test.versioned "
                    + "(live workers have test.versioned@1)"
            )
        }
    }

    @Test("a failed workflow run: the code, and to fork from the failing step")
    func workflowFailed() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: DuplicateName())
        let started = try await db.client.workflows.start(DuplicateName.self, input: 1, options: .init(id: "dup"))
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("the run failed") { try await db.client.workflows.get("dup")?.status == .failed }
        }
        let explanation = try await db.client.jobs.explain(started.jobID)
        #expect(explanation.reason == .workflowFailed)
        #expect(explanation.sentence.contains("failed at "))
        #expect(explanation.sentence.contains("with DUPLICATE_STEP"))
        #expect(explanation.facts["error_code"] == "DUPLICATE_STEP")
    }

    @Test("explaining a job that does not exist is JOB_NOT_FOUND")
    func missingJob() async throws {
        let db = try TestDatabase.get()
        await expectCode(.jobNotFound) { _ = try await db.client.jobs.explain(JobID(424_242)) }
        await expectCode(.workflowNotFound) { _ = try await db.client.workflows.explain("nope") }
    }
}
