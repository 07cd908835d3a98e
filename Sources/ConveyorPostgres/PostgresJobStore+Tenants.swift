import Conveyor
import Foundation
import Logging
import PostgresNIO

extension PostgresJobStore {
    public func setQueueFair(_ queue: String, fair: Bool, by performer: String?, logger: Logger) async throws {
        try await self.run("setting the fairness of queue \(queue)") {
            var binds = PostgresBindings(capacity: 3)
            binds.append(queue)
            binds.append(fair)
            binds.append(performer)
            let s = self.schema.quoted
            try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH queue AS (
                            INSERT INTO \(s).queues (name, fair, updated_at) VALUES ($1, $2, now())
                            ON CONFLICT (name) DO UPDATE SET fair = excluded.fair, updated_at = now()
                        )
                        INSERT INTO \(s).events (subject, subject_id, action, performed_by, details)
                        VALUES ('queue', $1, 'fairness_changed', $3, jsonb_build_object('fair', $2::text))
                        """,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    public func setTenant(_ name: String, weight: Double, by performer: String?, logger: Logger) async throws {
        try await self.run("setting tenant \(name)") {
            var binds = PostgresBindings(capacity: 3)
            binds.append(name)
            binds.append(weight)
            binds.append(performer)
            let s = self.schema.quoted
            try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH tenant AS (
                            INSERT INTO \(s).tenants (name, weight, updated_by) VALUES ($1, $2, $3)
                            ON CONFLICT (name) DO UPDATE
                            SET weight = excluded.weight, updated_by = excluded.updated_by, updated_at = now()
                        )
                        INSERT INTO \(s).events (subject, subject_id, action, performed_by, details)
                        VALUES ('tenant', $1, 'settings_changed', $3, jsonb_build_object('weight', $2::text))
                        """,
                    binds: binds
                ),
                logger: logger
            )
        }
    }

    public func setTenantConcurrencyLimit(
        _ name: String,
        maxRunning: Int?,
        by performer: String?,
        logger: Logger
    ) async throws {
        try await self.run("setting the concurrency limit of tenant \(name)") {
            let s = self.schema.quoted
            try await self.committed(logger: logger) { connection in
                var key = PostgresBindings(capacity: 1)
                key.append(name)
                var limit = key
                limit.append(maxRunning)
                var event = limit
                event.append(performer)
                // As a queue's limit: the tenant's row lock orders concurrent changes, and the slots are rebuilt
                // from the namespace's running jobs (in every queue) once every fetch that held one has committed.
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).tenants (name, max_running, updated_by) VALUES ($1, $2::integer, $3)
                            ON CONFLICT (name) DO UPDATE
                            SET max_running = excluded.max_running, updated_by = excluded.updated_by, updated_at = now()
                            """,
                        binds: event
                    ),
                    logger: logger
                )
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "DELETE FROM \(s).limit_slots WHERE scope = 'tenant' AND key = $1",
                        binds: key
                    ),
                    logger: logger
                )
                // Jobs running now are recorded in slots 1, 2, …; those above a limit lowered below them keep as
                // many slots below it unused until they finish (see pick_jobs).
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).limit_slots (scope, key, slot, job_id, lease_token)
                            SELECT 'tenant', $1, coalesce(g, r.n), r.id, r.lease_token
                            FROM generate_series(1, coalesce($2::integer, 0)) AS g
                            FULL JOIN (
                                SELECT j.id, j.lease_token, (row_number() OVER (ORDER BY j.id))::integer AS n
                                FROM \(s).jobs j WHERE j.namespace = $1 AND j.state = 'running'
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
                            VALUES ('tenant', $1, 'limit_changed', $3,
                                    jsonb_build_object('max_running', coalesce($2::text, 'none')))
                            """,
                        binds: event
                    ),
                    logger: logger
                )
            }
        }
    }

    public func removeTenant(_ name: String, by performer: String?, logger: Logger) async throws -> Bool {
        try await self.run("removing tenant \(name)") {
            var binds = PostgresBindings(capacity: 2)
            binds.append(name)
            binds.append(performer)
            let s = self.schema.quoted
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH removed AS (
                            DELETE FROM \(s).tenants WHERE name = $1 RETURNING name
                        ),
                        slots AS (
                            DELETE FROM \(s).limit_slots WHERE scope = 'tenant' AND key IN (SELECT name FROM removed)
                        ),
                        event AS (
                            INSERT INTO \(s).events (subject, subject_id, action, performed_by, details)
                            SELECT 'tenant', $1, 'settings_changed', $2, jsonb_build_object('weight', 'default')
                            FROM removed
                        )
                        SELECT count(*) FROM removed
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var removed = 0
            for try await count in rows.decode(Int.self) { removed = count }
            return removed > 0
        }
    }

    public func tenants(logger: Logger) async throws -> [TenantInfo] {
        try await self.run("listing tenants") { try await self.tenantInfos(only: nil, logger: logger) }
    }

    public func tenant(named name: String, logger: Logger) async throws -> TenantInfo? {
        try await self.run("reading tenant \(name)") { try await self.tenantInfos(only: name, logger: logger).first }
    }

    /// Every tenant with settings, or the one named `only`.
    private func tenantInfos(only name: String?, logger: Logger) async throws -> [TenantInfo] {
        var binds = PostgresBindings(capacity: 1)
        binds.append(name)
        let rows = try await self.client.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT t.name, t.weight, t.max_running, t.updated_at, t.updated_by,
                           CASE WHEN t.max_running IS NOT NULL THEN (
                               SELECT count(*)::integer FROM \(self.schema.quoted).limit_slots s
                               WHERE s.scope = 'tenant' AND s.key = t.name
                                 AND EXISTS (SELECT 1 FROM \(self.schema.quoted).jobs h
                                             WHERE h.id = s.job_id AND h.lease_token = s.lease_token
                                               AND h.state = 'running')
                           ) END
                    FROM \(self.schema.quoted).tenants t WHERE $1::text IS NULL OR t.name = $1
                    ORDER BY t.name
                    """,
                binds: binds
            ),
            logger: logger
        )
        var tenants: [TenantInfo] = []
        for try await (name, weight, maxRunning, at, by, running) in rows.decode(
            (String, Double, Int?, Date, String?, Int?).self
        ) {
            tenants.append(
                TenantInfo(
                    name: name,
                    weight: weight,
                    maxRunning: maxRunning,
                    running: running,
                    updatedAt: at,
                    updatedBy: by
                )
            )
        }
        return tenants
    }
}
