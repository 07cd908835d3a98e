import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Testing

@Suite(.database) struct EnqueueTests {
    @Test("an enqueued job is stored available with its arguments and options")
    func enqueueStoresTheJob() async throws {
        let db = try TestDatabase.get()
        let enqueued = try await db.client.jobs.enqueue(
            Echo(value: 7),
            options: .init(queue: "mail", priority: 3, maxAttempts: 5, tags: ["a", "b"], namespace: "acme")
        )
        #expect(!enqueued.isDuplicate)
        let job = try #require(try await db.client.jobs.get(enqueued.id))
        #expect(job.kind == "test.echo")
        #expect(job.queue == "mail")
        #expect(job.namespace == "acme")
        #expect(job.priority == 3)
        #expect(job.maxAttempts == 5)
        #expect(job.tags == ["a", "b"])
        #expect(job.state == .available)
        #expect(try job.decodeArguments(as: Echo.self).value == 7)
    }

    @Test("a delayed job is scheduled, not available")
    func delayedJobIsScheduled() async throws {
        let db = try TestDatabase.get()
        let delayed = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(delay: .seconds(3600)))
        let at = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(runAt: Date().addingTimeInterval(600)))
        #expect(try await db.client.jobs.get(delayed.id)?.state == .scheduled)
        let job = try #require(try await db.client.jobs.get(at.id))
        #expect(job.state == .scheduled)
        #expect(abs(job.runAt.timeIntervalSinceNow - 600) < 60)
    }

    @Test("a batch keeps the input order, across the statements a large batch is split into")
    func batchKeepsOrder() async throws {
        let db = try TestDatabase.get()
        let jobs = try await db.client.jobs.enqueue(contentsOf: (0..<500).map { Echo(value: $0) })
        #expect(jobs.count == 500)
        #expect(jobs.map(\.id) == jobs.map(\.id).sorted())
        // Every returned id is the row that holds that input's arguments.
        var binds = PostgresBindings()
        binds.append(jobs.map(\.id.rawValue))
        binds.append(Array(0..<500))
        let misplaced = try await db.scalar(
            """
            SELECT count(*) FROM unnest($1::bigint[], $2::bigint[]) AS e(id, value)
            LEFT JOIN {schema}.jobs j ON j.id = e.id
            WHERE (j.args->>'value')::bigint IS DISTINCT FROM e.value
            """,
            binds
        )
        #expect(misplaced == 0)
    }

    @Test("a large batch of plain jobs that run at once is copied in, and stores what one insert stores")
    func copiedBatchMatchesInsert() async throws {
        let db = try TestDatabase.get()
        let options = JobOptions(
            queue: "mail",
            priority: 3,
            maxAttempts: 5,
            timeout: .seconds(30),
            tags: ["a", "null", "x:y"],
            namespace: "acme"
        )
        // Text that COPY's text format gives a meaning (tab, newline, backslash, \N) must arrive as it was sent.
        let texts = ["tab\there", "line\nbreak\r\n", #"back\slash \N \t \"#, "quote \" ' {} ,", "ünïcødé ✓", ""]
        let single = try await db.client.jobs.enqueue(Note(text: texts[0]), options: options)
        let batch = try await db.client.jobs.enqueue(
            contentsOf: (0..<300).map { Note(text: texts[$0 % texts.count]) },
            options: options
        )
        #expect(batch.map(\.id) == batch.map(\.id).sorted() && Set(batch.map(\.id)).count == 300)
        var expected = try #require(try await db.client.jobs.get(single.id))
        expected.createdAt = Date(timeIntervalSince1970: 0)
        expected.runAt = Date(timeIntervalSince1970: 0)
        for (index, job) in batch.enumerated() {
            var record = try #require(try await db.client.jobs.get(job.id))
            #expect(try record.decodeArguments(as: Note.self).text == texts[index % texts.count])
            // Times are the database's now(), one per transaction.
            #expect(record.runAt == record.createdAt)
            (record.id, record.createdAt, record.runAt) = (expected.id, expected.createdAt, expected.runAt)
            if index % texts.count == 0 { #expect(record == expected) }
        }
        #expect(expected.state == .available && expected.tags == ["a", "null", "x:y"])
        // Raw JSON may have tabs, newlines and carriage returns between its tokens.
        let raw = try await db.client.jobs.enqueue(
            (0..<300).map { JobRequest(kind: "test.raw", argumentsJSON: "{\r\n\t\"n\":\t\($0)\n}") }
        )
        let stored = try #require(try await db.client.jobs.get(raw[299].id))
        #expect(stored.argumentsJSON == #"{"n": 299}"#)

        // A large batch that is not plain or not due at once takes the insert statements instead.
        let delayed = try await db.client.jobs.enqueue(
            contentsOf: (0..<300).map { Echo(value: $0) },
            options: .init(delay: .seconds(3600))
        )
        for job in [delayed[0], delayed[299]] {
            #expect(try await db.client.jobs.get(job.id)?.state == .scheduled)
        }
    }

    @Test("jobs with and without a unique key are stored alike, whichever insert statement carries them")
    func keyedAndPlainInsertsAgree() async throws {
        let db = try TestDatabase.get()
        let runAt = Date().addingTimeInterval(-5)
        let variants: [(JobOptions, JobState)] = [
            (
                .init(
                    queue: "mail",
                    priority: 3,
                    maxAttempts: 5,
                    timeout: .seconds(30),
                    tags: ["a", "b"],
                    namespace: "acme"
                ),
                .available
            ),
            (.init(delay: .seconds(3600)), .scheduled),
            (.init(runAt: runAt), .available),
            (.init(runAt: runAt.addingTimeInterval(3600)), .scheduled),
        ]
        for (options, state) in variants {
            var keyed = options
            keyed.uniqueKey = UUID().uuidString
            // One job per statement, and the same two inside a batch.
            let plain = try await db.client.jobs.enqueue(Echo(value: 1), options: options)
            let withKey = try await db.client.jobs.enqueue(Echo(value: 1), options: keyed)
            let batch = try await db.client.jobs.enqueue([
                JobRequest(Echo(value: 1), options: options), JobRequest(Echo(value: 1), options: keyed),
            ])
            var records: [JobRecord] = []
            for id in [plain.id, withKey.id, batch[0].id, batch[1].id] {
                var record = try #require(try await db.client.jobs.get(id))
                record.id = plain.id
                record.uniqueKey = nil
                // Times are the database's now(), one per statement.
                record.createdAt = Date(timeIntervalSince1970: 0)
                if options.runAt == nil { record.runAt = Date(timeIntervalSince1970: 0) }
                records.append(record)
            }
            #expect(records.allSatisfy { $0 == records[0] })
            #expect(records[0].timeoutMilliseconds == options.timeout.map { $0.wholeMilliseconds })
            #expect(records[0].state == state)
        }
    }

    @Test("a large batch is all or nothing, and a unique key repeated in a later statement is a duplicate")
    func largeBatchIsAtomic() async throws {
        let db = try TestDatabase.get()
        let existing = try await db.client.jobs.enqueue(Echo(value: -1), options: .init(uniqueKey: "taken"))
        // 600 jobs go in as three statements of 250, 250 and 100 rows in one transaction; the middle one has no
        // unique keys, so it is the plain insert.
        var requests = (0..<600).map { JobRequest(Echo(value: $0)) }
        requests[10] = JobRequest(Echo(value: 10), options: .init(uniqueKey: "repeated"))
        requests[560] = JobRequest(Echo(value: 560), options: .init(uniqueKey: "repeated"))
        requests[550] = JobRequest(Echo(value: 550), options: .init(uniqueKey: "taken"))
        let batch = try await db.client.jobs.enqueue(requests)
        #expect(!batch[10].isDuplicate)
        #expect(batch[560].id == batch[10].id && batch[560].isDuplicate)
        #expect(batch[550].id == existing.id && batch[550].isDuplicate)
        let keyless = batch.indices.filter { ![10, 550, 560].contains($0) }.map { batch[$0].id }
        #expect(keyless == keyless.sorted() && Set(keyless).count == 597)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1 + 598)

        // A row that fails late in a large batch (copied in, as it has no unique keys) rolls back the rows before.
        try await db.refuseInserts(ofValue: 999, atCommit: false)
        let poisoned = (0..<600).map { Echo(value: $0 == 590 ? 999 : 1000 + $0) }
        let error = await #expect(throws: ConveyorError.self) {
            try await db.client.jobs.enqueue(contentsOf: poisoned)
        }
        #expect(error?.code == .databaseError)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1 + 598)
    }

    @Test("an enqueue returns only once its commit succeeded: a failed commit is reported, not a job id")
    func enqueueWaitsForTheCommit() async throws {
        let db = try TestDatabase.get()
        // A check deferred to commit time: the insert statement itself succeeds, its commit fails.
        try await db.refuseInserts(ofValue: 13, atCommit: true)
        await #expect(throws: ConveyorError.self) { try await db.client.jobs.enqueue(Echo(value: 13)) }
        await #expect(throws: ConveyorError.self) {
            try await db.client.jobs.enqueue(contentsOf: (0..<600).map { Echo(value: $0 == 599 ? 13 : $0) })
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 0)
        let stored = try await db.client.jobs.enqueue(Echo(value: 14))
        #expect(try await db.client.jobs.get(stored.id) != nil)
    }

    @Test("a job enqueued in a transaction exists if and only if the transaction commits")
    func transactionalEnqueue() async throws {
        let db = try TestDatabase.get()
        try await db.execute("CREATE TABLE {schema}.orders (id int PRIMARY KEY)")
        let committed = try await db.postgres.withTransaction(logger: db.logger) { connection in
            try await connection.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \"\(db.schema)\".orders VALUES (1)"),
                logger: db.logger
            )
            return try await db.client.jobs.enqueue(Echo(value: 1), on: connection)
        }
        let error = await #expect(throws: PostgresTransactionError.self) {
            try await db.postgres.withTransaction(logger: db.logger) { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "INSERT INTO \"\(db.schema)\".orders VALUES (2)"),
                    logger: db.logger
                )
                _ = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(uniqueKey: "k2"), on: connection)
                throw Rollback()
            }
        }
        #expect(error?.closureError is Rollback)
        #expect(try await db.client.jobs.get(committed.id) != nil)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.orders") == 1)
        // The rolled-back unique key left no trace: it can be used again.
        let again = try await db.client.jobs.enqueue(Echo(value: 3), options: .init(uniqueKey: "k2"))
        #expect(!again.isDuplicate)
    }

    @Test("conveyor.withTransaction hands an enqueue's ConveyorError back unwrapped and commits nothing of it")
    func transactionErrorsArriveAsConveyorErrors() async throws {
        let db = try TestDatabase.get()
        try await db.execute("CREATE TABLE {schema}.orders (id int PRIMARY KEY)")
        let error = await #expect(throws: ConveyorError.self) {
            try await db.client.withTransaction { connection in
                try await connection.query(
                    PostgresQuery(unsafeSQL: "INSERT INTO \"\(db.schema)\".orders VALUES (1)"),
                    logger: db.logger
                )
                try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "bad queue"), on: connection)
            }
        }
        #expect(error?.code == .invalidQueueName)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.orders") == 0)
        let committed = try await db.client.withTransaction { connection in
            try await connection.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \"\(db.schema)\".orders VALUES (2)"),
                logger: db.logger
            )
            return try await db.client.jobs.enqueue(Echo(value: 2), on: connection)
        }
        #expect(try await db.client.jobs.get(committed.id) != nil)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.orders") == 1)
    }

    @Test("a duplicate unique key returns the existing job, within a batch too")
    func uniqueKeyReturnsExisting() async throws {
        let db = try TestDatabase.get()
        let first = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(uniqueKey: "order-1"))
        let second = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(uniqueKey: "order-1"))
        #expect(second.id == first.id)
        #expect(second.isDuplicate)
        let otherTenant = try await db.client.jobs.enqueue(
            Echo(value: 3),
            options: .init(namespace: "other", uniqueKey: "order-1")
        )
        #expect(otherTenant.id != first.id)
        let batch = try await db.client.jobs.enqueue([
            JobRequest(Echo(value: 4), options: .init(uniqueKey: "b")),
            JobRequest(Echo(value: 5)),
            JobRequest(Echo(value: 6), options: .init(uniqueKey: "b")),
            JobRequest(Echo(value: 7), options: .init(uniqueKey: "order-1")),
        ])
        #expect(!batch[0].isDuplicate)
        #expect(!batch[1].isDuplicate)
        #expect(batch[2].id == batch[0].id && batch[2].isDuplicate)
        #expect(batch[3].id == first.id && batch[3].isDuplicate)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 4)
    }

    @Test("concurrent enqueues of one unique key, some rolled back, leave exactly one job")
    func uniqueKeyUnderConcurrency() async throws {
        let db = try TestDatabase.get()
        let ids = try await withThrowingTaskGroup(of: JobID?.self) { group in
            for index in 0..<24 {
                group.addTask {
                    do {
                        return try await db.postgres.withTransaction(logger: db.logger) { connection in
                            let job = try await db.client.jobs.enqueue(
                                Echo(value: index),
                                options: .init(uniqueKey: "shared"),
                                on: connection
                            )
                            if index % 3 == 0 { throw Rollback() }
                            return job.id
                        }
                    } catch let error as PostgresTransactionError where error.closureError is Rollback {
                        return nil
                    }
                }
            }
            var ids: [JobID] = []
            for try await id in group { if let id { ids.append(id) } }
            return ids
        }
        #expect(ids.count == 16)
        #expect(Set(ids).count == 1)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
        let survivor = try #require(try await db.client.jobs.get(ids[0]))
        #expect(try survivor.decodeArguments(as: Echo.self).value % 3 != 0)
    }

    @Test("bad input gets a stable code and stores nothing")
    func badInputIsRefused() async throws {
        let db = try TestDatabase.get()
        let existing = try await db.client.jobs.enqueue(Echo(value: 1))
        let cases: [(ConveyorError.Code, () async throws -> Void)] = [
            (.malformedArguments, { try await db.client.jobs.enqueue(kind: "k", argumentsJSON: "{\"a\": ") }),
            (.malformedArguments, { try await db.client.jobs.enqueue(kind: "k", argumentsJSON: "[1, 2]") }),
            (
                .malformedArguments,
                { try await db.client.jobs.enqueue(kind: "k", argumentsJSON: "{\"a\": \"\\u0000\"}") }
            ),
            (
                .malformedArguments,
                { try await db.client.jobs.enqueue(kind: "k", argumentsJSON: #"{"a": "x\\\u0000"}"#) }
            ),
            (
                .argumentsTooLarge,
                {
                    let big = "{\"a\": \"" + String(repeating: "x", count: 2 << 20) + "\"}"
                    try await db.client.jobs.enqueue(kind: "k", argumentsJSON: big)
                }
            ),
            (.invalidKind, { try await db.client.jobs.enqueue(kind: "bad kind'", argumentsJSON: "{}") }),
            (.invalidQueueName, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "q; DROP")) }),
            (.invalidQueueName, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "")) }),
            (.invalidNamespace, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(namespace: "a/b")) }),
            (.invalidOption, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(priority: 10)) }),
            (.invalidOption, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(maxAttempts: 0)) }),
            (.invalidOption, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(tags: ["a,b"])) }),
            (.invalidOption, { try await db.client.jobs.enqueue(Echo(value: 1), options: .init(uniqueKey: "")) }),
            // A batch with one bad member stores none of it.
            (
                .invalidQueueName,
                {
                    try await db.client.jobs.enqueue([
                        JobRequest(Echo(value: 1)), JobRequest(Echo(value: 2), options: .init(queue: "bad queue")),
                    ])
                }
            ),
            // Large batches are built a part at a time while the parts before are written: a bad member in a
            // later part rolls back the ones already sent.
            (
                .invalidQueueName,
                {
                    var requests = (0..<600).map { JobRequest(Echo(value: $0)) }
                    requests[450] = JobRequest(Echo(value: 450), options: .init(queue: "bad queue"))
                    try await db.client.jobs.enqueue(requests)
                }
            ),
            (
                .malformedArguments,
                {
                    // JSONEncoder refuses NaN.
                    try await db.client.jobs.enqueue(
                        contentsOf: (0..<600).map { Measure(value: $0 == 520 ? .nan : Double($0)) }
                    )
                }
            ),
            (
                .argumentsTooLarge,
                {
                    let big = String(repeating: "x", count: 2 << 20)
                    try await db.client.jobs.enqueue(
                        contentsOf: (0..<600).map { Note(text: $0 == 599 ? big : "note \($0)") }
                    )
                }
            ),
        ]
        for (code, operation) in cases {
            let error = await #expect(throws: ConveyorError.self) { try await operation() }
            #expect(error?.code == code)
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
        #expect(try await db.client.jobs.get(existing.id)?.state == .available)
        // An escaped backslash followed by "u0000" is text, not a NUL character: it is stored as it is.
        let literal = try await db.client.jobs.enqueue(kind: "k", argumentsJSON: #"{"a": "\\u0000"}"#)
        #expect(try await db.client.jobs.get(literal.id)?.argumentsJSON == #"{"a": "\\u0000"}"#)
    }

    @Test("hostile strings in filters are values, not SQL, and invalid filters get a code")
    func hostileFilters() async throws {
        let db = try TestDatabase.get()
        try await db.client.jobs.enqueue(Echo(value: 1))
        let hostile = "x' OR '1'='1"
        let error = await #expect(throws: ConveyorError.self) {
            try await db.client.jobs.list(JobFilter(kind: hostile))
        }
        #expect(error?.code == .invalidKind)
        let page = try await db.client.jobs.list(JobFilter(kind: "x.OR.1"))
        #expect(page.jobs.isEmpty)
        let cursorError = await #expect(throws: ConveyorError.self) {
            try await db.client.jobs.list(JobFilter(cursor: "1; DROP TABLE jobs"))
        }
        #expect(cursorError?.code == .invalidFilter)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
    }

    @Test("listing pages through jobs newest first with filters")
    func listingPaginates() async throws {
        let db = try TestDatabase.get()
        try await db.client.jobs.enqueue(contentsOf: (0..<25).map { Echo(value: $0) }, options: .init(queue: "a"))
        try await db.client.jobs.enqueue(contentsOf: (0..<5).map { Echo(value: $0) }, options: .init(queue: "b"))
        var seen: [JobID] = []
        var filter = JobFilter(queue: "a", limit: 10)
        while true {
            let page = try await db.client.jobs.list(filter)
            seen += page.jobs.map(\.id)
            guard let next = page.nextCursor else { break }
            filter.cursor = next
        }
        #expect(seen.count == 25)
        #expect(seen == seen.sorted(by: >))
        #expect(Set(seen).count == 25)
        let available = try await db.client.jobs.list(JobFilter(states: [.available], limit: 100))
        #expect(available.jobs.count == 30)
        #expect(try await db.client.jobs.list(JobFilter(states: [.completed])).jobs.isEmpty)
    }
}

private struct Rollback: Error {}

private struct Measure: JobArguments {
    static let kind = "test.measure"
    var value: Double
}

private struct Note: JobArguments {
    static let kind = "test.note"
    var text: String
}
