import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    // MARK: Insert

    /// Rows per insert statement. A larger batch goes in as several statements in one transaction, and each
    /// statement's jobs are built and encoded while the server inserts the rows before, so client and server work
    /// at once.
    static let insertChunkSize = 250

    /// Jobs per COPY message of a large batch: each message's jobs are built while the server copies the ones
    /// before.
    static let copyChunkSize = 1000

    public func insert(_ batch: NewJobBatch, notify: Bool, logger: Logger) async throws -> [EnqueuedJob] {
        guard batch.count > 0 else { return [] }
        return try await self.run("enqueuing \(batch.count) job(s)") {
            guard batch.count > Self.insertChunkSize else {
                // One statement, through the procedure that commits before it returns.
                let jobs = try batch.jobs(in: 0..<batch.count)
                return try await self.withConnection { connection in
                    let statement = self.insertQuery(jobs[...], notify: notify, committing: true)
                    return try await self.insertChunk(jobs[...], statement: statement, on: connection, logger: logger)
                }
            }
            // One transaction for the whole batch: all or nothing, and durable when this returns.
            return try await self.committed(logger: logger) { connection in
                if batch.isPlainAndRunsAtOnce {
                    try await self.copy(batch, notify: notify, on: connection, logger: logger)
                } else {
                    try await self.insertChunks(batch, notify: notify, on: connection, logger: logger)
                }
            }
        }
    }

    /// Inserts jobs on `connection`, inside whatever transaction it has open: the jobs exist if and only if that
    /// transaction commits, and listening workers are woken when it does.
    public func insert(
        _ jobs: [NewJob],
        notify: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [EnqueuedJob] {
        guard !jobs.isEmpty else { return [] }
        return try await self.run("enqueuing \(jobs.count) job(s)") {
            try await self.insertChunks(NewJobBatch(jobs), notify: notify, on: connection, logger: logger)
        }
    }

    /// Inserts `batch` a chunk per statement, building and encoding the next chunk while the current one runs.
    private func insertChunks(
        _ batch: NewJobBatch,
        notify: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [EnqueuedJob] {
        let ranges = stride(from: 0, to: batch.count, by: Self.insertChunkSize).map {
            $0..<min($0 + Self.insertChunkSize, batch.count)
        }
        var enqueued: [EnqueuedJob] = []
        enqueued.reserveCapacity(batch.count)
        // PostgreSQL sends one notification per queue per transaction however often it is asked, so a statement
        // asks only for queues that no statement before it did (measured: the notification's per-row work was
        // about 6 % of the insert).
        var woken: Set<String> = []
        func makeStatement(for jobs: [NewJob]) -> InsertStatement {
            var wakes = false
            if notify {
                for job in jobs where job.runsAtOnce {
                    if woken.insert(job.queue).inserted { wakes = true }
                }
            }
            return self.insertQuery(jobs[...], notify: wakes)
        }
        var nextJobs = try batch.jobs(in: ranges[0])
        var nextStatement = makeStatement(for: nextJobs)
        for index in ranges.indices {
            let (jobs, statement) = (nextJobs, nextStatement)
            async let inserted = self.insertChunk(jobs[...], statement: statement, on: connection, logger: logger)
            if index + 1 < ranges.count {
                do {
                    nextJobs = try batch.jobs(in: ranges[index + 1])
                    nextStatement = makeStatement(for: nextJobs)
                } catch {
                    // The statement in flight is abandoned with the transaction; wait for it to finish first.
                    _ = try? await inserted
                    throw error
                }
            }
            enqueued += try await inserted
        }
        return enqueued
    }

    /// The columns a copied job supplies; the others take their defaults (state `available`, `run_at` and
    /// `created_at` the transaction's time, no attempts yet), as an insert of a job that runs at once sets them.
    private static let copyColumns = [
        "id", "kind", "queue", "namespace", "args", "priority", "max_attempts", "timeout_ms", "tags",
    ]

    /// Copies `batch` (plain jobs that run at once) into the table with `COPY … FROM STDIN`, inside the
    /// connection's transaction.
    ///
    /// COPY skips what an `INSERT … SELECT` spends per row on the bound arrays and the projection. Measured with
    /// psql, 20,000 rows in one transaction: 300-390 ms as 80 insert statements, 160-230 ms as the id draw
    /// (11-15 ms) and one COPY; the bench's single call of 20,000 went from 47-49k to 82-98k jobs/s. The ids are
    /// drawn first, in input order, since COPY returns none.
    private func copy(
        _ batch: NewJobBatch,
        notify: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [EnqueuedJob] {
        var binds = PostgresBindings(capacity: 4)
        binds.append(batch.count)
        binds.append(self.schema.insertChannel)
        binds.append(notify ? batch.queuesToWake.sorted() : [String]())
        binds.append(self.schema.quoted)
        var ids: [Int64] = []
        let prepared = try await connection.query(
            PostgresQuery(unsafeSQL: self.statements.copyPreparation, binds: binds),
            logger: logger
        )
        for try await (reserved, _, _) in prepared.decode(([Int64], Int64, String).self) {
            ids = reserved
        }
        guard ids.count == batch.count else {
            throw ConveyorError(.databaseError, "reserved \(ids.count) ids for \(batch.count) jobs")
        }
        try await connection.copyFrom(table: "jobs", columns: Self.copyColumns, logger: logger) { writer in
            var start = 0
            while start < batch.count {
                let range = start..<min(start + Self.copyChunkSize, batch.count)
                let jobs = try batch.jobs(in: range)
                var rows = ByteBuffer()
                rows.reserveCapacity(jobs.count * 96)
                for (index, job) in zip(range, jobs) {
                    guard job.isPlain, job.runsAtOnce else {
                        throw ConveyorError(
                            .invalidOption,
                            "job \(index) of the batch has a unique key, replay link or run time its request did "
                                + "not declare"
                        )
                    }
                    let id = ids[index]
                    CopyText.appendRow(id: id, job: job, to: &rows)
                }
                try await writer.write(rows)
                start = range.upperBound
            }
        }
        return ids.map { EnqueuedJob(id: JobID($0), isDuplicate: false) }
    }

    /// One chunk's insert statement, and whether it is the plain one (no job has a unique key or replay link).
    private struct InsertStatement {
        var query: PostgresQuery
        var isPlain: Bool
    }

    /// The insert of `jobs`: inside the connection's transaction, or `committing` on its own.
    private func insertQuery(_ jobs: ArraySlice<NewJob>, notify: Bool, committing: Bool = false) -> InsertStatement {
        let isPlain = jobs.allSatisfy(\.isPlain)
        var binds = PostgresBindings(capacity: 14)
        binds.append(jobs.map(\.kind))
        binds.append(jobs.map(\.queue))
        binds.append(jobs.map(\.namespace))
        binds.append(jobs.map(\.argumentsJSON))
        binds.append(jobs.map(\.priority))
        binds.append(
            jobs.map { job in job.runAt.map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) } ?? -1 }
        )
        binds.append(jobs.map(\.delayMilliseconds))
        binds.append(jobs.map(\.maxAttempts))
        binds.append(jobs.map { $0.timeoutMilliseconds ?? -1 })
        binds.append(jobs.map { $0.tags.joined(separator: ",") })
        if !isPlain {
            binds.append(jobs.map { $0.uniqueKey ?? "" })
            binds.append(jobs.map { $0.replayOf?.rawValue ?? 0 })
        }
        binds.append(self.schema.insertChannel)
        binds.append(notify)
        let sql =
            switch (isPlain, committing) {
            case (true, true): self.statements.insertPlainCommitted
            case (true, false): self.statements.insertPlain
            case (false, true): self.statements.insertCommitted
            case (false, false): self.statements.insert
            }
        return InsertStatement(query: PostgresQuery(unsafeSQL: sql, binds: binds), isPlain: isPlain)
    }

    /// Runs one chunk's insert and maps its result back to the chunk's jobs, in order.
    private func insertChunk(
        _ jobs: ArraySlice<NewJob>,
        statement: InsertStatement,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [EnqueuedJob] {
        let rows = try await connection.query(statement.query, logger: logger)
        if statement.isPlain {
            var ids: [Int64] = []
            for try await (inserted, _) in rows.decode(([Int64]?, Int64?).self) {
                ids = inserted ?? []
            }
            guard ids.count == jobs.count else {
                throw ConveyorError(.databaseError, "insert returned \(ids.count) ids for \(jobs.count) jobs")
            }
            return ids.map { EnqueuedJob(id: JobID($0), isDuplicate: false) }
        }
        var plainIDs: [Int64] = []
        var byKey: [UniqueKey: JobID] = [:]
        let result = rows.decode(([Int64]?, [Int64]?, [String]?, [String]?, Int64?).self)
        for try await (plain, keyedIDs, keyedNamespaces, keyedKeys, _) in result {
            plainIDs = plain ?? []
            for (index, id) in (keyedIDs ?? []).enumerated() {
                guard let namespace = keyedNamespaces?[index], let key = keyedKeys?[index] else { continue }
                byKey[UniqueKey(namespace: namespace, key: key)] = JobID(id)
            }
        }
        // Keys that were not inserted belong to existing jobs (or to an earlier row of this batch).
        let insertedKeys = Set(byKey.keys)
        let missing = jobs.compactMap { job -> UniqueKey? in
            guard let key = job.uniqueKey else { return nil }
            let unique = UniqueKey(namespace: job.namespace, key: key)
            return byKey[unique] == nil ? unique : nil
        }
        if !missing.isEmpty {
            var lookup = PostgresBindings()
            lookup.append(missing.map(\.namespace))
            lookup.append(missing.map(\.key))
            let existing = try await connection.query(
                PostgresQuery(unsafeSQL: self.statements.existingUniqueKeys, binds: lookup),
                logger: logger
            )
            for try await (id, namespace, key) in existing.decode((Int64, String, String).self) {
                byKey[UniqueKey(namespace: namespace, key: key)] = JobID(id)
            }
        }
        var withoutKey = plainIDs.makeIterator()
        var claimed = Set<UniqueKey>()
        return try jobs.map { job in
            guard let key = job.uniqueKey else {
                guard let id = withoutKey.next() else {
                    throw ConveyorError(.databaseError, "insert returned fewer rows than it was given")
                }
                return EnqueuedJob(id: JobID(id), isDuplicate: false)
            }
            let unique = UniqueKey(namespace: job.namespace, key: key)
            guard let id = byKey[unique] else {
                throw ConveyorError(
                    .duplicateJob,
                    "a job with this unique key was cancelled or dead-lettered while the insert ran; retry"
                )
            }
            let isFirst = insertedKeys.contains(unique) && claimed.insert(unique).inserted
            return EnqueuedJob(id: id, isDuplicate: !isFirst)
        }
    }

    // MARK: Worker path

    public func fetch(
        queue: String,
        limit: Int,
        workerID: String,
        leaseDuration: Duration,
        synchronousCommit: Bool,
        logger: Logger
    ) async throws -> [FetchedJob] {
        try await self.run("fetching jobs") {
            var binds = PostgresBindings(capacity: 5)
            binds.append(queue)
            binds.append(limit)
            binds.append(workerID)
            binds.append(leaseDuration.wholeMilliseconds)
            binds.append(synchronousCommit)
            let rows = try await self.client.query(
                PostgresQuery(unsafeSQL: self.statements.fetch, binds: binds),
                logger: logger
            )
            var jobs: [FetchedJob] = []
            jobs.reserveCapacity(limit)
            let decoded = rows.decode(
                ([Int64]?, [String]?, [String]?, [String]?, [Int32]?, [Int32]?, [Int64]?, [Int64]?, [String]?).self
            )
            for try await (ids, kinds, namespaces, arguments, attempts, limits, tokens, timeouts, tags) in decoded {
                // An empty fetch aggregates to NULL arrays.
                guard let ids else { continue }
                guard let kinds, let namespaces, let arguments, let attempts, let limits, let tokens, let timeouts,
                    let tags,
                    [
                        kinds.count, namespaces.count, arguments.count, attempts.count, limits.count, tokens.count,
                        timeouts.count, tags.count,
                    ].allSatisfy({ $0 == ids.count })
                else {
                    throw ConveyorError(.databaseError, "fetch returned arrays of different lengths")
                }
                for index in ids.indices {
                    jobs.append(
                        FetchedJob(
                            id: JobID(ids[index]),
                            kind: kinds[index],
                            queue: queue,
                            namespace: namespaces[index],
                            argumentsJSON: arguments[index],
                            attempt: Int(attempts[index]),
                            maxAttempts: Int(limits[index]),
                            leaseToken: tokens[index],
                            timeoutMilliseconds: timeouts[index] >= 0 ? timeouts[index] : nil,
                            tags: tags[index].isEmpty ? [] : tags[index].split(separator: ",").map(String.init)
                        )
                    )
                }
            }
            return jobs
        }
    }

    public func complete(_ completions: [JobCompletion], logger: Logger) async throws -> [JobID] {
        guard !completions.isEmpty else { return [] }
        return try await self.run("writing \(completions.count) result(s)") {
            let binds = Self.completionBinds(completions)
            let rows = try await self.client.query(
                PostgresQuery(unsafeSQL: self.statements.complete, binds: binds),
                logger: logger
            )
            var written: [JobID] = []
            for try await ids in rows.decode([Int64]?.self) {
                written += (ids ?? []).map { JobID($0) }
            }
            return written
        }
    }

    /// The binds of complete_jobs: one array per field, in the order of `completions`.
    static func completionBinds(_ completions: [JobCompletion]) -> PostgresBindings {
        var binds = PostgresBindings(capacity: 11)
        Self.appendCompletionBinds(completions, to: &binds)
        return binds
    }

    /// Appends the 11 arrays of complete_jobs to `binds`.
    static func appendCompletionBinds(_ completions: [JobCompletion], to binds: inout PostgresBindings) {
        binds.append(completions.map(\.lease.id.rawValue))
        binds.append(completions.map(\.lease.token))
        binds.append(completions.map(\.transition.state.rawValue))
        binds.append(completions.map { $0.transition.runAfter?.wholeMilliseconds ?? -1 })
        binds.append(completions.map { $0.transition.deadReason?.rawValue ?? "" })
        binds.append(completions.map(\.transition.outcome.rawValue))
        binds.append(completions.map { $0.transition.errorCode?.rawValue ?? "" })
        binds.append(completions.map { $0.transition.errorMessage ?? "" })
        binds.append(completions.map { $0.transition.countsAttempt ? 0 : -1 })
        binds.append(completions.map { $0.durationMicroseconds ?? -1 })
        binds.append(completions.map(\.requireExpiredLease))
    }

    public func heartbeat(
        _ leases: [JobLease],
        workerID: String,
        leaseDuration: Duration,
        logger: Logger
    ) async throws -> HeartbeatResult {
        try await self.run("extending leases") {
            var binds = PostgresBindings(capacity: 3)
            binds.append(leases.map(\.id.rawValue))
            binds.append(leases.map(\.token))
            binds.append(leaseDuration.wholeMilliseconds)
            // The one write that does not wait for its commit (see `committed`): nothing acts on an extension, and
            // one that is lost only lets the lease expire, as a missed heartbeat would. One round trip keeps
            // heartbeats cheap and prompt.
            let rows = try await self.client.query(
                PostgresQuery(unsafeSQL: self.statements.heartbeat, binds: binds),
                logger: logger
            )
            var result = HeartbeatResult(cancelRequested: [], lost: [])
            for try await (id, status) in rows.decode((Int64, Int).self) {
                switch status {
                case 1: result.cancelRequested.insert(JobID(id))
                case -1: result.lost.insert(JobID(id))
                default: break
                }
            }
            return result
        }
    }

    public func stageDueJobs(limit: Int, logger: Logger) async throws -> StagedJobs {
        try await self.run("staging due jobs") {
            var binds = PostgresBindings(capacity: 2)
            binds.append(limit)
            binds.append(self.schema.insertChannel)
            let rows = try await self.client.query(
                PostgresQuery(unsafeSQL: self.statements.stage, binds: binds),
                logger: logger
            )
            var result = StagedJobs(staged: 0, nextDue: nil)
            for try await (staged, _, nextDue) in rows.decode((Int64, Int64?, Int64?).self) {
                result = StagedJobs(staged: Int(staged), nextDue: nextDue.map { .milliseconds(max(0, $0)) })
            }
            return result
        }
    }

    public func expiredLeases(limit: Int, logger: Logger) async throws -> [ExpiredLease] {
        try await self.run("finding expired leases") {
            var binds = PostgresBindings()
            binds.append(limit)
            let rows = try await self.client.query(
                PostgresQuery(unsafeSQL: self.statements.expiredLeases, binds: binds),
                logger: logger
            )
            var expired: [ExpiredLease] = []
            for try await (id, token, kind, attempt, maxAttempts) in rows.decode((Int64, Int64, String, Int, Int).self)
            {
                expired.append(
                    ExpiredLease(
                        lease: JobLease(id: JobID(id), token: token),
                        kind: kind,
                        attempt: attempt,
                        maxAttempts: maxAttempts
                    )
                )
            }
            return expired
        }
    }

    public func listen(
        onListening: @escaping @Sendable () -> Void,
        onWake: @escaping @Sendable (String) -> Void,
        logger: Logger
    ) async throws {
        try await self.run("listening for notifications") {
            try await self.client.withConnection { connection in
                // postgres-nio runs this closure once the server confirmed the LISTEN; the sequence throws when the
                // connection fails.
                try await connection.listen(on: self.schema.insertChannel) { notifications in
                    onListening()
                    for try await notification in notifications {
                        onWake(notification.payload)
                    }
                }
            }
        }
    }

    public func notify(queues: [String], logger: Logger) async throws {
        guard !queues.isEmpty else { return }
        try await self.run("notifying workers") {
            try await self.withConnection { connection in
                try await self.notify(queues: queues, on: connection, logger: logger)
            }
        }
    }

    func notify(queue: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await self.notify(queues: [queue], on: connection, logger: logger)
    }

    func notify(queues: [String], on connection: PostgresConnection, logger: Logger) async throws {
        var binds = PostgresBindings()
        binds.append(self.schema.insertChannel)
        binds.append(queues)
        try await connection.query(PostgresQuery(unsafeSQL: self.statements.notify, binds: binds), logger: logger)
    }
}

struct UniqueKey: Hashable {
    var namespace: String
    var key: String
}
