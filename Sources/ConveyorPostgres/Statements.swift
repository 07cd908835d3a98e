/// Every SQL statement the store runs, rendered once for a schema. Values are always `$n` binds; the quoted
/// schema name is the only text spliced in.
struct Statements: Sendable {
    static let jobColumns = """
        id, namespace, queue, kind, args::text, state, priority::int, attempt, max_attempts, run_at, created_at,
        finished_at, lease_owner, lease_expires_at, unique_key, tags, timeout_ms, replay_of, dead_reason,
        cancel_requested_at, last_error, attempts::text
        """

    let migrationLock: String
    let insert: String
    let insertCommitted: String
    let insertPlain: String
    let insertPlainCommitted: String
    let copyPreparation: String
    let existingUniqueKeys: String
    let fetch: String
    let complete: String
    let heartbeat: String
    let expiredLeases: String
    let stage: String
    let job: String
    let list: String
    let cancel: String
    let retry: String
    let replay: String
    let notify: String
    /// Pauses ($2 true) or resumes queue $1, recorded as by $3.
    let pause: String
    /// The same for worker pool $1.
    let pausePool: String
    let queueCounts: String
    let pausedQueues: String
    let runnableCounts: String

    /// Writes the pause record of `subject` $1 in `table` and its event, in one statement.
    private static func pauseRecord(table: String, subject: String, schema s: String) -> String {
        """
        WITH record AS (
            INSERT INTO \(table) (name, paused_at, paused_by, updated_at)
            VALUES ($1, CASE WHEN $2::bool THEN now() END, CASE WHEN $2::bool THEN $3 END, now())
            ON CONFLICT (name) DO UPDATE
            SET paused_at = excluded.paused_at, paused_by = excluded.paused_by, updated_at = now()
        )
        INSERT INTO \(s).events (subject, subject_id, action, performed_by)
        VALUES ('\(subject)', $1, CASE WHEN $2::bool THEN 'paused' ELSE 'resumed' END, $3)
        """
    }

    init(schema: SchemaName) {
        let s = schema.quoted
        let columns = Self.jobColumns

        self.migrationLock = "SELECT pg_advisory_xact_lock(hashtext('conveyor.migrate.' || $1))"

        // Batch insert through a PL/pgSQL function (migration 3), whose plan each session keeps; inside a
        // transaction as it is, or through the procedure that commits it before returning (see
        // Migrations.committedProcedures).
        let insertArguments = "$1, $2, $3, $4, $5::integer[], $6, $7, $8::integer[], $9, $10, $11, $12, $13, $14"
        self.insert = "SELECT * FROM \(s).enqueue_batch(\(insertArguments))"
        self.insertCommitted = "CALL \(s).enqueue_committed(\(insertArguments), NULL, NULL, NULL, NULL, NULL)"
        // Jobs without unique keys or replay links (migration 4): the same arrays but the last two.
        let plainArguments = "$1, $2, $3, $4, $5::integer[], $6, $7, $8::integer[], $9, $10, $11, $12"
        self.insertPlain = "SELECT * FROM \(s).enqueue_plain(\(plainArguments))"
        self.insertPlainCommitted = "CALL \(s).enqueue_plain_committed(\(plainArguments), NULL, NULL)"

        // Before a large batch is copied in (see PostgresJobStore.copy): its ids, drawn from the identity's
        // sequence in input order; its notifications, which PostgreSQL sends if and when the transaction commits;
        // and the schema as the transaction's search path, because COPY names its table unqualified.
        self.copyPreparation = """
            SELECT (SELECT array_agg(nextval('\(s).jobs_id_seq') ORDER BY g) FROM generate_series(1, $1::integer) AS g),
                   (SELECT count(pg_notify($2, q)) FROM unnest($3::text[]) AS q),
                   set_config('search_path', $4, true)
            """

        self.existingUniqueKeys = """
            SELECT j.id, j.namespace, j.unique_key
            FROM \(s).jobs j
            JOIN unnest($1::text[], $2::text[]) AS k(namespace, unique_key)
              ON j.namespace = k.namespace AND j.unique_key = k.unique_key
            WHERE j.state NOT IN ('cancelled', 'discarded')
            """

        // The hot path runs through procedures that commit before they return (migrations 3 and 6), around
        // PL/pgSQL functions that keep their plans per session.
        self.fetch = """
            CALL \(s).fetch_leases($1, $2::integer, $3, $4, $5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
            """
        self.complete = """
            CALL \(s).complete_committed($1, $2, $3, $4, $5, $6, $7, $8, $9::integer[], $10, $11, NULL)
            """

        // One statement per heartbeat for every lease the process holds. The lease token alone proves the
        // lease (see complete_jobs). Rows that another statement has locked (the completer writing their results,
        // typically) are skipped, not waited for: waiting let a heartbeat and a completion batch each lock rows the
        // other wanted, a deadlock that PostgreSQL breaks only after deadlock_timeout (1 s), and completions
        // stalled for a second or more each time. A skipped row whose token still matches is reported held (0)
        // without an extension; a row whose token no longer matches is a lost lease (-1).
        self.heartbeat = """
            WITH held AS (
                SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS h(id, token)
            ),
            free AS (
                SELECT j.id
                FROM \(s).jobs j JOIN held ON j.id = held.id AND j.lease_token = held.token
                FOR UPDATE OF j SKIP LOCKED
            ),
            extended AS (
                UPDATE \(s).jobs j
                SET lease_expires_at = now() + $3 * interval '1 millisecond'
                FROM free
                WHERE j.id = free.id
                RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested
            )
            SELECT held.id,
                   CASE WHEN extended.id IS NOT NULL THEN extended.cancel_requested::int
                        WHEN EXISTS (SELECT 1 FROM \(s).jobs j WHERE j.id = held.id AND j.lease_token = held.token)
                            THEN 0
                        ELSE -1
                   END
            FROM held LEFT JOIN extended ON extended.id = held.id
            """

        // Due scheduled and retryable jobs to available (migration 7); an autocommit statement: a staging lost in
        // a crash is staged again by the next call.
        self.stage = "SELECT staged, notified, next_due_ms FROM \(s).stage_due_jobs($1::integer, $2)"

        self.expiredLeases = """
            SELECT id, lease_token, kind, attempt, max_attempts
            FROM \(s).jobs
            WHERE state = 'running' AND lease_expires_at < now()
            ORDER BY lease_expires_at
            LIMIT $1
            """

        self.job = "SELECT \(columns) FROM \(s).jobs WHERE id = $1"

        // Every filter is a bind; an empty value means "any". Keyset pagination on id, newest first.
        self.list = """
            SELECT \(columns)
            FROM \(s).jobs
            WHERE (cardinality($1::text[]) = 0 OR state = ANY($1::text[]))
              AND ($2 = '' OR queue = $2)
              AND ($3 = '' OR kind = $3)
              AND ($4 = '' OR namespace = $4)
              AND ($5 = '' OR $5 = ANY(tags))
              AND ($6 = 0 OR id < $6)
              AND ($8::timestamptz IS NULL OR created_at >= $8)
              AND ($9::timestamptz IS NULL OR created_at < $9)
              AND ($10 = '' OR dead_reason = $10)
            ORDER BY id DESC
            LIMIT $7
            """

        // A job that is not running is cancelled at once; a running one gets a request that its worker sees on
        // its next heartbeat. `old` locks the row first, so the state it reads (the event's from_state) is the one
        // the update changes, even when another statement changed it meanwhile. The event is written by the same
        // statement (migration 9).
        self.cancel = """
            WITH old AS (
                SELECT id AS old_id, state AS old_state
                FROM \(s).jobs
                WHERE id = $1 AND state IN ('scheduled', 'available', 'retryable', 'running')
                FOR UPDATE
            ),
            changed AS (
                UPDATE \(s).jobs j
                SET state = CASE WHEN j.state = 'running' THEN j.state ELSE 'cancelled' END,
                    finished_at = CASE WHEN j.state = 'running' THEN j.finished_at ELSE now() END,
                    cancel_requested_at = CASE WHEN j.state = 'running' THEN now() ELSE j.cancel_requested_at END
                FROM old
                WHERE j.id = old.old_id
                RETURNING \(columns), old.old_state
            ),
            event AS (
                INSERT INTO \(s).events (subject, subject_id, action, from_state, to_state, performed_by)
                SELECT 'job', id::text, CASE WHEN old_state = 'running' THEN 'cancel_requested' ELSE 'cancelled' END,
                       old_state, state, $2
                FROM changed
            )
            SELECT \(columns) FROM changed
            """

        self.retry = """
            WITH old AS (
                SELECT id AS old_id, state AS old_state
                FROM \(s).jobs
                WHERE id = $1 AND state IN ('discarded', 'cancelled')
                FOR UPDATE
            ),
            changed AS (
                UPDATE \(s).jobs j
                SET state = 'available',
                    run_at = now(),
                    finished_at = NULL,
                    dead_reason = NULL,
                    cancel_requested_at = NULL,
                    max_attempts = greatest(j.max_attempts, j.attempt + 1)
                FROM old
                WHERE j.id = old.old_id
                RETURNING \(columns), old.old_state
            ),
            event AS (
                INSERT INTO \(s).events (subject, subject_id, action, from_state, to_state, performed_by)
                SELECT 'job', id::text, 'retried', old_state, state, $2 FROM changed
            )
            SELECT \(columns) FROM changed
            """

        // The replay is a new job: fresh attempts, no unique key (the original may still hold it), and a pointer
        // back to the original, which is left untouched but for an event that names the replay.
        self.replay = """
            WITH new AS (
                INSERT INTO \(s).jobs (kind, queue, namespace, args, priority, state, run_at, max_attempts,
                                       timeout_ms, tags, replay_of)
                SELECT kind, queue, namespace, args, priority, 'available', now(), max_attempts, timeout_ms, tags, id
                FROM \(s).jobs
                WHERE id = $1 AND state IN ('completed', 'cancelled', 'discarded')
                RETURNING id, queue, replay_of
            ),
            event AS (
                INSERT INTO \(s).events (subject, subject_id, action, performed_by, details)
                SELECT 'job', replay_of::text, 'replayed', $2, jsonb_build_object('replay', id::text) FROM new
            )
            SELECT id, queue FROM new
            """

        self.notify = "SELECT pg_notify($1, queue) FROM unnest($2::text[]) AS q(queue)"

        self.pause = Self.pauseRecord(table: "\(s).queues", subject: "queue", schema: s)
        self.pausePool = Self.pauseRecord(table: "\(s).worker_pools", subject: "pool", schema: s)

        // Counts of the states that have a partial index of their own, each capped at $2, so the cost follows
        // neither the finished jobs nor a deep backlog: counting 150,000 available jobs took 110 ms, too much for
        // a dashboard refreshed every second beside a busy worker. A skip scan of `jobs_fetchable` finds the queues
        // with available jobs; each queue's are counted newest first in the index's order, which keeps the plan an
        // index scan that stops at the cap (a bare LIMIT let the planner read every entry into a bitmap first: 58 ms
        // during a drain) and meets live entries before those of jobs just fetched. The other states scan at most
        // $2 rows in all, so once a state's scan reaches the cap each of its counts is a lower bound. The fourth
        // column says so. Completed and cancelled jobs are not counted here.
        self.queueCounts = """
            WITH RECURSIVE listed(queue) AS (
                SELECT CASE WHEN $1 = ''
                    THEN (SELECT min(queue) FROM \(s).jobs WHERE state = 'available')
                    ELSE (SELECT min(queue) FROM \(s).jobs WHERE state = 'available' AND queue = $1)
                END
                UNION ALL
                SELECT (SELECT min(j.queue) FROM \(s).jobs j WHERE j.state = 'available' AND j.queue > l.queue)
                FROM listed l
                WHERE l.queue IS NOT NULL AND $1 = ''
            ),
            available AS MATERIALIZED (
                SELECT l.queue, (
                    SELECT count(*) FROM (
                        SELECT 1 FROM \(s).jobs j WHERE j.state = 'available' AND j.queue = l.queue
                        ORDER BY j.priority DESC, j.run_at DESC, j.id DESC
                        LIMIT $2
                    ) c
                ) AS n
                FROM listed l
                WHERE l.queue IS NOT NULL
            ),
            pending AS (
                SELECT queue, state FROM \(s).jobs
                WHERE state IN ('scheduled', 'retryable') AND ($1 = '' OR queue = $1) LIMIT $2
            ),
            running AS (
                SELECT queue, state FROM \(s).jobs WHERE state = 'running' AND ($1 = '' OR queue = $1) LIMIT $2
            ),
            dead AS (
                SELECT queue, state FROM \(s).jobs WHERE state = 'discarded' AND ($1 = '' OR queue = $1) LIMIT $2
            )
            SELECT queue, 'available', n, n >= $2 FROM available
            UNION ALL
            SELECT queue, state, count(*), (SELECT count(*) FROM pending) >= $2 FROM pending GROUP BY queue, state
            UNION ALL
            SELECT queue, state, count(*), (SELECT count(*) FROM running) >= $2 FROM running GROUP BY queue, state
            UNION ALL
            SELECT queue, state, count(*), (SELECT count(*) FROM dead) >= $2 FROM dead GROUP BY queue, state
            """
        self.pausedQueues =
            "SELECT name, paused_at, paused_by, max_running, fair FROM \(s).queues WHERE $1 = '' OR name = $1"

        self.runnableCounts = """
            SELECT queue, count(*)
            FROM \(s).jobs
            WHERE state = 'available'
            GROUP BY queue
            """
    }
}
