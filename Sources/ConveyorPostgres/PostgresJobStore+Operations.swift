import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    public func events(for subject: EventSubject, limit: Int, logger: Logger) async throws -> [EventRecord] {
        try await self.run("reading events") {
            let s = self.schema.quoted
            var binds = PostgresBindings()
            binds.append(subject.kind)
            binds.append(subject.id)
            binds.append(max(1, min(limit, 10_000)))
            // The newest `limit` through the subject index, then put back in order.
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT id, at, action, from_state, to_state, performed_by, details::text
                        FROM (
                            SELECT * FROM \(s).events
                            WHERE subject = $1 AND subject_id = $2
                            ORDER BY id DESC
                            LIMIT $3
                        ) newest
                        ORDER BY id
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var events: [EventRecord] = []
            for try await (id, at, action, from, to, performer, details) in rows.decode(
                (Int64, Date, String, String?, String?, String?, String).self
            ) {
                guard let action = EventRecord.Action(rawValue: action) else { continue }
                events.append(
                    EventRecord(
                        id: id,
                        at: at,
                        subject: subject,
                        action: action,
                        fromState: from,
                        toState: to,
                        performedBy: performer,
                        details: Self.flatObject(details)
                    )
                )
            }
            return events
        }
    }

    /// Records an event in the transaction that `connection` has open.
    func recordEvent(
        _ subject: EventSubject,
        _ action: EventRecord.Action,
        from: String?,
        to: String?,
        by performer: String?,
        details: [String: String] = [:],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        var binds = PostgresBindings(capacity: 7)
        binds.append(subject.kind)
        binds.append(subject.id)
        binds.append(action.rawValue)
        binds.append(from)
        binds.append(to)
        binds.append(performer)
        binds.append(Self.jsonObject(details))
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(self.schema.quoted).events (subject, subject_id, action, from_state, to_state,
                                                             performed_by, details)
                    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
                    """,
                binds: binds
            ),
            logger: logger
        )
    }

    @discardableResult
    public func registerWorker(_ presence: WorkerPresence, logger: Logger) async throws -> WorkerRegistration {
        try await self.run("registering worker \(presence.id)") {
            let s = self.schema.quoted
            var binds = PostgresBindings(capacity: 8)
            binds.append(presence.id)
            binds.append(Self.jsonObject(presence.queues))
            binds.append(presence.kinds)
            binds.append(presence.workflows)
            binds.append(presence.startedAt)
            binds.append(presence.pool)
            binds.append(Self.jsonObject(presence.running))
            binds.append(Array(presence.queues.keys))
            // One statement: the upsert, the rows of workers that stopped refreshing a day ago (crashed), and
            // whether the worker's pool is paused. A stopped row is revived only by a process that started after
            // the stop (a restart under the same id), never by a late heartbeat of the process that stopped.
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH gone AS (
                            DELETE FROM \(s).workers WHERE heartbeat_at < now() - interval '1 day'
                        ),
                        upserted AS (
                            INSERT INTO \(s).workers (id, queues, kinds, workflows, started_at, pool, running)
                            VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7::jsonb)
                            ON CONFLICT (id) DO UPDATE
                            SET queues = excluded.queues, kinds = excluded.kinds, workflows = excluded.workflows,
                                started_at = excluded.started_at, stopped_at = NULL, heartbeat_at = now(),
                                pool = excluded.pool, running = excluded.running
                            WHERE workers.stopped_at IS NULL OR excluded.started_at > workers.stopped_at
                        )
                        SELECT EXISTS (SELECT 1 FROM \(s).worker_pools WHERE name = $6 AND paused_at IS NOT NULL),
                               ARRAY(SELECT q FROM unnest($8::text[]) AS q
                                     WHERE EXISTS (SELECT 1 FROM \(s).tenants WHERE max_running IS NOT NULL)
                                        OR EXISTS (SELECT 1 FROM \(s).queues
                                                   WHERE name = q AND max_running IS NOT NULL))
                        """,
                    binds: binds
                ),
                logger: logger
            )
            for try await (paused, limited) in rows.decode((Bool, [String]).self) {
                return WorkerRegistration(poolPaused: paused, limitedQueues: Set(limited))
            }
            return WorkerRegistration(poolPaused: false)
        }
    }

    public func removeWorker(id: String, logger: Logger) async throws {
        try await self.run("removing worker \(id)") {
            var binds = PostgresBindings()
            binds.append(id)
            try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        UPDATE \(self.schema.quoted).workers SET stopped_at = coalesce(stopped_at, now()) WHERE id = $1
                        """,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    public func workers(heartbeatWithin: Duration, logger: Logger) async throws -> [WorkerPresence] {
        try await self.run("listing workers") {
            var binds = PostgresBindings()
            binds.append(heartbeatWithin.wholeMilliseconds)
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT id, pool, queues::text, running::text, kinds, workflows, started_at, heartbeat_at
                        FROM \(self.schema.quoted).workers
                        WHERE heartbeat_at >= now() - $1 * interval '1 millisecond' AND stopped_at IS NULL
                        ORDER BY id
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var workers: [WorkerPresence] = []
            for try await (id, pool, queues, running, kinds, workflows, startedAt, heartbeatAt) in rows.decode(
                (String, String, String, String, [String], [String], Date, Date).self
            ) {
                workers.append(
                    WorkerPresence(
                        id: id,
                        pool: pool,
                        queues: Self.flatObject(queues).compactMapValues { Int($0) },
                        running: Self.flatObject(running).compactMapValues { Int($0) },
                        kinds: kinds,
                        workflows: workflows,
                        startedAt: startedAt,
                        heartbeatAt: heartbeatAt
                    )
                )
            }
            return workers
        }
    }

    public func pausedPools(logger: Logger) async throws -> [(name: String, at: Date?, by: String?)] {
        try await self.run("listing pool pauses") {
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT name, paused_at, paused_by FROM \(self.schema.quoted).worker_pools
                        WHERE paused_at IS NOT NULL ORDER BY name
                        """
                ),
                logger: logger
            )
            var paused: [(name: String, at: Date?, by: String?)] = []
            for try await (name, at, by) in rows.decode((String, Date?, String?).self) {
                paused.append((name, at, by))
            }
            return paused
        }
    }

    public func setPoolPaused(_ pool: String, paused: Bool, by performer: String?, logger: Logger) async throws {
        try await self.run(paused ? "pausing pool" : "resuming pool") {
            var binds = PostgresBindings(capacity: 3)
            binds.append(pool)
            binds.append(paused)
            binds.append(performer)
            try await self.client.query(
                PostgresQuery(
                    unsafeSQL: self.statements.pausePool,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    public func jobsAhead(of job: JobRecord, limit: Int, logger: Logger) async throws -> Int {
        try await self.run("counting the jobs ahead of job \(job.id)") {
            var binds = PostgresBindings()
            binds.append(job.queue)
            binds.append(job.priority)
            binds.append(job.runAt)
            binds.append(job.id.rawValue)
            binds.append(max(1, limit))
            binds.append(job.namespace)
            // Through the index of available jobs, in fetch order, stopping at `limit`. In a fair queue only the
            // jobs of the same namespace are ahead: the others are in other tenants' shares.
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT count(*) FROM (
                            SELECT 1 FROM \(self.schema.quoted).jobs
                            WHERE state = 'available' AND queue = $1 AND (priority, run_at, id) < ($2, $3, $4)
                              AND (namespace = $6
                                   OR NOT coalesce((SELECT fair FROM \(self.schema.quoted).queues WHERE name = $1), false))
                            LIMIT $5
                        ) ahead
                        """,
                    binds: binds
                ),
                logger: logger
            )
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    public func databaseNow(logger: Logger) async throws -> Date {
        try await self.run("reading the database clock") {
            let rows = try await self.client.query("SELECT now()", logger: logger)
            for try await now in rows.decode(Date.self) { return now }
            throw ConveyorError(.databaseError, "SELECT now() returned no row")
        }
    }

    public func schemaStatus(logger: Logger) async throws -> SchemaStatus {
        try await self.run("reading the schema's migrations") {
            let latest = Migrations.all.map(\.version).max() ?? 0
            var binds = PostgresBindings()
            binds.append(self.schema.name)
            // to_regclass is NULL when the bookkeeping table does not exist: a schema never migrated.
            let exists = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT to_regclass(quote_ident($1) || '.schema_migrations') IS NOT NULL",
                    binds: binds
                ),
                logger: logger
            )
            var found = false
            for try await value in exists.decode(Bool.self) { found = value }
            guard found else { return SchemaStatus(applied: [], latestKnown: latest) }
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: "SELECT version FROM \(self.schema.quoted).schema_migrations ORDER BY version"
                ),
                logger: logger
            )
            var applied: [Int] = []
            for try await version in rows.decode(Int.self) { applied.append(version) }
            return SchemaStatus(applied: applied, latestKnown: latest)
        }
    }

    public func deadLetterCounts(logger: Logger) async throws -> [DeadLetterReason: Int] {
        try await self.run("counting dead-lettered jobs") {
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT coalesce(dead_reason, 'DISCARDED'), count(*)
                        FROM \(self.schema.quoted).jobs
                        WHERE state = 'discarded'
                        GROUP BY 1
                        """
                ),
                logger: logger
            )
            var counts: [DeadLetterReason: Int] = [:]
            for try await (reason, count) in rows.decode((String, Int).self) {
                counts[DeadLetterReason(rawValue: reason) ?? .discarded, default: 0] += count
            }
            return counts
        }
    }

    static func jsonObject<Value: Encodable>(_ values: [String: Value]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(values)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// A JSON object's members as text (numbers and booleans as written; nested values dropped).
    static func flatObject(_ json: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            return [:]
        }
        var flat: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: flat[key] = text
            case let number as NSNumber: flat[key] = number.stringValue
            default: continue
            }
        }
        return flat
    }
}
