import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Testing

@Suite(.database) struct LeaseTests {
    /// Fetches as a worker that then goes silent, with a lease that expires almost at once.
    func fetchAsDeadWorker(_ db: TestDatabase, queue: String = "default") async throws -> FetchedJob {
        try #require(try await db.lease(queue: queue, as: "dead-worker", for: .milliseconds(1)).first)
    }

    @Test("a worker whose lease was taken over cannot overwrite the new owner's result")
    func staleWorkerIsFenced() async throws {
        let db = try TestDatabase.get()
        let enqueued = try await db.client.jobs.enqueue(Echo(value: 1))
        let stale = try await self.fetchAsDeadWorker(db)
        try await db.waitUntil("the first lease expired") {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_expires_at < now()") == 1
        }
        // The reaper takes the lease back.
        let (expired, reaped) = try await db.reapExpiredLeases()
        #expect(expired.map(\.lease) == [JobLease(id: enqueued.id, token: stale.leaseToken)])
        #expect(reaped == [enqueued.id])
        // Retryable at once: staging makes it available to fetch again.
        #expect(try await db.store.stageDueJobs(limit: 10, logger: db.logger).staged == 1)
        let current = try #require(try await db.lease(as: "new-owner", for: .seconds(30)).first)
        #expect(current.attempt == 2)
        #expect(current.leaseToken != stale.leaseToken)

        // The stale worker wakes up and tries to complete, and to dead-letter, with its old token.
        for result in [AttemptResult.succeeded, .failedNonRetryable(message: "stale")] {
            let written = try await db.store.complete(
                [
                    JobCompletion(
                        lease: JobLease(id: stale.id, token: stale.leaseToken),
                        transition: .after(result, attempt: 1, maxAttempts: 20, retryPolicy: .default, unitRandom: 0.5),
                        durationMicroseconds: 10
                    )
                ],
                logger: db.logger
            )
            #expect(written.isEmpty)
        }
        // Its heartbeat reports the lease as lost and extends nothing.
        let beat = try await db.store.heartbeat(
            [JobLease(id: stale.id, token: stale.leaseToken)],
            workerID: "dead-worker",
            leaseDuration: .seconds(60),
            logger: db.logger
        )
        #expect(beat.lost == [stale.id])
        var job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.state == .running)
        #expect(job.leaseOwner == "new-owner")
        #expect(job.attempts.count == 1)

        let written = try await db.store.complete([.succeeded(current)], logger: db.logger)
        #expect(written == [enqueued.id])
        job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.state == .completed)
        #expect(job.attempts.map(\.outcome) == [.failed, .completed])
        #expect(job.attempts.map(\.errorCode) == [.leaseExpired, nil])
        #expect(job.attempts.map(\.worker) == ["dead-worker", "new-owner"])
    }

    @Test("a heartbeat skips a leased row that another transaction has locked instead of waiting for it")
    func heartbeatSkipsLockedRows() async throws {
        let db = try TestDatabase.get()
        try await db.client.jobs.enqueue(contentsOf: [Echo(value: 1), Echo(value: 2)])
        let leased = try await db.lease(2, as: "w", for: .seconds(30))
        try #require(leased.count == 2)
        let (locked, free) = (leased[0], leased[1])
        let leases = leased.map { JobLease(id: $0.id, token: $0.leaseToken) }
        let expiry = "SELECT (extract(epoch FROM lease_expires_at) * 1000000)::bigint FROM {schema}.jobs WHERE id = $1"
        func expiresAt(_ job: FetchedJob) async throws -> Int {
            var binds = PostgresBindings()
            binds.append(job.id.rawValue)
            return try await db.scalar(expiry, binds)
        }
        let before = (locked: try await expiresAt(locked), free: try await expiresAt(free))
        // Another transaction holds the first row, as a completion being written does. Waiting for it let a
        // heartbeat and a completion batch deadlock; the heartbeat must return while the lock is held. (If it
        // waits, the lock is let go after 10 s so that the test fails instead of hanging.)
        try await db.postgres.withConnection { connection in
            var binds = PostgresBindings()
            binds.append(locked.id.rawValue)
            _ = try await connection.query("BEGIN", logger: db.logger)
            let lock = PostgresQuery(
                unsafeSQL: "SELECT id FROM \"\(db.schema)\".jobs WHERE id = $1 FOR UPDATE",
                binds: binds
            )
            _ = try await connection.query(lock, logger: db.logger).collect()
            let beat = try await withThrowingTaskGroup(of: HeartbeatResult?.self) { group in
                group.addTask {
                    try await db.store.heartbeat(leases, workerID: "w", leaseDuration: .seconds(60), logger: db.logger)
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    return nil
                }
                let first = try await group.next() ?? nil
                if first == nil { _ = try await connection.query("COMMIT", logger: db.logger) }
                group.cancelAll()
                return first
            }
            _ = try await connection.query("COMMIT", logger: db.logger)
            let result = try #require(beat, "the heartbeat waited for the locked row")
            #expect(result.lost.isEmpty)
            #expect(result.cancelRequested.isEmpty)
        }
        #expect(try await expiresAt(locked) == before.locked)
        #expect(try await expiresAt(free) > before.free)
    }

    @Test("the reaper of a running worker takes back an expired lease and the job runs again")
    func reaperRetriesExpiredLeases() async throws {
        let db = try TestDatabase.get()
        let enqueued = try await db.client.jobs.enqueue(Echo(value: 1))
        _ = try await self.fetchAsDeadWorker(db)
        var registry = JobRegistry()
        registry.register(Echo.self, retryPolicy: .constant(.milliseconds(10))) { _, _ in }
        try await db.withWorker(registry, configure: { $0.reaperInterval = .milliseconds(100) }) { _ in
            try await db.waitUntil("the job completed on its second attempt") {
                try await db.client.jobs.get(enqueued.id)?.state == .completed
            }
        }
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.attempts.map(\.errorCode) == [.leaseExpired, nil])
    }

    @Test("heartbeats keep a long job's lease, so the reaper leaves it alone")
    func heartbeatsKeepTheLease() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        // The job runs twice as long as a lease; thirty heartbeats per lease leave room for a loaded machine (with
        // a one-second lease, the full suite's process and crash tests starved it past its lease on CI).
        registry.register(Echo.self) { _, _ in try await Task.sleep(for: .seconds(6)) }
        let enqueued = try await db.client.jobs.enqueue(Echo(value: 1))
        try await db.withWorker(
            registry,
            configure: {
                $0.leaseDuration = .seconds(3)
                $0.heartbeatInterval = .milliseconds(100)
                $0.reaperInterval = .milliseconds(50)
            }
        ) { _ in
            try await db.waitUntil("the job completed") {
                try await db.client.jobs.get(enqueued.id)?.state == .completed
            }
        }
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.attempts.map(\.outcome) == [.completed])
        #expect(job.attempt == 1)
    }

    @Test("graceful shutdown lets short handlers finish and releases the rest, leaving nothing leased")
    func gracefulShutdownReleases() async throws {
        let db = try TestDatabase.get()
        let started = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            started.append(args.value)
            try await Task.sleep(for: .milliseconds(args.value))
        }
        let short = try await db.client.jobs.enqueue(Echo(value: 100))
        let long = try await db.client.jobs.enqueue(Echo(value: 600_000))
        try await db.withWorker(registry, configure: { $0.shutdownGracePeriod = .milliseconds(400) }) { _ in
            try await db.waitUntil("both handlers started") { started.all.count == 2 }
        }
        // The worker has returned: its shutdown is complete.
        #expect(try await db.client.jobs.get(short.id)?.state == .completed)
        let released = try #require(try await db.client.jobs.get(long.id))
        #expect(released.state == .available)
        #expect(released.attempt == 0)
        #expect(released.leaseOwner == nil)
        #expect(released.attempts.map(\.outcome) == [.released])
        #expect(released.attempts.first?.errorCode == .shutdown)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") == 0)
    }

    @Test("jobs fetched ahead into the buffer are heartbeated and released unstarted on shutdown")
    func bufferedJobsAreReleased() async throws {
        let db = try TestDatabase.get()
        let started = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            started.append(args.value)
            try await Task.sleep(for: .seconds(600))
        }
        let jobs = try await db.client.jobs.enqueue(contentsOf: (0..<3).map { Echo(value: $0) })
        try await db.withWorker(
            registry,
            configure: {
                $0.queues = ["default": .init(slots: 1, prefetch: 4)]
                $0.shutdownGracePeriod = .milliseconds(100)
                $0.heartbeatInterval = .milliseconds(100)
                // Twenty beats per lease leave room for a machine loaded by the process tests beside this one.
                $0.leaseDuration = .seconds(2)
                $0.reaperInterval = .milliseconds(100)
            }
        ) { _ in
            try await db.waitUntil("one job runs and another waits leased in the buffer") {
                let running = try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'")
                return started.all.count == 1 && running == 2
            }
            // Outlive several leases: heartbeats cover the buffered job too, so nothing is reaped.
            try await db.waitUntil("the leases were extended past their first expiry") {
                try await db.scalar(
                    "SELECT count(*) FROM {schema}.jobs WHERE state = 'running' AND lease_expires_at > created_at + interval '5 seconds'"
                ) == 2
            }
            #expect(started.all.count == 1)
        }
        for job in jobs {
            let record = try #require(try await db.client.jobs.get(job.id))
            #expect(record.state == .available)
            #expect(record.attempt == 0)
            #expect(record.attempts.allSatisfy { $0.outcome == .released && $0.errorCode == .shutdown })
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE lease_owner IS NOT NULL") == 0)
    }

    @Test("a fetch commits its leases without waiting for the disk unless asked to; results always wait")
    func leaseCommitDurability() async throws {
        let db = try TestDatabase.get()
        // A deferred trigger runs inside COMMIT, before the commit record is written, so it sees the setting that
        // commit obeys.
        try await db.execute("CREATE TABLE {schema}.commit_modes (id bigint, state text, mode text)")
        try await db.execute(
            """
            CREATE FUNCTION {schema}.record_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO {schema}.commit_modes (id, state, mode)
                VALUES (NEW.id, NEW.state, current_setting('synchronous_commit'));
                RETURN NULL;
            END $$
            """
        )
        try await db.execute(
            """
            CREATE CONSTRAINT TRIGGER record_commit_mode AFTER UPDATE ON {schema}.jobs
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {schema}.record_commit_mode()
            """
        )
        let first = try await db.client.jobs.enqueue(Echo(value: 1))
        let second = try await db.client.jobs.enqueue(Echo(value: 2))

        // The test server commits asynchronously; these sessions start with the benchmark's and production's
        // setting.
        try await db.withNewSessions(startupParameters: [("synchronous_commit", "on")]) { store in
            var leases: [FetchedJob] = []
            for synchronous in [false, true] {
                leases += try await db.lease(as: "w", for: .seconds(30), synchronousCommit: synchronous, on: store)
            }
            #expect(leases.map(\.id) == [first.id, second.id])
            let written = try await store.complete(leases.map(JobCompletion.succeeded), logger: db.logger)
            #expect(Set(written) == [first.id, second.id])
        }

        var commits: [String] = []
        let rows = try await db.execute(
            "SELECT id, state, mode FROM {schema}.commit_modes ORDER BY state = 'completed', id"
        )
        for try await (id, state, mode) in rows.decode((Int64, String, String).self) {
            commits.append("\(id == first.id.rawValue ? "first" : "second") \(state) \(mode)")
        }
        #expect(
            commits == [
                "first running off", "second running on", "first completed on", "second completed on",
            ]
        )
    }

    @Test("a lease that a database crash lost with its sequence step cannot be written over by its holder")
    func lostLeaseStaysFenced() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        let sequence = try await db.execute("SELECT last_value, is_called FROM {schema}.lease_tokens")
        var sequenceBefore: (Int64, Bool)?
        for try await row in sequence.decode((Int64, Bool).self) { sequenceBefore = row }
        let (lastValue, isCalled) = try #require(sequenceBefore)
        let lost = try #require(try await db.lease(as: "before-the-crash", for: .seconds(30)).first)

        // What recovery leaves when the lease's commit never reached the disk: the job as it was enqueued, and the
        // sequences as they were before the lease.
        try await db.execute(
            """
            UPDATE {schema}.jobs
            SET state = 'available', attempt = 0, attempted_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
                lease_token = NULL
            WHERE id = \(job.id.rawValue)
            """
        )
        try await db.execute("SELECT setval('{schema}.lease_tokens', \(lastValue), \(isCalled))")
        let current = try await db.withNewSessions { store in
            try #require(try await db.lease(as: "after-the-crash", for: .seconds(30), on: store).first)
        }
        #expect(current.id == job.id)
        #expect(current.leaseToken != lost.leaseToken)

        // The worker that held the lost lease finishes and writes its result.
        let written = try await db.store.complete([.succeeded(lost)], logger: db.logger)
        #expect(written.isEmpty)
        let record = try #require(try await db.client.jobs.get(job.id))
        #expect(record.state == .running)
        #expect(record.leaseOwner == "after-the-crash")
    }

    @Test("a notification wakes an idle listening worker without waiting for a poll")
    func notificationWakesWorker() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        try await db.withWorker(registry, configure: { $0.pollInterval = .seconds(3600) }) { _ in
            try await db.waitUntil("the worker is listening") { try await db.listeners() == 1 }
            // The first job may be taken by the start-up fetch; after it the worker idles until woken.
            let first = try await db.client.jobs.enqueue(Echo(value: 1))
            try await db.waitUntil("the first job completed") {
                try await db.client.jobs.get(first.id)?.state == .completed
            }
            let second = try await db.client.jobs.enqueue(Echo(value: 2))
            try await db.waitUntil("the second job completed, woken by NOTIFY", timeout: .seconds(20)) {
                try await db.client.jobs.get(second.id)?.state == .completed
            }
            // A large batch asks for each queue's notification in the first of its statements that has the
            // queue: here only the third of three statements has a job on the worker's queue.
            var requests = (0..<600).map { JobRequest(Echo(value: $0), options: .init(queue: "unworked")) }
            requests[599] = JobRequest(Echo(value: 599))
            let batch = try await db.postgres.withTransaction(logger: db.logger) { connection in
                try await db.client.jobs.enqueue(requests, on: connection)
            }
            try await db.waitUntil("the batch's last job completed, woken by NOTIFY", timeout: .seconds(20)) {
                try await db.client.jobs.get(batch[599].id)?.state == .completed
            }
            // A large batch of the client's own is copied in, and its notification is sent when it commits.
            let copied = try await db.client.jobs.enqueue(contentsOf: (0..<300).map { Echo(value: $0) })
            try await db.waitUntil("the copied batch completed, woken by NOTIFY", timeout: .seconds(20)) {
                try await db.client.jobs.get(copied[299].id)?.state == .completed
            }
        }
    }

    @Test("without notifications, polling alone still runs every job")
    func pollingFallback() async throws {
        let db = try TestDatabase.get()
        var configuration = ConveyorClient.Configuration()
        configuration.notifyOnInsert = false
        let silent = ConveyorClient(store: db.store, configuration: configuration, logger: db.logger)
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        for mode in [ConveyorWorker.WakeMode.pollOnly, .listen] {
            try await db.withWorker(
                registry,
                configure: {
                    $0.wakeMode = mode
                    $0.pollInterval = .milliseconds(100)
                }
            ) { _ in
                let first = try await silent.jobs.enqueue(Echo(value: 1))
                try await db.waitUntil("the first job completed") {
                    try await db.client.jobs.get(first.id)?.state == .completed
                }
                if mode == .pollOnly {
                    #expect(try await db.listeners() == 0)
                }
                let second = try await silent.jobs.enqueue(Echo(value: 2))
                try await db.waitUntil("the second job completed by polling") {
                    try await db.client.jobs.get(second.id)?.state == .completed
                }
            }
        }
    }

    @Test("a burst of single enqueues sends a leading and a trailing notification, not one per job")
    func burstsAreCoalesced() async throws {
        let db = try TestDatabase.get()
        var configuration = ConveyorClient.Configuration()
        configuration.notifyCoalescingInterval = .seconds(1)
        let client = ConveyorClient(store: db.store, configuration: configuration, logger: db.logger)
        let received = Recorder()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await db.postgres.withConnection { connection in
                    try await connection.listen(on: "\(db.schema).jobs_available") { notifications in
                        for try await _ in notifications { received.append(1) }
                    }
                }
            }
            try await db.waitUntil("the test is listening") { try await db.listeners() == 1 }
            let clock = ContinuousClock()
            let start = clock.now
            for value in 0..<100 {
                try await client.jobs.enqueue(Echo(value: value))
            }
            let seconds = Int((clock.now - start).inSeconds.rounded(.up))
            try await db.waitUntil("the trailing notification arrived") { received.all.count >= 2 }
            // At most a leading and a trailing one per interval the burst lasted (a loaded machine stretches it):
            // without coalescing, each of the 100 enqueues notifies.
            #expect(received.all.count <= 2 * (seconds + 1), "\(received.all.count) in \(seconds) s")
            #expect(received.all.count < 50)
            group.cancelAll()
        }
    }
}
