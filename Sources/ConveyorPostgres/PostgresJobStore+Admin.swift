import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    public func job(_ id: JobID, logger: Logger) async throws -> JobRecord? {
        try await self.run("reading job \(id)") {
            var binds = PostgresBindings()
            binds.append(id.rawValue)
            return try await self.jobRecords(self.statements.job, binds: binds, logger: logger).first
        }
    }

    public func jobs(matching filter: JobFilter, logger: Logger) async throws -> JobPage {
        let cursor = try filter.validatedCursor()
        try filter.validateNames()
        return try await self.run("listing jobs") {
            var binds = PostgresBindings(capacity: 10)
            binds.append(filter.states.map(\.rawValue))
            binds.append(filter.queue ?? "")
            binds.append(filter.kind ?? "")
            binds.append(filter.namespace ?? "")
            binds.append(filter.tag ?? "")
            binds.append(cursor?.rawValue ?? 0)
            binds.append(filter.limit + 1)
            binds.append(filter.createdAfter)
            binds.append(filter.createdBefore)
            binds.append(filter.deadReason?.rawValue ?? "")
            var jobs = try await self.jobRecords(self.statements.list, binds: binds, logger: logger)
            var next: String?
            if jobs.count > filter.limit {
                jobs.removeLast(jobs.count - filter.limit)
                next = jobs.last.map { JobFilter.cursor(after: $0.id) }
            }
            return JobPage(jobs: jobs, nextCursor: next)
        }
    }

    public func cancel(_ id: JobID, by performer: String?, logger: Logger) async throws -> JobRecord {
        try await self.run("cancelling job \(id)") {
            var binds = PostgresBindings()
            binds.append(id.rawValue)
            binds.append(performer)
            let cancelled = try await self.committed(logger: logger) { [binds] connection in
                let rows = try await connection.query(
                    PostgresQuery(unsafeSQL: self.statements.cancel, binds: binds),
                    logger: logger
                )
                return try await Self.decodeJobs(rows).first
            }
            if let cancelled { return cancelled }
            guard let job = try await self.job(id, logger: logger) else {
                throw ConveyorError(.jobNotFound, "no job has id \(id)")
            }
            return job
        }
    }

    public func retry(_ id: JobID, by performer: String?, logger: Logger) async throws -> JobRecord {
        try await self.run("retrying job \(id)") {
            try await self.committed(logger: logger) { connection in
                var binds = PostgresBindings()
                binds.append(id.rawValue)
                binds.append(performer)
                let rows = try await connection.query(
                    PostgresQuery(unsafeSQL: self.statements.retry, binds: binds),
                    logger: logger
                )
                guard let job = try await Self.decodeJobs(rows).first else {
                    guard let job = try await self.job(id, logger: logger) else {
                        throw ConveyorError(.jobNotFound, "no job has id \(id)")
                    }
                    throw ConveyorError(
                        .invalidJobState,
                        "only discarded or cancelled jobs can be retried; job \(id) is \(job.state.rawValue)"
                    )
                }
                try await self.notify(queue: job.queue, on: connection, logger: logger)
                return job
            }
        }
    }

    public func replay(_ id: JobID, by performer: String?, logger: Logger) async throws -> EnqueuedJob {
        try await self.run("replaying job \(id)") {
            try await self.committed(logger: logger) { connection in
                var binds = PostgresBindings()
                binds.append(id.rawValue)
                binds.append(performer)
                let rows = try await connection.query(
                    PostgresQuery(unsafeSQL: self.statements.replay, binds: binds),
                    logger: logger
                )
                for try await (newID, queue) in rows.decode((Int64, String).self) {
                    try await self.notify(queue: queue, on: connection, logger: logger)
                    return EnqueuedJob(id: JobID(newID), isDuplicate: false)
                }
                guard let job = try await self.job(id, logger: logger) else {
                    throw ConveyorError(.jobNotFound, "no job has id \(id)")
                }
                throw ConveyorError(
                    .invalidJobState,
                    "only finished jobs can be replayed; job \(id) is \(job.state.rawValue)"
                )
            }
        }
    }

    public func setQueuePaused(_ queue: String, paused: Bool, by performer: String?, logger: Logger) async throws {
        try await self.run(paused ? "pausing queue" : "resuming queue") {
            try await self.committed(logger: logger) { connection in
                var binds = PostgresBindings()
                binds.append(queue)
                binds.append(paused)
                binds.append(performer)
                try await connection.query(
                    PostgresQuery(unsafeSQL: self.statements.pause, binds: binds),
                    logger: logger
                )
                if !paused {
                    try await self.notify(queue: queue, on: connection, logger: logger)
                }
            }
        }
    }

    public func setQueueConcurrencyLimit(
        _ queue: String,
        maxRunning: Int?,
        by performer: String?,
        logger: Logger
    ) async throws {
        try await self.run("setting the concurrency limit of queue \(queue)") {
            let s = self.schema.quoted
            try await self.committed(logger: logger) { connection in
                var name = PostgresBindings(capacity: 1)
                name.append(queue)
                var limit = name
                limit.append(maxRunning)
                var event = limit
                event.append(performer)
                // The queue's row lock orders concurrent changes of its limit. Each statement below reads a
                // snapshot of its own, taken after the one before: the slots are rebuilt from the jobs running
                // once every fetch that held a slot has committed (deleting a slot waits for the fetch that holds
                // it), and fetches meanwhile find no slot to take.
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).queues (name, max_running, updated_at) VALUES ($1, $2::integer, now())
                            ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running, updated_at = now()
                            """,
                        binds: limit
                    ),
                    logger: logger
                )
                try await connection.query(
                    PostgresQuery(unsafeSQL: "DELETE FROM \(s).queue_slots WHERE queue = $1", binds: name),
                    logger: logger
                )
                // Jobs running now, with or without a slot, are recorded in slots 1, 2, …: a limit set on a busy
                // queue counts them, and when more run than a lowered limit, those above it hold slots beyond it,
                // which keep as many slots below it unused until they finish (see fetch_jobs).
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).queue_slots (queue, slot, job_id, lease_token)
                            SELECT $1, coalesce(g, r.n), r.id, r.lease_token
                            FROM generate_series(1, coalesce($2::integer, 0)) AS g
                            FULL JOIN (
                                SELECT j.id, j.lease_token, (row_number() OVER (ORDER BY j.id))::integer AS n
                                FROM \(s).jobs j WHERE j.queue = $1 AND j.state = 'running'
                            ) AS r ON r.n = g
                            WHERE $2::integer IS NOT NULL
                            """,
                        binds: limit
                    ),
                    logger: logger
                )
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).events (subject, subject_id, action, performed_by, details)
                            VALUES ('queue', $1, 'limit_changed', $3,
                                    jsonb_build_object('max_running', coalesce($2::text, 'none')))
                            """,
                        binds: event
                    ),
                    logger: logger
                )
            }
        }
    }

    public func queues(logger: Logger) async throws -> [QueueInfo] {
        try await self.run("listing queues") {
            try await self.queueInfos(only: nil, logger: logger)
        }
    }

    public func queue(named name: String, logger: Logger) async throws -> QueueInfo? {
        try await self.run("reading queue \(name)") {
            try await self.queueInfos(only: name, logger: logger).first
        }
    }

    private func queueInfos(only name: String?, logger: Logger) async throws -> [QueueInfo] {
        var binds = PostgresBindings()
        binds.append(name ?? "")
        var infos: [String: QueueInfo] = [:]
        let paused = try await self.client.query(
            PostgresQuery(unsafeSQL: self.statements.pausedQueues, binds: binds),
            logger: logger
        )
        for try await (name, pausedAt, pausedBy, maxRunning, fair) in paused.decode(
            (String, Date?, String?, Int?, Bool).self
        ) {
            infos[name] = QueueInfo(
                name: name,
                isPaused: pausedAt != nil,
                pausedAt: pausedAt,
                pausedBy: pausedBy,
                maxRunning: maxRunning,
                isFair: fair,
                counts: [:]
            )
        }
        binds.append(QueueInfo.countLimit)
        let counts = try await self.client.query(
            PostgresQuery(unsafeSQL: self.statements.queueCounts, binds: binds),
            logger: logger
        )
        for try await (queue, state, count, capped) in counts.decode((String, String, Int, Bool).self) {
            var info = infos[queue] ?? QueueInfo(name: queue, isPaused: false, counts: [:])
            if let state = JobState(rawValue: state) {
                info.counts[state] = count
                if capped { info.cappedStates.insert(state) }
            }
            infos[queue] = info
        }
        return infos.values.sorted { $0.name < $1.name }
    }

    public func bulkDeadLetter(
        _ action: DeadLetterAction,
        matching filter: JobFilter,
        limit: Int,
        dryRun: Bool,
        by performer: String?,
        logger: Logger
    ) async throws -> Int {
        try filter.validateNames()
        guard (1...100_000).contains(limit) else {
            throw ConveyorError(.invalidFilter, "a bulk action takes 1 to 100000 jobs, got \(limit)")
        }
        return try await self.run("\(action.rawValue) of dead-lettered jobs") {
            let s = self.schema.quoted
            var binds = PostgresBindings(capacity: 10)
            binds.append(filter.queue ?? "")
            binds.append(filter.kind ?? "")
            binds.append(filter.namespace ?? "")
            binds.append(filter.tag ?? "")
            binds.append(filter.createdAfter)
            binds.append(filter.createdBefore)
            binds.append(filter.deadReason?.rawValue ?? "")
            binds.append(limit)
            if !dryRun { binds.append(performer) }
            // The dead-lettered jobs through their partial index, newest first. SKIP LOCKED: a job another
            // statement holds is left for the next call rather than waited for.
            // Retrying: a job whose unique key a live job holds is skipped, and of dead-lettered jobs sharing a key
            // only the newest is retried (two would break the key's uniqueness and fail the whole statement).
            let retryableKeys = """
                AND (j.unique_key IS NULL OR (
                    NOT EXISTS (
                        SELECT 1 FROM \(s).jobs o
                        WHERE o.namespace = j.namespace AND o.unique_key = j.unique_key
                          AND o.state NOT IN ('cancelled', 'discarded')
                    )
                    AND j.id = (
                        SELECT max(d.id) FROM \(s).jobs d
                        WHERE d.state = 'discarded' AND d.namespace = j.namespace AND d.unique_key = j.unique_key
                    )
                ))
                """
            let matching = """
                SELECT j.id FROM \(s).jobs j
                WHERE j.state = 'discarded'
                  AND ($1 = '' OR j.queue = $1)
                  AND ($2 = '' OR j.kind = $2)
                  AND ($3 = '' OR j.namespace = $3)
                  AND ($4 = '' OR $4 = ANY(j.tags))
                  AND ($5::timestamptz IS NULL OR j.created_at >= $5)
                  AND ($6::timestamptz IS NULL OR j.created_at < $6)
                  AND ($7 = '' OR j.dead_reason = $7)
                  \(action == .retry ? retryableKeys : "")
                ORDER BY j.id DESC
                LIMIT $8
                """
            let sql: String
            if dryRun {
                sql = "SELECT count(*)::bigint, ARRAY[]::text[] FROM (\(matching)) m"
            } else {
                let change =
                    action == .retry
                    ? """
                    UPDATE \(s).jobs j
                    SET state = 'available', run_at = now(), finished_at = NULL, dead_reason = NULL,
                        cancel_requested_at = NULL, max_attempts = greatest(j.max_attempts, j.attempt + 1)
                    FROM picked WHERE j.id = picked.id
                    RETURNING j.id, j.queue
                    """
                    : """
                    DELETE FROM \(s).jobs j USING picked WHERE j.id = picked.id RETURNING j.id, j.queue
                    """
                sql = """
                    WITH picked AS (\(matching) FOR UPDATE OF j SKIP LOCKED),
                    changed AS (\(change)),
                    event AS (
                        INSERT INTO \(s).events (subject, subject_id, action, from_state, to_state, performed_by,
                                                 details)
                        SELECT 'job', id::text, '\(action == .retry ? "retried" : "deleted")', 'discarded',
                               \(action == .retry ? "'available'" : "NULL"), $9, '{"bulk": "true"}'
                        FROM changed
                    )
                    SELECT count(*)::bigint, coalesce(array_agg(DISTINCT queue), ARRAY[]::text[]) FROM changed
                    """
            }
            return try await self.committed(logger: logger) { [binds] connection in
                let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                var count = 0
                var queues: [String] = []
                for try await (changed, touched) in rows.decode((Int64, [String]).self) {
                    count = Int(changed)
                    queues = touched
                }
                if action == .retry, !dryRun {
                    for queue in queues { try await self.notify(queue: queue, on: connection, logger: logger) }
                }
                return count
            }
        }
    }

    public func runnableCounts(logger: Logger) async throws -> [String: Int] {
        try await self.run("counting runnable jobs") {
            let rows = try await self.client.query(PostgresQuery(unsafeSQL: self.statements.runnableCounts))
            var counts: [String: Int] = [:]
            for try await (queue, count) in rows.decode((String, Int).self) {
                counts[queue] = count
            }
            return counts
        }
    }

    // MARK: Rows

    private func jobRecords(_ sql: String, binds: PostgresBindings, logger: Logger) async throws -> [JobRecord] {
        let rows = try await self.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        return try await Self.decodeJobs(rows)
    }

    static func decodeJobs(_ rows: PostgresRowSequence) async throws -> [JobRecord] {
        var jobs: [JobRecord] = []
        for try await row in rows {
            let (id, namespace, queue, kind, args, state, priority, attempt, maxAttempts, runAt, createdAt) =
                try row.decode((Int64, String, String, String, String, String, Int, Int, Int, Date, Date).self)
            let (_, _, _, _, _, _, _, _, _, _, _, finishedAt, leaseOwner, leaseExpiresAt, uniqueKey, tags) =
                try row.decode(
                    (
                        Int64, String, String, String, String, String, Int, Int, Int, Date, Date,
                        Date?, String?, Date?, String?, [String]
                    ).self
                )
            let columns = row.makeRandomAccess()
            let timeout = try columns[16].decode(Int64?.self)
            let replayOf = try columns[17].decode(Int64?.self)
            let deadReason = try columns[18].decode(String?.self)
            let cancelRequestedAt = try columns[19].decode(Date?.self)
            let lastError = try columns[20].decode(String?.self)
            let attemptsJSON = try columns[21].decode(String.self)
            guard let jobState = JobState(rawValue: state) else {
                throw ConveyorError(.databaseError, "job \(id) has an unknown state")
            }
            jobs.append(
                JobRecord(
                    id: JobID(id),
                    namespace: namespace,
                    queue: queue,
                    kind: kind,
                    argumentsJSON: args,
                    state: jobState,
                    priority: priority,
                    attempt: attempt,
                    maxAttempts: maxAttempts,
                    runAt: runAt,
                    createdAt: createdAt,
                    finishedAt: finishedAt,
                    leaseOwner: leaseOwner,
                    leaseExpiresAt: leaseExpiresAt,
                    uniqueKey: uniqueKey,
                    tags: tags,
                    timeoutMilliseconds: timeout,
                    replayOf: replayOf.map { JobID($0) },
                    deadReason: deadReason.flatMap(DeadLetterReason.init(rawValue:)),
                    cancelRequestedAt: cancelRequestedAt,
                    lastError: lastError,
                    attempts: try AttemptHistory.decode(attemptsJSON)
                )
            )
        }
        return jobs
    }
}

/// Decodes the `attempts` JSONB history.
///
/// Since migration 3 each attempt is stored as a positional array, `[attempt, worker, started_at, finished_at,
/// outcome, error_code, error, duration_us]`, with times as UTC timestamps without a zone
/// (`YYYY-MM-DDTHH:MM:SS[.ffffff]`): building it costs the completion a third of what an object did. Attempts
/// written before are objects with those keys and `…Z` times; both decode.
enum AttemptHistory {
    static func decode(_ json: String) throws -> [AttemptRecord] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = Self.parse(text) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "not a UTC timestamp: \(text)")
                )
            }
            return date
        }
        return try decoder.decode([StoredAttempt].self, from: Data(json.utf8)).map(\.record)
    }

    /// One stored attempt, in either layout.
    struct StoredAttempt: Decodable {
        var record: AttemptRecord

        init(from decoder: any Decoder) throws {
            guard var fields = try? decoder.unkeyedContainer() else {
                self.record = try AttemptRecord(from: decoder)
                return
            }
            let attempt = try fields.decode(Int.self)
            let worker = try fields.decodeIfPresent(String.self) ?? ""
            let startedAt = try fields.decode(Date.self)
            let finishedAt = try fields.decode(Date.self)
            let outcome = try fields.decode(AttemptOutcome.self)
            let errorCode = try fields.decodeIfPresent(AttemptErrorCode.self)
            let error = try fields.decodeIfPresent(String.self)
            let duration = try fields.decode(Int64.self)
            self.record = AttemptRecord(
                attempt: attempt,
                worker: worker,
                startedAt: startedAt,
                finishedAt: finishedAt,
                outcome: outcome,
                errorCode: errorCode,
                error: error,
                durationMicroseconds: duration
            )
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS`, optionally with one to six fractional digits and a final `Z`, as UTC: the
    /// forms the completion statements write.
    static func parse(_ text: String) -> Date? {
        var bytes = Array(text.utf8)
        if bytes.last == UInt8(ascii: "Z") { bytes.removeLast() }
        guard bytes.count >= 19, bytes.count != 20, bytes.count <= 26 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var micros = 0
        if bytes.count > 19 {
            guard bytes[19] == UInt8(ascii: "."), let fraction = number(20..<bytes.count) else { return nil }
            micros = fraction
            for _ in bytes.count..<26 { micros *= 10 }
        }
        var components = DateComponents()
        components.year = year
        components.month = month
        components.day = day
        components.hour = hour
        components.minute = minute
        components.second = second
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        guard let date = calendar.date(from: components) else { return nil }
        return date.addingTimeInterval(Double(micros) / 1_000_000)
    }
}
