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
            let process = Process()
            process.executableURL = URL(fileURLWithPath: psql)
            process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", file]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
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
