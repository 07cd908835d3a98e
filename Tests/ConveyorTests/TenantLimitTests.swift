import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Testing

/// Concurrency limits per tenant, across every queue, enforced in the fetch.
@Suite(.database) struct TenantLimitTests {
    @Test("a fetch serves a limited tenant no more jobs than its free slots, and gives the rest to the others")
    func fetchHonoursTheLimit() async throws {
        let db = try TestDatabase.get()
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 2, by: "test:ops")
        // Acme's jobs are older: first-come, they would fill every fetch.
        try await FairnessTests.enqueue(db, 6, of: "acme", into: "mixed")
        try await FairnessTests.enqueue(db, 4, of: "bolt", into: "mixed")
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed") == ["acme": 2, "bolt": 3])
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed") == ["bolt": 1])
        // The limit holds across queues: acme's two running jobs fill it for every queue.
        try await FairnessTests.enqueue(db, 2, of: "acme", into: "other")
        #expect(try await FairnessTests.fetch(db, 5, from: "other").isEmpty)
        #expect(try await db.client.tenants.get("acme")?.running == 2)
        // A result frees a slot; so does a lease taken back by the reaper.
        let acme = try await db.execute(
            "SELECT id FROM {schema}.jobs WHERE namespace = 'acme' AND state = 'running' ORDER BY id"
        )
        var running: [Int64] = []
        for try await id in acme.decode(Int64.self) { running.append(id) }
        #expect(running.count == 2)
        _ = try await db.execute(
            """
            UPDATE {schema}.jobs SET lease_expires_at = now() - interval '1 second'
            WHERE id = \(running[0])
            """
        )
        #expect(try await db.reapExpiredLeases().reaped.map(\.rawValue) == [running[0]])
        #expect(try await FairnessTests.fetch(db, 5, from: "other") == ["acme": 1])
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed").isEmpty)

        // Raising the limit adds slots; removing it drops them and acme takes what it asks for.
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 3)
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed") == ["acme": 1])
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: nil)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.limit_slots") == 0)
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed") == ["acme": 3])
        let events = try await db.client.tenants.events("acme")
        #expect(events.map(\.action) == [.limitChanged, .limitChanged, .limitChanged])
        #expect(events.map { $0.details["max_running"] } == ["2", "3", "none"])
        #expect(events.first?.performedBy == "test:ops")
    }

    @Test("with limits that do not bind, a first-come queue's fetches take exactly the jobs of its order")
    func queueOrderAcrossTenants() async throws {
        let db = try TestDatabase.get()
        for tenant in ["acme", "bolt", "cato"] {
            try await db.client.tenants.setConcurrencyLimit(tenant, maxRunning: 100)
        }
        // Interleaved tenants, uneven backlogs, and a few urgent jobs of one tenant enqueued last.
        var requests: [JobRequest] = []
        for index in 0..<40 {
            let tenant = ["acme", "bolt", "cato", "acme"][index % 4]
            requests.append(
                JobRequest(Echo(value: index), options: .init(queue: "mixed", priority: 5, namespace: tenant))
            )
        }
        for index in 0..<3 {
            requests.append(
                JobRequest(Echo(value: index), options: .init(queue: "mixed", priority: 0, namespace: "cato"))
            )
        }
        _ = try await db.client.jobs.enqueue(requests)
        for size in [7, 1, 10, 25] {
            let expected = try await db.execute(
                """
                SELECT id FROM {schema}.jobs WHERE queue = 'mixed' AND state = 'available'
                ORDER BY priority, run_at, id LIMIT \(size)
                """
            )
            var ids: [Int64] = []
            for try await id in expected.decode(Int64.self) { ids.append(id) }
            let leased = try await db.lease(size, queue: "mixed", as: "w1", for: .seconds(60))
            #expect(leased.map(\.id.rawValue).sorted() == ids.sorted(), "a fetch of \(size)")
        }
    }

    @Test("a limit set on a busy tenant counts its running jobs, and one lowered below them takes none")
    func limitOnABusyTenant() async throws {
        let db = try TestDatabase.get()
        try await FairnessTests.enqueue(db, 8, of: "acme", into: "busy")
        let running = try await db.lease(3, queue: "busy", as: "w1", for: .seconds(30))
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 4)
        #expect(try await db.client.tenants.get("acme")?.running == 3)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).count == 1)
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 2)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).isEmpty)
        // Two of the four finish: two still run, at the limit; one more finishes, and one slot is free.
        _ = try await db.store.complete([.succeeded(running[0]), .succeeded(running[1])], logger: db.logger)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).isEmpty)
        _ = try await db.store.complete([.succeeded(running[2])], logger: db.logger)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).count == 1)
    }

    @Test("in a fair queue a limited tenant's share is capped by its slots, and the fetch fills with the others")
    func fairAndLimited() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await db.client.tenants.set("acme", weight: 3)
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 2)
        for tenant in ["acme", "bolt", "cato"] { try await FairnessTests.enqueue(db, 20, of: tenant, into: "shared") }
        let first = try await FairnessTests.fetch(db, 10, from: "shared")
        #expect(first["acme"] == 2, "\(first)")
        #expect(first.values.reduce(0, +) == 10)
        let second = try await FairnessTests.fetch(db, 10, from: "shared")
        #expect(second["acme"] == nil, "\(second)")
        #expect(second == ["bolt": 5, "cato": 5], "\(second)")
    }

    @Test("a queue's limit and a tenant's limit hold together")
    func queueAndTenantLimits() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 4)
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 1)
        try await FairnessTests.enqueue(db, 5, of: "acme", into: "capped")
        try await FairnessTests.enqueue(db, 5, of: "bolt", into: "capped")
        #expect(try await FairnessTests.fetch(db, 10, from: "capped") == ["acme": 1, "bolt": 3])
        #expect(try await FairnessTests.fetch(db, 10, from: "capped").isEmpty)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.queue_slots WHERE job_id IS NOT NULL") == 4)
    }

    @Test("a limit out of range or a bad name is refused and the stored limit stays")
    func badLimits() async throws {
        let db = try TestDatabase.get()
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 4)
        for bad in [0, -1, 10_001] {
            let error = await #expect(throws: ConveyorError.self) {
                try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: bad)
            }
            #expect(error?.code == .invalidOption)
        }
        let badName = await #expect(throws: ConveyorError.self) {
            try await db.client.tenants.setConcurrencyLimit("bad tenant", maxRunning: 1)
        }
        #expect(badName?.code == .invalidNamespace)
        #expect(try await db.client.tenants.get("acme")?.maxRunning == 4)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.limit_slots WHERE key = 'acme'") == 4)
        // Removing the tenant removes its slots with it.
        #expect(try await db.client.tenants.remove("acme"))
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.limit_slots") == 0)
    }

    @Test("a job of a tenant at its limit is explained as waiting for the tenant")
    func explainAtLimit() async throws {
        let db = try TestDatabase.get()
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 1)
        try await db.store.registerWorker(
            WorkerPresence(id: "vm-1", queues: ["mixed": 4], kinds: [Echo.kind], workflows: []),
            logger: db.logger
        )
        try await FairnessTests.enqueue(db, 2, of: "acme", into: "mixed")
        #expect(try await FairnessTests.fetch(db, 5, from: "mixed") == ["acme": 1])
        let waiting = try await db.scalar("SELECT id FROM {schema}.jobs WHERE state = 'available'")
        let explanation = try await db.client.jobs.explain(JobID(rawValue: Int64(waiting)))
        #expect(explanation.reason == .tenantAtLimit, "\(explanation.sentence)")
        #expect(explanation.sentence == "waiting: tenant acme is at its limit of 1 running (next in line)")
        #expect(explanation.facts["tenant_max_running"] == "1")
        #expect(explanation.facts["tenant_running"] == "1")
    }

    @Test("three worker processes never run more of a tenant's jobs at once than its limit")
    func limitHoldsAcrossProcesses() async throws {
        let db = try TestDatabase.get()
        try await db.client.tenants.setConcurrencyLimit("acme", maxRunning: 2)
        try await db.client.tenants.setConcurrencyLimit("bolt", maxRunning: 3)
        let file = ProcessTests.recordFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        let workers = try (0..<3).map { _ in
            try WorkerProcess(
                database: db,
                arguments: ["--queue", "mixed:4", "--prefetch", "0", "--heartbeat", "0.3", "--poll", "0.1"]
            )
        }
        try await db.waitUntil("the three workers are listening") { try await db.listeners() == 3 }
        var tenantOf: [Int64: String] = [:]
        for tenant in ["acme", "bolt", "cato"] {
            let jobs = try await db.client.jobs.enqueue(
                (0..<30).map { _ in
                    JobRequest(
                        ProcessTests.Record(file: file, milliseconds: 10),
                        options: .init(queue: "mixed", namespace: tenant)
                    )
                }
            )
            for job in jobs { tenantOf[job.id.rawValue] = tenant }
        }
        try await db.waitUntil("every job completed", timeout: .seconds(120)) {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == tenantOf.count
        }
        for worker in workers { #expect(await worker.terminate() == 0, "\(worker.output)") }
        let runs = try RecordedRun.read(file)
        #expect(runs.count == tenantOf.count)
        let byTenant = Dictionary(grouping: runs) { tenantOf[$0.job] ?? "?" }
        let most = byTenant.mapValues { ConcurrencyLimitTests.mostOverlapping($0.map { ($0.start, $0.end) }) }
        #expect((most["acme"] ?? 0) <= 2, "\(most)")
        #expect((most["bolt"] ?? 0) <= 3, "\(most)")
        #expect((most["bolt"] ?? 0) >= 2, "bolt's slots were never used together: \(most)")
    }
}
