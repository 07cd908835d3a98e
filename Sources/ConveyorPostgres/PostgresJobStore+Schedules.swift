import Conveyor
import Foundation
import Logging
import PostgresNIO

/// Cron schedules (migration 10): definitions, pause and resume, and the scheduler's pass.
extension PostgresJobStore {
    public func defineSchedule(
        _ schedule: CronSchedule,
        firstTick: Date?,
        by performer: String?,
        logger: Logger
    ) async throws {
        let options = schedule.options
        var binds = PostgresBindings()
        binds.append(schedule.name)
        binds.append(schedule.expression.source)
        binds.append(schedule.timeZone.identifier)
        binds.append(schedule.catchUp.rawValue)
        binds.append(schedule.kind)
        binds.append(schedule.argumentsJSON)
        binds.append(options.queue ?? NewJob.Defaults.queue)
        binds.append(options.namespace ?? NewJob.Defaults.namespace)
        binds.append(options.priority ?? NewJob.Defaults.priority)
        binds.append(options.maxAttempts ?? NewJob.Defaults.maxAttempts)
        binds.append(options.timeout?.wholeMilliseconds)
        binds.append(options.tags ?? [])
        let definition = binds
        binds.append(firstTick)
        _ = try await self.run("defining schedule \(schedule.name)") {
            try await self.committed(logger: logger) { [binds, definition] connection in
                // Whether the stored definition is this one already (a worker redefining it at start): then no
                // event is recorded. The row is locked so that two definers do not both miss the change.
                let same = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT (expression, time_zone, catch_up, kind, args, queue, namespace, priority::int,
                                    max_attempts, timeout_ms, tags)
                                IS NOT DISTINCT FROM ($2, $3, $4, $5, $6::jsonb, $7, $8, $9::int, $10, $11, $12::text[])
                            FROM \(self.schema.quoted).cron_schedules
                            WHERE name = $1
                            FOR UPDATE
                            """,
                        binds: definition
                    ),
                    logger: logger
                ).collect().first?.decode(Bool.self)
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(self.schema.quoted).cron_schedules AS s (
                                name, expression, time_zone, catch_up, kind, args, queue, namespace, priority,
                                max_attempts, timeout_ms, tags, next_tick_at
                            )
                            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13)
                            ON CONFLICT (name) DO UPDATE
                            SET next_tick_at = CASE
                                    WHEN s.expression = excluded.expression AND s.time_zone = excluded.time_zone
                                        AND s.next_tick_at IS NOT NULL
                                    THEN s.next_tick_at ELSE excluded.next_tick_at END,
                                expression = excluded.expression, time_zone = excluded.time_zone,
                                catch_up = excluded.catch_up, kind = excluded.kind, args = excluded.args,
                                queue = excluded.queue, namespace = excluded.namespace, priority = excluded.priority,
                                max_attempts = excluded.max_attempts, timeout_ms = excluded.timeout_ms,
                                tags = excluded.tags, updated_at = now()
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                if same != true {
                    try await self.recordEvent(
                        .schedule(schedule.name),
                        .defined,
                        from: nil,
                        to: nil,
                        by: performer,
                        details: ["cron": schedule.expression.source, "time_zone": schedule.timeZone.identifier],
                        on: connection,
                        logger: logger
                    )
                }
            }
        }
    }

    public func schedules(named name: String?, logger: Logger) async throws -> [CronScheduleRecord] {
        var binds = PostgresBindings()
        binds.append(name ?? "")
        return try await self.run("reading schedules") {
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: "\(self.scheduleColumns) WHERE $1 = '' OR name = $1 ORDER BY name",
                    binds: binds
                ),
                logger: logger
            )
            return try await Self.decodeSchedules(rows, logger: logger).compactMap { $0.record }
        }
    }

    public func setSchedulePaused(
        _ name: String,
        paused: Bool,
        nextTick: Date?,
        by performer: String?,
        logger: Logger
    ) async throws -> Bool {
        var binds = PostgresBindings()
        binds.append(name)
        binds.append(paused)
        binds.append(performer)
        binds.append(nextTick)
        return try await self.run(paused ? "pausing schedule \(name)" : "resuming schedule \(name)") {
            try await self.committed(logger: logger) { [binds] connection in
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            UPDATE \(self.schema.quoted).cron_schedules
                            SET paused_at = CASE WHEN $2::bool THEN coalesce(paused_at, now()) END,
                                paused_by = CASE WHEN $2::bool THEN coalesce(paused_by, $3) END,
                                next_tick_at = CASE WHEN $2::bool THEN next_tick_at ELSE $4 END,
                                updated_at = now()
                            WHERE name = $1
                            RETURNING 1
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                guard try await rows.collect().count == 1 else { return false }
                try await self.recordEvent(
                    .schedule(name),
                    paused ? .paused : .resumed,
                    from: nil,
                    to: nil,
                    by: performer,
                    on: connection,
                    logger: logger
                )
                return true
            }
        }
    }

    public func deleteSchedule(_ name: String, by performer: String?, logger: Logger) async throws -> Bool {
        var binds = PostgresBindings()
        binds.append(name)
        return try await self.run("deleting schedule \(name)") {
            try await self.committed(logger: logger) { [binds] connection in
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(self.schema.quoted).cron_schedules WHERE name = $1 RETURNING 1",
                        binds: binds
                    ),
                    logger: logger
                )
                guard try await rows.collect().count == 1 else { return false }
                try await self.recordEvent(
                    .schedule(name),
                    .deleted,
                    from: nil,
                    to: nil,
                    by: performer,
                    on: connection,
                    logger: logger
                )
                return true
            }
        }
    }

    public func fireDueSchedules(
        limit: Int,
        plan: @escaping @Sendable (CronScheduleRecord, Date) -> ScheduleFiring,
        logger: Logger
    ) async throws -> [(name: String, jobs: [EnqueuedJob])] {
        var binds = PostgresBindings()
        binds.append(max(1, limit))
        return try await self.run("firing due schedules") {
            // One indexed read while nothing is due, which is nearly always: no transaction per pass.
            let anyDue = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT 1 FROM \(self.schema.quoted).cron_schedules
                        WHERE paused_at IS NULL AND next_tick_at IS NOT NULL AND next_tick_at <= now()
                        LIMIT 1
                        """
                ),
                logger: logger
            )
            guard try await anyDue.collect().count > 0 else { return [] }
            return try await self.committed(logger: logger) { [binds] connection in
                // SKIP LOCKED: a schedule another scheduler is firing is left to it. The clock is the database's,
                // so schedulers on machines whose clocks differ agree on what is due.
                let due = try await Self.decodeSchedules(
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: """
                                \(self.scheduleColumns)
                                WHERE paused_at IS NULL AND next_tick_at IS NOT NULL AND next_tick_at <= now()
                                ORDER BY next_tick_at
                                LIMIT $1
                                FOR UPDATE SKIP LOCKED
                                """,
                            binds: binds
                        ),
                        logger: logger
                    ),
                    logger: logger
                )
                guard !due.isEmpty else { return [] }
                let now = try await connection.query("SELECT now()", logger: logger).collect().first?.decode(
                    Date.self
                )
                var fired: [(name: String, jobs: [EnqueuedJob])] = []
                for (name, record) in due {
                    // A row this build cannot read (a newer build's expression, say) is put off for a minute.
                    let firing =
                        record.map { plan($0, now ?? Date()) }
                        ?? ScheduleFiring(jobs: [], lastTick: nil, nextTick: (now ?? Date()).addingTimeInterval(60))
                    let jobs = try await self.insert(firing.jobs, notify: true, on: connection, logger: logger)
                    var update = PostgresBindings()
                    update.append(name)
                    update.append(firing.nextTick)
                    update.append(firing.lastTick)
                    update.append(jobs.last?.id.rawValue)
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: """
                                UPDATE \(self.schema.quoted).cron_schedules
                                SET next_tick_at = $2, last_tick_at = coalesce($3, last_tick_at),
                                    last_job_id = coalesce($4, last_job_id), updated_at = now()
                                WHERE name = $1
                                """,
                            binds: update
                        ),
                        logger: logger
                    )
                    fired.append((name, jobs))
                }
                return fired
            }
        }
    }

    private var scheduleColumns: String {
        """
        SELECT name, expression, time_zone, catch_up, kind, args::text, queue, namespace, priority::int,
               max_attempts, timeout_ms, tags, next_tick_at, last_tick_at, last_job_id, paused_at, paused_by,
               created_at, updated_at
        FROM \(self.schema.quoted).cron_schedules
        """
    }

    /// Each row's name and its record; the record is `nil` for a row whose expression, time zone or catch-up
    /// this build cannot read (logged).
    private static func decodeSchedules(
        _ rows: PostgresRowSequence,
        logger: Logger
    ) async throws -> [(name: String, record: CronScheduleRecord?)] {
        var schedules: [(name: String, record: CronScheduleRecord?)] = []
        for try await row in rows {
            let columns = row.makeRandomAccess()
            let name = try columns[0].decode(String.self)
            let timeout = try columns[10].decode(Int64?.self)
            let options = JobOptions(
                queue: try columns[6].decode(String.self),
                priority: try columns[8].decode(Int.self),
                maxAttempts: try columns[9].decode(Int.self),
                timeout: timeout.map { .milliseconds($0) },
                tags: try columns[11].decode([String].self),
                namespace: try columns[7].decode(String.self)
            )
            let schedule: CronSchedule
            do {
                schedule = try CronSchedule(
                    name: name,
                    cron: try columns[1].decode(String.self),
                    timeZone: try columns[2].decode(String.self),
                    kind: try columns[4].decode(String.self),
                    argumentsJSON: try columns[5].decode(String.self),
                    options: options,
                    catchUp: CronSchedule.CatchUp(rawValue: try columns[3].decode(String.self)) ?? .latest
                )
            } catch let error as ConveyorError {
                logger.warning(
                    "a stored schedule cannot be read",
                    metadata: ["schedule": "\(name)", "error": "\(error)"]
                )
                schedules.append((name, nil))
                continue
            }
            let record = CronScheduleRecord(
                schedule: schedule,
                nextTickAt: try columns[12].decode(Date?.self),
                lastTickAt: try columns[13].decode(Date?.self),
                lastJobID: try columns[14].decode(Int64?.self).map(JobID.init(rawValue:)),
                pausedAt: try columns[15].decode(Date?.self),
                pausedBy: try columns[16].decode(String?.self),
                createdAt: try columns[17].decode(Date.self),
                updatedAt: try columns[18].decode(Date.self)
            )
            schedules.append((name, record))
        }
        return schedules
    }
}
