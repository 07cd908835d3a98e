import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    public func recordQueueStats(_ samples: [QueueStatsSample], workerID: String, logger: Logger) async throws {
        let samples = samples.filter { !$0.isEmpty }
        guard !samples.isEmpty else { return }
        try await self.run("recording queue stats") {
            let s = self.schema.quoted
            var binds = PostgresBindings(capacity: 11)
            binds.append(samples.map(\.minute))
            binds.append(samples.map(\.queue))
            binds.append(workerID)
            binds.append(samples.map { Int64($0.started) })
            binds.append(samples.map { Int64($0.completed) })
            binds.append(samples.map { Int64($0.failed) })
            binds.append(samples.map { Int64($0.retried) })
            binds.append(samples.map { Int64($0.deadLettered) })
            binds.append(samples.map { Int64($0.cancelled) })
            binds.append(samples.map { Int64($0.snoozed) })
            binds.append(samples.map(\.runMicroseconds))
            // Rows are keyed by worker, so two workers never wait on each other's row; rows older than a day are
            // deleted by the same statement, a few at a time.
            try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH old AS (
                            DELETE FROM \(s).queue_stats
                            WHERE (minute, queue, worker_id) IN (
                                SELECT minute, queue, worker_id FROM \(s).queue_stats
                                WHERE minute < now() - interval '1 day'
                                LIMIT 100
                            )
                        )
                        INSERT INTO \(s).queue_stats AS q (minute, queue, worker_id, started, completed, failed, retried,
                                                           dead_lettered, cancelled, snoozed, run_us)
                        SELECT m, queue, $3, st, co, fa, re, de, ca, sn, ru
                        FROM unnest($1::timestamptz[], $2::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                                    $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[])
                             AS u(m, queue, st, co, fa, re, de, ca, sn, ru)
                        ON CONFLICT (minute, queue, worker_id) DO UPDATE
                        SET started = q.started + excluded.started,
                            completed = q.completed + excluded.completed,
                            failed = q.failed + excluded.failed,
                            retried = q.retried + excluded.retried,
                            dead_lettered = q.dead_lettered + excluded.dead_lettered,
                            cancelled = q.cancelled + excluded.cancelled,
                            snoozed = q.snoozed + excluded.snoozed,
                            run_us = q.run_us + excluded.run_us
                        """,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    public func queueStats(minutes: Int, logger: Logger) async throws -> [QueueStatsSample] {
        try await self.run("reading queue stats") {
            var binds = PostgresBindings()
            binds.append(max(1, min(minutes, 1440)))
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT minute, queue, sum(started)::bigint, sum(completed)::bigint, sum(failed)::bigint,
                               sum(retried)::bigint, sum(dead_lettered)::bigint, sum(cancelled)::bigint,
                               sum(snoozed)::bigint, sum(run_us)::bigint
                        FROM \(self.schema.quoted).queue_stats
                        WHERE minute >= date_trunc('minute', now()) - ($1 - 1) * interval '1 minute'
                        GROUP BY minute, queue
                        ORDER BY minute, queue
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var samples: [QueueStatsSample] = []
            for try await row in rows {
                let (minute, queue, started, completed, failed, retried, dead, cancelled, snoozed, run) =
                    try row.decode((Date, String, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64).self)
                var sample = QueueStatsSample(minute: minute, queue: queue)
                sample.started = Int(started)
                sample.completed = Int(completed)
                sample.failed = Int(failed)
                sample.retried = Int(retried)
                sample.deadLettered = Int(dead)
                sample.cancelled = Int(cancelled)
                sample.snoozed = Int(snoozed)
                sample.runMicroseconds = run
                samples.append(sample)
            }
            return samples
        }
    }

    public func startLatencies(
        within: Duration,
        sampleSize: Int,
        logger: Logger
    ) async throws -> [String: StartLatency] {
        try await self.run("reading start latencies") {
            var binds = PostgresBindings()
            binds.append(max(1, min(sampleSize, 100_000)))
            binds.append(within.wholeMilliseconds)
            // The newest jobs by id, through the primary key: a bounded read whatever the table holds. A job's
            // latency is its latest attempt's start (positional attempts, migration 3) minus its run time, which
            // is when it became runnable (a retry moves it). A running job's attempt is not stored yet, so it is
            // counted once it ends.
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH recent AS (
                            SELECT queue, run_at, attempts -> -1 AS a
                            FROM \(self.schema.quoted).jobs
                            ORDER BY id DESC
                            LIMIT $1
                        ),
                        started AS (
                            SELECT queue, (a ->> 2)::timestamp AT TIME ZONE 'UTC' AS started_at, run_at
                            FROM recent
                            WHERE jsonb_typeof(a) = 'array'
                        )
                        SELECT queue, count(*)::bigint,
                               percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
                                   ORDER BY greatest(0, extract(epoch FROM started_at - run_at) * 1000)
                               )
                        FROM started
                        WHERE started_at > now() - $2 * interval '1 millisecond'
                        GROUP BY queue
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var latencies: [String: StartLatency] = [:]
            for try await (queue, count, percentiles) in rows.decode((String, Int64, [Double]).self) {
                guard percentiles.count == 3 else { continue }
                latencies[queue] = StartLatency(
                    samples: Int(count),
                    p50: percentiles[0],
                    p95: percentiles[1],
                    p99: percentiles[2]
                )
            }
            return latencies
        }
    }
}
