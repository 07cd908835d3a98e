import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    // MARK: Ingest decisions

    /// The longest reason stored with a decision; a longer one is cut (reasons are one-line error messages).
    static let longestIngestReason = 1000

    public func recordIngestDecisions(_ decisions: [IngestDecision], logger: Logger) async throws {
        guard !decisions.isEmpty else { return }
        try await self.run("recording \(decisions.count) ingest decision(s)") {
            var binds = PostgresBindings(capacity: 8)
            // Optional text travels as "" (read back as NULL: no valid name is empty); PostgreSQL's text refuses
            // the NUL character, which would lose the whole record, so it is replaced.
            binds.append(decisions.map { Self.storable($0.code, limit: 128) })
            binds.append(decisions.map { Self.storable($0.reason, limit: Self.longestIngestReason) })
            binds.append(decisions.map { Self.storable($0.queue ?? "", limit: 128) })
            binds.append(decisions.map { Self.storable($0.namespace ?? "", limit: 128) })
            binds.append(decisions.map { Self.storable($0.kind ?? "", limit: 128) })
            binds.append(decisions.map { Int64(clamping: $0.jobs) })
            binds.append(decisions.map { Self.storable($0.source ?? "", limit: 64) })
            // A decision's own time when it has one (tests and imports pin it), else the insert's.
            binds.append(decisions.map { $0.at?.timeIntervalSince1970 ?? .nan })
            try await self.committed(logger: logger) { [binds] connection in
                _ = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(self.schema.quoted).ingest_decisions
                                (at, code, reason, queue, namespace, kind, jobs, source)
                            SELECT CASE WHEN at = 'NaN' THEN now() ELSE to_timestamp(at) END, code, reason,
                                   nullif(queue, ''), nullif(namespace, ''), nullif(kind, ''),
                                   least(greatest(jobs, 0), 2147483647)::integer, nullif(source, '')
                            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                                        $7::text[], $8::float8[])
                                 AS d(code, reason, queue, namespace, kind, jobs, source, at)
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
            }
        }
    }

    public func ingestDecisions(
        matching filter: IngestDecisionFilter,
        logger: Logger
    ) async throws -> IngestDecisionPage {
        let before = try filter.validatedCursor()
        for (value, code) in [
            (filter.code, ConveyorError.Code.invalidFilter), (filter.queue, .invalidQueueName),
            (filter.namespace, .invalidNamespace),
        ] {
            if let value, let violation = NameValidation.checkLabel(value) {
                throw ConveyorError(code, "invalid filter value: \(violation.explanation)")
            }
        }
        return try await self.run("listing ingest decisions") {
            var binds = PostgresBindings(capacity: 5)
            binds.append(filter.code ?? "")
            binds.append(filter.queue ?? "")
            binds.append(filter.namespace ?? "")
            binds.append(before ?? 0)
            binds.append(filter.limit + 1)
            // Keyset pagination down the primary key, newest first: each page starts below the last id of the one
            // before, so a page costs its own rows however deep it is (an OFFSET would read every row above it).
            // The table holds only refusals within the retention, so the filters are checked on the rows read.
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT id, at, code, reason, queue, namespace, kind, jobs, source
                        FROM \(self.schema.quoted).ingest_decisions
                        WHERE ($1 = '' OR code = $1)
                          AND ($2 = '' OR queue = $2)
                          AND ($3 = '' OR namespace = $3)
                          AND ($4 = 0 OR id < $4)
                        ORDER BY id DESC
                        LIMIT $5
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var decisions: [IngestDecision] = []
            for try await (id, at, code, reason, queue, namespace, kind, jobs, source) in rows.decode(
                (Int64, Date, String, String, String?, String?, String?, Int, String?).self
            ) {
                decisions.append(
                    IngestDecision(
                        id: id,
                        at: at,
                        code: code,
                        reason: reason,
                        queue: queue,
                        namespace: namespace,
                        kind: kind,
                        jobs: jobs,
                        source: source
                    )
                )
            }
            var next: String?
            if decisions.count > filter.limit {
                decisions.removeLast(decisions.count - filter.limit)
                next = decisions.last?.id.map { IngestDecisionFilter.cursor(after: $0) }
            }
            return IngestDecisionPage(decisions: decisions, nextCursor: next)
        }
    }

    public func pruneIngestDecisions(olderThan age: Duration, limit: Int, logger: Logger) async throws -> Int {
        guard limit > 0 else { return 0 }
        return try await self.run("pruning ingest decisions") {
            var binds = PostgresBindings(capacity: 2)
            binds.append(max(0, age.wholeMilliseconds))
            binds.append(limit)
            return try await self.committed(logger: logger) { [binds] connection in
                // At most `limit` rows per call, found through the index on `at`, so one call never holds a long
                // transaction over a large backlog. Workers prune at once: SKIP LOCKED lets each take rows that no
                // other pruner is deleting, rather than wait for them and then find them gone.
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            WITH deleted AS (
                                DELETE FROM \(self.schema.quoted).ingest_decisions
                                WHERE id IN (
                                    SELECT id FROM \(self.schema.quoted).ingest_decisions
                                    WHERE at < now() - $1 * interval '1 millisecond'
                                    LIMIT $2
                                    FOR UPDATE SKIP LOCKED
                                )
                                RETURNING 1
                            )
                            SELECT count(*) FROM deleted
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                for try await count in rows.decode(Int.self) { return count }
                return 0
            }
        }
    }

    // MARK: Enqueue limits

    public func enqueueLimits(logger: Logger) async throws -> [EnqueueLimit] {
        // On the enqueue path (the client refreshes its copy of the limits before an insert), so the connection
        // is waited for as an insert waits for it: NO_CONNECTION rather than a hang when the pool is not running.
        try await self.run("reading enqueue limits") {
            let sql = self.limitsQuery
            return try await self.withConnection { connection in
                try await Self.decodeLimits(try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger))
            }
        }
    }

    /// Every configured enqueue limit, read on `connection` inside whatever transaction it has open: the
    /// transactional enqueue refreshes its client's copy of the limits this way, so that it needs no second
    /// connection from the pool while the caller holds one.
    public func enqueueLimits(on connection: PostgresConnection, logger: Logger) async throws -> [EnqueueLimit] {
        try await self.run("reading enqueue limits") {
            try await Self.decodeLimits(
                try await connection.query(PostgresQuery(unsafeSQL: self.limitsQuery), logger: logger)
            )
        }
    }

    private var limitsQuery: String {
        "SELECT scope, name, per_second, burst FROM \(self.schema.quoted).enqueue_limits ORDER BY scope, name"
    }

    private static func decodeLimits(_ rows: PostgresRowSequence) async throws -> [EnqueueLimit] {
        var limits: [EnqueueLimit] = []
        for try await (scope, name, perSecond, burst) in rows.decode((String, String, Double, Int).self) {
            // The table's CHECK allows only the two scopes; a row of another would be a newer build's.
            guard let scope = EnqueueLimit.Scope(rawValue: scope) else { continue }
            limits.append(EnqueueLimit(scope: scope, name: name, perSecond: perSecond, burst: burst))
        }
        return limits
    }

    public func setEnqueueLimit(_ limit: EnqueueLimit, logger: Logger) async throws {
        try limit.validate()
        try await self.run("setting the enqueue limit of \(limit.scope.rawValue) \(limit.name)") {
            var binds = PostgresBindings(capacity: 4)
            binds.append(limit.scope.rawValue)
            binds.append(limit.name)
            binds.append(limit.perSecond)
            binds.append(limit.burst)
            // A new or changed limit starts with a full bucket: a change never leaves a queue refused for what
            // it did under the old setting. The upsert locks the row, so it waits for an enqueue taking tokens
            // from it and that enqueue's bucket state is then replaced.
            try await self.committed(logger: logger) { [binds] connection in
                _ = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(self.schema.quoted).enqueue_limits AS l
                                (scope, name, per_second, burst, tokens)
                            VALUES ($1, $2, $3, $4, $4)
                            ON CONFLICT (scope, name) DO UPDATE
                            SET per_second = excluded.per_second, burst = excluded.burst, tokens = excluded.burst,
                                refilled_at = now(), updated_at = now()
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
            }
        }
    }

    public func removeEnqueueLimit(scope: EnqueueLimit.Scope, name: String, logger: Logger) async throws -> Bool {
        try await self.run("removing the enqueue limit of \(scope.rawValue) \(name)") {
            var binds = PostgresBindings(capacity: 2)
            binds.append(scope.rawValue)
            binds.append(name)
            return try await self.committed(logger: logger) { [binds] connection in
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            DELETE FROM \(self.schema.quoted).enqueue_limits WHERE scope = $1 AND name = $2
                            RETURNING 1
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                var removed = false
                for try await _ in rows.decode(Int.self) { removed = true }
                return removed
            }
        }
    }

    public func takeEnqueueTokens(
        _ requests: [EnqueueLimitRequest],
        logger: Logger
    ) async throws -> [EnqueueLimitRefusal] {
        // One entry per bucket (a bucket asked twice is asked for the sum), in a fixed order.
        var wanted: [EnqueueLimit.Scope: [String: Int]] = [:]
        for request in requests where request.count > 0 {
            wanted[request.scope, default: [:]][request.name, default: 0] += request.count
        }
        let buckets = wanted.flatMap { scope, names in names.map { (scope: scope, name: $0.key, count: $0.value) } }
            .sorted { ($0.scope.rawValue, $0.name) < ($1.scope.rawValue, $1.name) }
        guard !buckets.isEmpty else { return [] }
        return try await self.run("taking enqueue tokens") {
            var binds = PostgresBindings(capacity: 3)
            binds.append(buckets.map(\.scope.rawValue))
            binds.append(buckets.map(\.name))
            binds.append(buckets.map { Int64($0.count) })
            let s = self.schema.quoted
            let refused = try await self.committed(logger: logger) { [binds] connection in
                // Bounded waits on the enqueue path: a bucket row held by a stuck transaction fails this enqueue
                // (transient, lock_not_available) after two seconds instead of holding it forever.
                try await connection.query("SET LOCAL lock_timeout = '2s'", logger: logger)
                try await connection.query("SET LOCAL statement_timeout = '10s'", logger: logger)
                // One statement for every bucket of the enqueue, all or none:
                //
                // - `bucket` locks the requested rows FOR UPDATE in (scope, name) order: the lock is taken as each
                //   sorted row is emitted, so two enqueues that need the same buckets queue on the first of them
                //   and can never deadlock. A row updated by an enqueue that committed while this one waited is
                //   read as that enqueue left it (READ COMMITTED re-reads a row it had to wait for). A bucket
                //   without a row (no limit, or one removed meanwhile) is not limited.
                // - Each bucket is refilled for the time since its last refill, up to its burst. `now()` is this
                //   transaction's start, which can be earlier than a refill that an enqueue we waited for wrote:
                //   elapsed time below zero counts as none, and `refilled_at` never moves back.
                // - `taken` writes only when no bucket is short, so a refusal changes no bucket (not even its
                //   refill, which the next enqueue computes again from the same `refilled_at`).
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            WITH requested AS (
                                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(scope, name, wanted)
                            ),
                            bucket AS (
                                SELECT l.scope, l.name, l.per_second, l.burst, r.wanted,
                                       least(
                                           l.burst::float8,
                                           l.tokens + greatest(0, extract(epoch FROM now() - l.refilled_at)::float8)
                                               * l.per_second
                                       ) AS available
                                FROM \(s).enqueue_limits l
                                JOIN requested r ON r.scope = l.scope AND r.name = l.name
                                ORDER BY l.scope, l.name
                                FOR UPDATE OF l
                            ),
                            short AS (
                                SELECT * FROM bucket WHERE available < wanted
                            ),
                            taken AS (
                                UPDATE \(s).enqueue_limits l
                                SET tokens = b.available - b.wanted,
                                    refilled_at = greatest(l.refilled_at, now())
                                FROM bucket b
                                WHERE l.scope = b.scope AND l.name = b.name
                                  AND NOT EXISTS (SELECT 1 FROM short)
                            )
                            SELECT scope, name, per_second, burst, wanted, available FROM short ORDER BY scope, name
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                var refused: [EnqueueLimitRefusal] = []
                for try await (scope, name, perSecond, burst, wanted, available) in rows.decode(
                    (String, String, Double, Int, Int64, Double).self
                ) {
                    guard let scope = EnqueueLimit.Scope(rawValue: scope) else { continue }
                    refused.append(
                        EnqueueLimitRefusal(
                            limit: EnqueueLimit(scope: scope, name: name, perSecond: perSecond, burst: burst),
                            retryAfter: Self.retryAfter(
                                wanted: Double(wanted),
                                available: available,
                                perSecond: perSecond,
                                burst: burst
                            )
                        )
                    )
                }
                return refused
            }
            return refused
        }
    }

    /// How long until a bucket refilling at `perSecond` holds `wanted` tokens; `nil` when it never will (more than
    /// its burst). Capped at a year, which also keeps a rate near zero from overflowing the `Duration`.
    static func retryAfter(wanted: Double, available: Double, perSecond: Double, burst: Int) -> Duration? {
        guard wanted <= Double(burst) else { return nil }
        let seconds = max(0, wanted - available) / perSecond
        guard seconds.isFinite else { return .seconds(365 * 86_400) }
        return Duration.checkedSeconds(min(seconds, 365 * 86_400)).map { max($0, .milliseconds(1)) }
    }

    /// `text` without NUL characters and at most `limit` characters long.
    static func storable(_ text: String, limit: Int) -> String {
        var text = text
        if text.utf8.contains(0) { text = text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") }
        return text.count > limit ? String(text.prefix(limit)) : text
    }
}
