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
        try await self.run("listing tenants") {
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT name, weight, updated_at, updated_by FROM \(self.schema.quoted).tenants ORDER BY name
                        """
                ),
                logger: logger
            )
            var tenants: [TenantInfo] = []
            for try await (name, weight, at, by) in rows.decode((String, Double, Date, String?).self) {
                tenants.append(TenantInfo(name: name, weight: weight, updatedAt: at, updatedBy: by))
            }
            return tenants
        }
    }
}
