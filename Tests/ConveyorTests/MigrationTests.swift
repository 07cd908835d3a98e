import Conveyor
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite struct MigrationTests {
    @Test("eight concurrent migrators against an empty schema all succeed and apply each migration once")
    func concurrentMigratorsApplyOnce() async throws {
        let url = try await TestServer.shared.url()
        let schema = "m_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let migrators = 8
        let postgres = PostgresClient(configuration: try TestDatabase.configuration(url: url))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            defer { group.cancelAll() }
            // Each migrator has its own client, so each runs in its own session, as separate processes would.
            let applied = try await withThrowingTaskGroup(of: [Int].self) { migrations in
                for _ in 0..<migrators {
                    migrations.addTask {
                        let own = PostgresClient(configuration: try TestDatabase.configuration(url: url))
                        return try await withThrowingTaskGroup(of: [Int].self) { inner in
                            inner.addTask {
                                await own.run()
                                return []
                            }
                            defer { inner.cancelAll() }
                            let store = try PostgresJobStore(client: own, schema: schema)
                            return try await store.migrate(logger: Logger(label: "test"))
                        }
                    }
                }
                var all: [Int] = []
                for try await versions in migrations { all += versions }
                return all
            }
            let latest = PostgresJobStore.latestMigrationVersion
            #expect(applied.sorted() == Array(1...latest))
            let rows = try await postgres.query(
                PostgresQuery(
                    unsafeSQL: "SELECT count(*), count(DISTINCT version) FROM \"\(schema)\".schema_migrations"
                )
            )
            for try await (count, distinct) in rows.decode((Int, Int).self) {
                #expect(count == latest)
                #expect(distinct == latest)
            }
            // A later migrator finds nothing to do.
            let again = try await PostgresJobStore(client: postgres, schema: schema).migrate(logger: Logger(label: "t"))
            #expect(again.isEmpty)
            try await postgres.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"))
        }
    }

    @Test("attempt records written as objects before migration 3 read back beside the arrays written since", .database)
    func attemptHistoryInBothLayouts() async throws {
        let db = try TestDatabase.get()
        let history = """
            [{"attempt": 1, "worker": "w-old", "started_at": "2026-11-22T10:00:00.123456Z",
              "finished_at": "2026-11-22T10:00:01.000000Z", "outcome": "failed", "error_code": "HANDLER_ERROR",
              "error": "boom", "duration_us": 876544},
             [2, "w-new", "2026-11-22T10:00:05", "2026-11-22T10:00:05.25", "completed", null, null, 250000]]
            """
        var binds = PostgresBindings()
        binds.append(history)
        let id = try await db.scalar(
            """
            INSERT INTO {schema}.jobs (kind, state, attempt, attempts, finished_at)
            VALUES ('test.history', 'completed', 2, $1::jsonb, now()) RETURNING id
            """,
            binds
        )
        let job = try #require(try await db.client.jobs.get(JobID(Int64(id))))
        try #require(job.attempts.count == 2)
        let (old, new) = (job.attempts[0], job.attempts[1])
        // 2026-11-22T10:00:00Z is 1,795,341,600 s after the epoch.
        #expect(abs(old.startedAt.timeIntervalSince1970 - 1_795_341_600.123456) < 1e-6)
        #expect(abs(old.finishedAt.timeIntervalSince1970 - 1_795_341_601) < 1e-6)
        #expect(old.attempt == 1 && old.worker == "w-old" && old.outcome == .failed)
        #expect(old.errorCode == .handlerError && old.error == "boom" && old.durationMicroseconds == 876_544)
        #expect(abs(new.startedAt.timeIntervalSince1970 - 1_795_341_605) < 1e-6)
        #expect(abs(new.finishedAt.timeIntervalSince1970 - 1_795_341_605.25) < 1e-6)
        #expect(new.attempt == 2 && new.worker == "w-new" && new.outcome == .completed)
        #expect(new.errorCode == nil && new.error == nil && new.durationMicroseconds == 250_000)
    }

    @Test("the fetch and the completion plan once per session and through indexes only", .database)
    func hotPathPlanSettings() async throws {
        let settings = try await Self.catalogSettings(
            """
            SELECT p.proname, array_to_string(p.proconfig, ' ')
            FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = $1 AND p.proname IN ('fetch_jobs', 'complete_jobs')
            """
        )
        // Without these, a generic plan made while the table was small scanned all of it on every completion.
        let required: Set = [
            "plan_cache_mode=force_generic_plan", "enable_seqscan=off", "enable_bitmapscan=off", "enable_sort=off",
            "enable_hashjoin=off", "enable_mergejoin=off",
        ]
        #expect(settings.keys.sorted() == ["complete_jobs", "fetch_jobs"])
        for (name, configured) in settings {
            #expect(required.isSubset(of: configured), "\(name): \(configured.sorted())")
        }
    }

    @Test("every VACUUM of the jobs table cleans its indexes, and new jobs fill pages of their own", .database)
    func jobsIndexesAreAlwaysVacuumed() async throws {
        let settings = try await Self.catalogSettings(
            """
            SELECT c.relname, array_to_string(c.reloptions, ' ')
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = 'jobs'
            """
        )
        let options = settings["jobs"] ?? []
        // Without the first, PostgreSQL skips the indexes when under 2 % of the pages have dead rows, and the
        // runnable index kept the entry of every leased job where each fetch starts its scan. Without the second,
        // new jobs went into the free space of thousands of old pages that jobs had finished on.
        #expect(options.isSuperset(of: ["vacuum_index_cleanup=on", "fillfactor=30"]), "\(options.sorted())")
    }

    /// The `name=value` settings per object from `sql`, which takes the test schema as `$1` and returns an
    /// object's name and its settings joined by spaces (from `proconfig` or `reloptions`).
    static func catalogSettings(_ sql: String) async throws -> [String: Set<String>] {
        let db = try TestDatabase.get()
        var binds = PostgresBindings()
        binds.append(db.schema)
        var settings: [String: Set<String>] = [:]
        for try await (name, text) in try await db.execute(sql, binds).decode((String, String?).self) {
            settings[name] = Set((text ?? "").split(separator: " ").map(String.init))
        }
        return settings
    }

    @Test("the printed script creates the same schema when run by another tool")
    func printedScriptApplies() async throws {
        let url = try await TestServer.shared.url()
        let schema = "p_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let script = try PostgresJobStore.migrationScript(schema: schema)
        #expect(script.contains("CREATE TABLE \"\(schema)\".jobs"))
        let postgres = PostgresClient(configuration: try TestDatabase.configuration(url: url))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            defer { group.cancelAll() }
            // Run it with psql, as a team with its own migration tool would.
            let file = NSTemporaryDirectory() + "conveyor-migrations-\(schema).sql"
            try Data(script.utf8).write(to: URL(fileURLWithPath: file))
            defer { try? FileManager.default.removeItem(atPath: file) }
            let psql = try LocalPostgres.findBinaries().psql ?? "/usr/bin/psql"
            let outcome = await LocalPostgres.runTool(
                psql,
                arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", file]
            )
            #expect(outcome.status == 0, "\(outcome.errorOutput)")
            let applied = try await PostgresJobStore(client: postgres, schema: schema).migrate(
                logger: Logger(label: "t")
            )
            #expect(applied.isEmpty)
            try await postgres.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \"\(schema)\" CASCADE"))
        }
    }

    @Test("an invalid schema name is refused before any SQL runs")
    func invalidSchemaName() async throws {
        let url = try await TestServer.shared.url()
        let postgres = PostgresClient(configuration: try TestDatabase.configuration(url: url))
        for name in ["public\"; DROP SCHEMA public; --", "Upper", "", "has space"] {
            let error = try #require(throws: ConveyorError.self) {
                try PostgresJobStore(client: postgres, schema: name)
            }
            #expect(error.code == .invalidSchemaName)
        }
    }
}
