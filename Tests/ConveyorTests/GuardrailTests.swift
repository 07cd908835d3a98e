import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite(.database) struct GuardrailTests {
    @Test("a too-large payload and an invalid name are refused with their codes, recorded with why, and not stored")
    func validationRefusalsAreRecorded() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db, maximumArgumentBytes: 100)
        let big = Memo(text: String(repeating: "x", count: 200))

        let tooLarge = await Self.refusal { try await client.jobs.enqueue(big, options: .init(queue: "mail")) }
        #expect(tooLarge?.code == .argumentsTooLarge)
        let badQueue = await Self.refusal {
            try await client.jobs.enqueue(Memo(text: "hi"), options: .init(queue: "bad queue"))
        }
        #expect(badQueue?.code == .invalidQueueName)
        // A batch is refused whole, and recorded once with its size: here a bad member in a later statement.
        var requests = (0..<600).map { JobRequest(Echo(value: $0), options: .init(queue: "bulk")) }
        requests[450] = JobRequest(Echo(value: 450), options: .init(queue: "bulk", namespace: "a/b"))
        let badBatch = await Self.refusal { try await client.jobs.enqueue(requests) }
        #expect(badBatch?.code == .invalidNamespace)
        let badMany = await Self.refusal {
            try await client.jobs.enqueue(contentsOf: [Memo(text: "ok"), big], options: .init(namespace: "acme"))
        }
        #expect(badMany?.code == .argumentsTooLarge)
        // The HTTP layer's path records its source.
        let fromAPI = await Self.refusal {
            try await client.jobs.enqueue(kind: "bad kind'", argumentsJSON: "{}", options: .init(), source: .api)
        }
        #expect(fromAPI?.code == .invalidKind)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)

        let decisions = try await client.ingest.decisions().decisions
        #expect(
            decisions.map(\.code) == [
                "INVALID_KIND", "ARGUMENTS_TOO_LARGE", "INVALID_NAMESPACE", "INVALID_QUEUE_NAME", "ARGUMENTS_TOO_LARGE",
            ]
        )
        let (api, many, batch, queue, large) = (decisions[0], decisions[1], decisions[2], decisions[3], decisions[4])
        #expect(large.reason == tooLarge?.message)
        #expect(large.reason.contains("limit is 100"))
        #expect(large.kind == Memo.kind)
        #expect(large.queue == "mail")
        #expect(large.namespace == "default")
        #expect(large.jobs == 1)
        #expect(large.source == "client")
        #expect(large.id != nil && large.at != nil)
        // A name that breaks the rules is not stored; the reason says what is wrong with it.
        #expect(queue.queue == nil)
        #expect(queue.kind == Memo.kind)
        #expect(queue.reason == badQueue?.message)
        #expect(queue.reason.contains("U+20"))
        #expect(batch.jobs == 600)
        #expect(batch.queue == "bulk")
        #expect(batch.namespace == nil)
        #expect(batch.kind == Echo.kind)
        #expect(many.jobs == 2)
        #expect(many.namespace == "acme")
        #expect(api.source == "api")
        #expect(api.kind == nil)
        #expect(api.queue == "default")
    }

    @Test("a rate limit holds across two clients: a burst of 10 admits exactly 10 of 15 enqueues")
    func rateLimitHoldsAcrossProcesses() async throws {
        let db = try TestDatabase.get()
        let first = Self.client(db)
        try await first.limits.set(EnqueueLimit(scope: .queue, name: "mail", perSecond: 0.001, burst: 10))
        try await db.withNewSessions { store in
            let second = ConveyorClient(store: store, configuration: Self.configuration(), logger: db.logger)
            var refusals: [ConveyorError] = []
            for value in 0..<15 {
                let client = value.isMultiple(of: 2) ? first : second
                if let error = await Self.refusal({
                    try await client.jobs.enqueue(Echo(value: value), options: .init(queue: "mail"))
                }) {
                    refusals.append(error)
                }
            }
            #expect(refusals.count == 5)
            #expect(refusals.allSatisfy { $0.code == .rateLimited })
            let exceeded = try #require(refusals.first?.underlying as? EnqueueLimitExceeded)
            // One token per 1000 s: the next one is most of that away.
            let retryAfter = try #require(exceeded.retryAfter)
            #expect(retryAfter > .seconds(900) && retryAfter <= .seconds(1000))
            #expect(
                exceeded.refusals.map(\.limit) == [
                    EnqueueLimit(scope: .queue, name: "mail", perSecond: 0.001, burst: 10)
                ]
            )
            #expect(refusals.first?.message.contains("queue mail") == true)
            #expect(refusals.first?.message.contains("retry after") == true)
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE queue = 'mail'") == 10)
        let decisions = try await first.ingest.decisions(IngestDecisionFilter(code: "RATE_LIMITED")).decisions
        #expect(decisions.count == 5)
        #expect(decisions.allSatisfy { $0.queue == "mail" && $0.jobs == 1 && $0.source == "client" })
        #expect(decisions.allSatisfy { $0.kind == Echo.kind && $0.namespace == "default" })
        #expect(decisions.allSatisfy { $0.reason.contains("queue mail") && $0.reason.contains("retry after") })
    }

    @Test("concurrent enqueues from two clients never take more tokens than the bucket holds")
    func rateLimitHoldsUnderConcurrency() async throws {
        let db = try TestDatabase.get()
        // Forty callers share two pools of eight connections: on a loaded machine a caller may wait for one longer
        // than the default five seconds.
        var firstStore = db.store
        firstStore.connectionWaitTimeout = .seconds(120)
        let first = ConveyorClient(store: firstStore, configuration: Self.configuration(), logger: db.logger)
        try await first.limits.set(EnqueueLimit(scope: .queue, name: "hot", perSecond: 0.001, burst: 25))
        try await first.limits.set(EnqueueLimit(scope: .namespace, name: "acme", perSecond: 0.001, burst: 1000))
        let admitted = try await db.withNewSessions { store in
            var store = store
            store.connectionWaitTimeout = .seconds(120)
            let second = ConveyorClient(store: store, configuration: Self.configuration(), logger: db.logger)
            return try await withThrowingTaskGroup(of: Int.self) { group in
                for caller in 0..<40 {
                    let client = caller.isMultiple(of: 2) ? first : second
                    group.addTask {
                        do {
                            // Two buckets per call, taken in one order by every caller, whatever order they are
                            // asked in.
                            try await client.jobs.enqueue(
                                contentsOf: [Echo(value: caller), Echo(value: caller)],
                                options: .init(queue: "hot", namespace: "acme")
                            )
                            return 2
                        } catch let error as ConveyorError where error.code == .rateLimited {
                            return 0
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(admitted == 24)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE queue = 'hot'") == 24)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.ingest_decisions WHERE code = 'RATE_LIMITED'") == 28)
        // The namespace bucket gave up only what was admitted: refused calls took nothing from it.
        let tokens = try await db.scalar(
            "SELECT floor(tokens)::int FROM {schema}.enqueue_limits WHERE scope = 'namespace' AND name = 'acme'"
        )
        #expect(tokens == 1000 - 24)
    }

    @Test("a batch larger than the burst is refused whole; namespace limits apply; other queues are not limited")
    func batchesNamespacesAndUnlimitedQueues() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db)
        try await client.limits.set(EnqueueLimit(scope: .queue, name: "bulk", perSecond: 0.001, burst: 5))
        try await client.limits.set(EnqueueLimit(scope: .namespace, name: "tenant-a", perSecond: 0.001, burst: 3))

        let tooMany = await Self.refusal {
            try await client.jobs.enqueue(contentsOf: (0..<6).map { Echo(value: $0) }, options: .init(queue: "bulk"))
        }
        #expect(tooMany?.code == .rateLimited)
        let exceeded = try #require(tooMany?.underlying as? EnqueueLimitExceeded)
        #expect(exceeded.retryAfter == nil)
        #expect(tooMany?.message.contains("smaller batches") == true)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
        // The refusal took nothing: the whole burst is still there.
        try await client.jobs.enqueue(contentsOf: (0..<5).map { Echo(value: $0) }, options: .init(queue: "bulk"))
        #expect(
            await Self.refusal { try await client.jobs.enqueue(Echo(value: 5), options: .init(queue: "bulk")) }?
                .code == .rateLimited
        )

        // The namespace's bucket is shared by its queues, and by mixed batches.
        try await client.jobs.enqueue(Echo(value: 1), options: .init(queue: "a", namespace: "tenant-a"))
        try await client.jobs.enqueue([
            JobRequest(Echo(value: 2), options: .init(queue: "b", namespace: "tenant-a")),
            JobRequest(Echo(value: 3), options: .init(queue: "c", namespace: "tenant-b")),
        ])
        let mixed = await Self.refusal {
            try await client.jobs.enqueue([
                JobRequest(Echo(value: 4), options: .init(queue: "a", namespace: "tenant-a")),
                JobRequest(Echo(value: 5), options: .init(queue: "a", namespace: "tenant-a")),
                JobRequest(Echo(value: 6), options: .init(queue: "a", namespace: "tenant-b")),
            ])
        }
        #expect(mixed?.code == .rateLimited)
        try await client.jobs.enqueue(Echo(value: 7), options: .init(queue: "d", namespace: "tenant-a"))
        #expect(
            await Self.refusal {
                try await client.jobs.enqueue(Echo(value: 8), options: .init(namespace: "tenant-a"))
            }?.code == .rateLimited
        )
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE namespace = 'tenant-a'") == 3)

        // Neither a queue nor a namespace without a limit is limited.
        try await client.jobs.enqueue(contentsOf: (0..<50).map { Echo(value: $0) }, options: .init(queue: "other"))
        for value in 0..<10 { try await client.jobs.enqueue(Echo(value: value), options: .init(namespace: "tenant-b")) }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE queue = 'other'") == 50)

        let decisions = try await client.ingest.decisions(IngestDecisionFilter(code: "RATE_LIMITED")).decisions
        #expect(decisions.count == 4)
        let namespaceRefusal = decisions[0]
        #expect(namespaceRefusal.namespace == "tenant-a")
        #expect(namespaceRefusal.reason.contains("namespace tenant-a"))
        let mixedRefusal = decisions[1]
        #expect(mixedRefusal.jobs == 3)
        #expect(mixedRefusal.namespace == "tenant-a")
        #expect(mixedRefusal.queue == "a")
        #expect(decisions[3].jobs == 6)
        #expect(decisions[3].queue == "bulk")
    }

    @Test("removing or replacing a limit applies once the other client's copy is refreshed")
    func limitChangesApplyAfterTheRefresh() async throws {
        let db = try TestDatabase.get()
        let admin = Self.client(db)
        try await admin.limits.set(EnqueueLimit(scope: .queue, name: "mail", perSecond: 0.001, burst: 1))
        try await db.withNewSessions { store in
            // This client refreshes at every enqueue; `stale` only once an hour.
            let fresh = ConveyorClient(store: store, configuration: Self.configuration(), logger: db.logger)
            let stale = ConveyorClient(
                store: store,
                configuration: Self.configuration(refresh: .seconds(3600)),
                logger: db.logger
            )
            try await fresh.jobs.enqueue(Echo(value: 1), options: .init(queue: "mail"))
            #expect(
                await Self.refusal { try await fresh.jobs.enqueue(Echo(value: 2), options: .init(queue: "mail")) }?
                    .code == .rateLimited
            )
            #expect(try await admin.limits.remove(scope: .queue, name: "mail"))
            #expect(try await !admin.limits.remove(scope: .queue, name: "mail"))
            for value in 3..<8 { try await fresh.jobs.enqueue(Echo(value: value), options: .init(queue: "mail")) }

            // `stale` read the limits (none on "news") before one was set there, and keeps its copy for the hour:
            // its enqueues take no tokens, so the bucket is still full for `fresh`.
            try await stale.jobs.enqueue(Echo(value: 10), options: .init(queue: "news"))
            try await admin.limits.set(EnqueueLimit(scope: .queue, name: "news", perSecond: 0.001, burst: 2))
            for value in 11..<14 { try await stale.jobs.enqueue(Echo(value: value), options: .init(queue: "news")) }
            try await fresh.jobs.enqueue(contentsOf: [Echo(value: 14), Echo(value: 15)], options: .init(queue: "news"))
            #expect(
                await Self.refusal { try await fresh.jobs.enqueue(Echo(value: 16), options: .init(queue: "news")) }?
                    .code == .rateLimited
            )
            // Replacing the limit refills its bucket.
            try await admin.limits.set(EnqueueLimit(scope: .queue, name: "news", perSecond: 0.001, burst: 3))
            try await fresh.jobs.enqueue(contentsOf: (17..<20).map { Echo(value: $0) }, options: .init(queue: "news"))
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE queue = 'mail'") == 6)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE queue = 'news'") == 9)
        #expect(
            try await admin.limits.list() == [
                EnqueueLimit(scope: .queue, name: "news", perSecond: 0.001, burst: 3)
            ]
        )
    }

    @Test("with no limit covering it, an enqueue does not touch enqueue_limits between refreshes")
    func unlimitedEnqueuesMakeNoLimitCalls() async throws {
        let db = try TestDatabase.get()
        try await Self.client(db).limits.set(EnqueueLimit(scope: .queue, name: "mail", perSecond: 1, burst: 1))
        // A statement that touched the table while another session holds it locked would fail after 2 s.
        try await db.withNewSessions(startupParameters: [("lock_timeout", "2s")]) { store in
            let client = ConveyorClient(
                store: store,
                configuration: Self.configuration(refresh: .seconds(3600)),
                logger: db.logger
            )
            try await client.jobs.enqueue(Echo(value: 0))
            try await db.postgres.withTransaction(logger: db.logger) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "LOCK TABLE \"\(db.schema)\".enqueue_limits IN ACCESS EXCLUSIVE MODE"),
                    logger: db.logger
                )
                for value in 1...20 { try await client.jobs.enqueue(Echo(value: value)) }
                try await client.jobs.enqueue(contentsOf: (0..<600).map { Echo(value: $0) })
                try await client.jobs.enqueue([JobRequest(Echo(value: 1), options: .init(namespace: "acme"))])
                try await client.jobs.enqueue(kind: "test.echo", argumentsJSON: #"{"value": 1}"#)
            }
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 623)
    }

    @Test("bad limit settings are refused with stable codes and store nothing")
    func badSettingsAreRefused() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db)
        let cases: [(ConveyorError.Code, EnqueueLimit)] = [
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: 0, burst: 10)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: -1, burst: 10)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: .infinity, burst: 10)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: .nan, burst: 10)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: 1_000_001, burst: 10)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: 1, burst: 0)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: 1, burst: -5)),
            (.invalidOption, EnqueueLimit(scope: .queue, name: "mail", perSecond: 1, burst: 1_000_001)),
            (.invalidQueueName, EnqueueLimit(scope: .queue, name: "", perSecond: 1, burst: 1)),
            (.invalidQueueName, EnqueueLimit(scope: .queue, name: "bad queue", perSecond: 1, burst: 1)),
            (.invalidQueueName, EnqueueLimit(scope: .queue, name: "q'; DROP", perSecond: 1, burst: 1)),
            (.invalidNamespace, EnqueueLimit(scope: .namespace, name: "a/b", perSecond: 1, burst: 1)),
            (
                .invalidNamespace,
                EnqueueLimit(scope: .namespace, name: String(repeating: "n", count: 129), perSecond: 1, burst: 1)
            ),
        ]
        for (code, limit) in cases {
            let error = await #expect(throws: ConveyorError.self) { try await client.limits.set(limit) }
            #expect(error?.code == code, "\(limit)")
            // The store checks what it is given too (the HTTP layer or a driver may call it directly).
            let stored = await #expect(throws: ConveyorError.self) {
                try await db.store.setEnqueueLimit(limit, logger: db.logger)
            }
            #expect(stored?.code == code, "\(limit)")
        }
        let removal = await #expect(throws: ConveyorError.self) {
            try await client.limits.remove(scope: .namespace, name: "a b")
        }
        #expect(removal?.code == .invalidNamespace)
        #expect(try await client.limits.list().isEmpty)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.enqueue_limits") == 0)
        // The edges are accepted.
        try await client.limits.set(EnqueueLimit(scope: .queue, name: "a", perSecond: 1_000_000, burst: 1_000_000))
        try await client.limits.set(EnqueueLimit(scope: .namespace, name: "b", perSecond: 0.0001, burst: 1))
        // Ordered by scope, then name.
        #expect(try await client.limits.list().map(\.name) == ["b", "a"])
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.enqueue_limits") == 2)
    }

    @Test("decisions page newest first with filters, and bad filters get INVALID_FILTER")
    func decisionsPage() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db)
        for value in 0..<5 {
            _ = await Self.refusal {
                try await client.jobs.enqueue(Echo(value: value), options: .init(queue: "q\(value % 2)", priority: 10))
            }
        }
        _ = await Self.refusal { try await client.jobs.enqueue(Echo(value: 9), options: .init(namespace: "bad ns")) }

        var ids: [Int64] = []
        var filter = IngestDecisionFilter(code: "INVALID_OPTION", limit: 2)
        while true {
            let page = try await client.ingest.decisions(filter)
            #expect(page.decisions.count <= 2)
            ids += page.decisions.compactMap(\.id)
            guard let next = page.nextCursor else { break }
            filter.cursor = next
        }
        #expect(ids.count == 5)
        #expect(ids == ids.sorted(by: >))
        let q1 = try await client.ingest.decisions(IngestDecisionFilter(queue: "q1")).decisions
        #expect(q1.count == 2)
        #expect(q1.allSatisfy { $0.queue == "q1" && $0.code == "INVALID_OPTION" })
        let badNamespace = try await client.ingest.decisions(IngestDecisionFilter(namespace: "default")).decisions
        #expect(badNamespace.count == 5)

        for bad in [
            IngestDecisionFilter(limit: 0), IngestDecisionFilter(limit: 1001), IngestDecisionFilter(cursor: "j5"),
            IngestDecisionFilter(cursor: "d0"), IngestDecisionFilter(cursor: "d-3"), IngestDecisionFilter(cursor: "d"),
            IngestDecisionFilter(code: "RATE LIMITED"),
        ] {
            let error = await #expect(throws: ConveyorError.self) { try await client.ingest.decisions(bad) }
            #expect(error?.code == .invalidFilter, "\(bad)")
        }
        let badQueue = await #expect(throws: ConveyorError.self) {
            try await client.ingest.decisions(IngestDecisionFilter(queue: "q'; DROP TABLE x"))
        }
        #expect(badQueue?.code == .invalidQueueName)
    }

    @Test("pruning deletes only decisions older than the retention, at most a limit per call")
    func pruneDeletesOnlyOldDecisions() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db)
        for value in 0..<5 {
            _ = await Self.refusal {
                try await client.jobs.enqueue(Echo(value: value), options: .init(queue: "old\(value)", priority: 10))
            }
        }
        _ = await Self.refusal {
            try await client.jobs.enqueue(Echo(value: 1), options: .init(queue: "new", priority: 10))
        }
        try await db.execute("UPDATE {schema}.ingest_decisions SET at = now() - interval '8 days' WHERE queue <> 'new'")
        // A day short of the retention: kept.
        try await db.execute("UPDATE {schema}.ingest_decisions SET at = now() - interval '6 days' WHERE queue = 'old4'")

        let week = Duration.seconds(7 * 86_400)
        #expect(try await db.store.pruneIngestDecisions(olderThan: week, limit: 3, logger: db.logger) == 3)
        #expect(try await db.store.pruneIngestDecisions(olderThan: week, limit: 3, logger: db.logger) == 1)
        #expect(try await db.store.pruneIngestDecisions(olderThan: week, limit: 3, logger: db.logger) == 0)
        let kept = try await client.ingest.decisions().decisions.compactMap(\.queue)
        #expect(kept == ["new", "old4"])
    }

    @Test("the transactional enqueue enforces limits and records its refusals, whatever the transaction does")
    func transactionalEnqueueIsLimited() async throws {
        let db = try TestDatabase.get()
        let client = Self.client(db)
        try await client.limits.set(EnqueueLimit(scope: .queue, name: "tx", perSecond: 0.001, burst: 2))
        try await client.limits.set(EnqueueLimit(scope: .namespace, name: "acme", perSecond: 0.001, burst: 1))
        var refusals: [ConveyorError.Code] = []
        for value in 0..<3 {
            if let error = await Self.refusal({
                try await client.withTransaction { connection in
                    try await client.jobs.enqueue(Echo(value: value), options: .init(queue: "tx"), on: connection)
                }
            }) {
                refusals.append(error.code)
            }
        }
        #expect(refusals == [.rateLimited])
        let namespaced = [
            JobRequest(Echo(value: 1), options: .init(namespace: "acme")),
            JobRequest(Echo(value: 2), options: .init(namespace: "acme")),
        ]
        let batch = await Self.refusal {
            try await client.withTransaction { connection in try await client.jobs.enqueue(namespaced, on: connection) }
        }
        #expect(batch?.code == .rateLimited)
        // A validation refusal is recorded even though the caller's transaction rolls back.
        let invalid = await Self.refusal {
            try await client.withTransaction { connection in
                try await client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 0), on: connection)
            }
        }
        #expect(invalid?.code == .invalidOption)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 2)

        let decisions = try await client.ingest.decisions().decisions
        #expect(decisions.map(\.code) == ["INVALID_OPTION", "RATE_LIMITED", "RATE_LIMITED"])
        #expect(decisions.allSatisfy { $0.source == "transaction" })
        #expect(decisions[1].namespace == "acme")
        #expect(decisions[1].jobs == 2)
        #expect(decisions[2].queue == "tx")
    }

    // MARK: Support

    static func configuration(
        refresh: Duration = .zero,
        maximumArgumentBytes: Int? = nil
    ) -> ConveyorClient.Configuration {
        var configuration = ConveyorClient.Configuration()
        configuration.enqueueLimitRefresh = refresh
        if let maximumArgumentBytes { configuration.maximumArgumentBytes = maximumArgumentBytes }
        return configuration
    }

    /// A client on the test's store that reads the limits at every enqueue.
    static func client(_ db: TestDatabase, maximumArgumentBytes: Int? = nil) -> ConveyorClient {
        ConveyorClient(
            store: db.store,
            configuration: Self.configuration(maximumArgumentBytes: maximumArgumentBytes),
            logger: db.logger
        )
    }

    /// The ``ConveyorError`` that `operation` threw; `nil` when it succeeded. Any other error fails the test.
    static func refusal<Result>(_ operation: () async throws -> Result) async -> ConveyorError? {
        do {
            _ = try await operation()
            return nil
        } catch let error as ConveyorError {
            return error
        } catch {
            Issue.record(error, "expected a ConveyorError")
            return nil
        }
    }
}

private struct Memo: JobArguments {
    static let kind = "test.memo"
    var text: String
}
