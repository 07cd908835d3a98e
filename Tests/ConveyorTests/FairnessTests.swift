import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import PostgresNIO
import Testing

/// Weighted fair fetching across tenants, decided in the fetch.
@Suite(.database) struct FairnessTests {
    /// Enqueues `count` jobs of `namespace` into `queue`.
    static func enqueue(_ db: TestDatabase, _ count: Int, of namespace: String, into queue: String) async throws {
        _ = try await db.client.jobs.enqueue(
            (0..<count).map { JobRequest(Echo(value: $0), options: .init(queue: queue, namespace: namespace)) }
        )
    }

    /// Jobs leased per namespace in one fetch of `limit`.
    static func fetch(_ db: TestDatabase, _ limit: Int, from queue: String) async throws -> [String: Int] {
        let jobs = try await db.lease(limit, queue: queue, as: "w1", for: .seconds(60))
        return Dictionary(grouping: jobs, by: \.namespace).mapValues(\.count)
    }

    @Test("a fair queue shares every fetch among the tenants waiting in proportion to their weights")
    func weightedShares() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true, by: "test:ops")
        try await db.client.tenants.set("acme", weight: 1)
        try await db.client.tenants.set("bolt", weight: 2)
        try await db.client.tenants.set("cato", weight: 3)
        for tenant in ["acme", "bolt", "cato"] { try await Self.enqueue(db, 60, of: tenant, into: "shared") }
        var total: [String: Int] = [:]
        for round in 0..<10 {
            let shares = try await Self.fetch(db, 6, from: "shared")
            // Weights 1, 2 and 3 split a fetch of six exactly, every time.
            #expect(shares == ["acme": 1, "bolt": 2, "cato": 3], "fetch \(round)")
            total.merge(shares, uniquingKeysWith: +)
        }
        #expect(total == ["acme": 10, "bolt": 20, "cato": 30])
        // Without fairness the same queue is first-come again: the oldest jobs (acme's) come first.
        try await db.client.queues.setFairness("shared", false)
        #expect(try await Self.fetch(db, 6, from: "shared") == ["acme": 6])
        #expect(try await db.client.queues.get("shared")?.isFair == false)
        let events = try await db.client.queues.events("shared")
        #expect(events.map(\.action) == [.fairnessChanged, .fairnessChanged])
        #expect(events.map { $0.details["fair"] } == ["true", "false"])
        #expect(events.first?.performedBy == "test:ops")
    }

    @Test("a tenant alone in a fair queue takes whole fetches, and one with fewer jobs than its share leaves the rest")
    func aloneAndShort() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await Self.enqueue(db, 20, of: "acme", into: "shared")
        #expect(try await Self.fetch(db, 8, from: "shared") == ["acme": 8])
        // Bolt has two jobs: it takes both, and acme the rest of the fetch, so no slot is left unused.
        try await Self.enqueue(db, 2, of: "bolt", into: "shared")
        #expect(try await Self.fetch(db, 8, from: "shared") == ["acme": 6, "bolt": 2])
        #expect(try await Self.fetch(db, 8, from: "shared") == ["acme": 6])
        #expect(try await Self.fetch(db, 8, from: "shared").isEmpty)
    }

    @Test(
        "a quiet tenant's job is leased by the next fetch behind a noisy tenant's backlog, and cannot claim its idle time"
    )
    func quietTenantIsNotStarved() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await Self.enqueue(db, 400, of: "noisy", into: "shared")
        try await Self.enqueue(db, 60, of: "other", into: "shared")
        // Noisy and other compete for four fetches: their virtual times advance together.
        for _ in 0..<4 { #expect(try await Self.fetch(db, 10, from: "shared") == ["noisy": 5, "other": 5]) }
        // Quiet arrives with one job: the very next fetch takes it.
        try await Self.enqueue(db, 1, of: "quiet", into: "shared")
        let next = try await Self.fetch(db, 10, from: "shared")
        #expect(next["quiet"] == 1, "\(next)")
        #expect(next.values.reduce(0, +) == 10)
        // Back with a backlog, quiet starts at most one fetch behind the others, then gets its share.
        try await Self.enqueue(db, 100, of: "quiet", into: "shared")
        let catchingUp = try await Self.fetch(db, 10, from: "shared")
        #expect((catchingUp["quiet"] ?? 0) <= 10, "\(catchingUp)")
        var shares: [String: Int] = [:]
        for _ in 0..<4 { shares.merge(try await Self.fetch(db, 12, from: "shared"), uniquingKeysWith: +) }
        #expect(shares.values.reduce(0, +) == 48)
        for tenant in ["noisy", "other", "quiet"] {
            #expect((14...18).contains(shares[tenant] ?? 0), "\(shares)")
        }
    }

    @Test("a tenant that comes back after another mix of tenants ran starts fresh, and the next fetch serves it")
    func returningTenantStartsFresh() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await Self.enqueue(db, 20, of: "acme", into: "shared")
        try await Self.enqueue(db, 20, of: "bolt", into: "shared")
        for _ in 0..<4 { #expect(try await Self.fetch(db, 10, from: "shared") == ["acme": 5, "bolt": 5]) }
        // Acme and bolt ran far ahead; cato and dora come after them and start from nothing.
        try await Self.enqueue(db, 100, of: "cato", into: "shared")
        try await Self.enqueue(db, 100, of: "dora", into: "shared")
        for _ in 0..<3 { #expect(try await Self.fetch(db, 10, from: "shared") == ["cato": 5, "dora": 5]) }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.fair_shares WHERE queue = 'shared'") == 2)
        // Acme's old virtual time is gone: its job is leased by the next fetch, not after cato and dora catch up.
        try await Self.enqueue(db, 1, of: "acme", into: "shared")
        let next = try await Self.fetch(db, 10, from: "shared")
        #expect(next["acme"] == 1, "\(next)")
    }

    @Test("fetches of a fair queue at the same time serve different tenants instead of waiting for each other")
    func concurrentFetches() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        for tenant in ["acme", "bolt", "cato", "dora"] { try await Self.enqueue(db, 5, of: tenant, into: "shared") }
        // A first fetch stores the four tenants' rows. (A fetch that inserts a tenant's row makes the others
        // wait for its commit, as an insert of the same key does.)
        #expect(try await Self.fetch(db, 4, from: "shared") == ["acme": 1, "bolt": 1, "cato": 1, "dora": 1])
        let fetch = "SELECT namespace FROM \"\(db.schema)\".fetch_jobs('shared', 2, $1, 60000)"
        func namespaces(_ rows: PostgresRowSequence) async throws -> [String] {
            var names: [String] = []
            for try await name in rows.decode(String.self) { names.append(name) }
            return names.sorted()
        }
        try await db.postgres.withConnection { first in
            // The first fetch stays open, holding the rows of the two tenants it serves.
            _ = try await first.query("BEGIN", logger: db.logger)
            var binds = PostgresBindings()
            binds.append("w1")
            let held = try await namespaces(
                try await first.query(PostgresQuery(unsafeSQL: fetch, binds: binds), logger: db.logger)
            )
            #expect(held == ["acme", "bolt"])
            // The second would fail on its lock timeout if it waited for them.
            try await db.postgres.withConnection { second in
                _ = try await second.query("SET lock_timeout = '5s'", logger: db.logger)
                var binds = PostgresBindings()
                binds.append("w2")
                let other = try await namespaces(
                    try await second.query(PostgresQuery(unsafeSQL: fetch, binds: binds), logger: db.logger)
                )
                #expect(other == ["cato", "dora"])
                _ = try await second.query("RESET lock_timeout", logger: db.logger)
            }
            _ = try await first.query("COMMIT", logger: db.logger)
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'running'") == 8)
    }

    @Test("a fair queue under a concurrency limit shares its free slots by weight")
    func fairUnderALimit() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await db.client.queues.setConcurrencyLimit("shared", maxRunning: 3)
        try await db.client.tenants.set("bolt", weight: 2)
        try await Self.enqueue(db, 30, of: "acme", into: "shared")
        try await Self.enqueue(db, 30, of: "bolt", into: "shared")
        var leased: [FetchedJob] = []
        for _ in 0..<4 {
            let jobs = try await db.lease(10, queue: "shared", as: "w1", for: .seconds(60))
            #expect(jobs.count == 3)
            #expect(try await db.lease(10, queue: "shared", as: "w2", for: .seconds(60)).isEmpty)
            leased += jobs
            _ = try await db.store.complete(jobs.map { .succeeded($0) }, logger: db.logger)
        }
        let shares = Dictionary(grouping: leased, by: \.namespace).mapValues(\.count)
        #expect(shares == ["acme": 4, "bolt": 8])
    }

    @Test("a bad weight or tenant name is refused with a stable code and changes nothing stored")
    func badSettings() async throws {
        let db = try TestDatabase.get()
        try await db.client.tenants.set("acme", weight: 2, by: "test:ops")
        for bad in [0, -1, 10_001, .nan, .infinity] as [Double] {
            let error = await #expect(throws: ConveyorError.self) {
                try await db.client.tenants.set("acme", weight: bad)
            }
            #expect(error?.code == .invalidWeight, "\(bad)")
        }
        let badName = await #expect(throws: ConveyorError.self) {
            try await db.client.tenants.set("bad tenant", weight: 1)
        }
        #expect(badName?.code == .invalidNamespace)
        let stored = try await db.client.tenants.get("acme")
        #expect(stored?.weight == 2)
        #expect(stored?.updatedBy == "test:ops")
        #expect(try await db.client.tenants.list().map(\.name) == ["acme"])
        #expect(try await db.client.tenants.remove("acme"))
        #expect(try await db.client.tenants.remove("acme") == false)
        #expect(try await db.client.tenants.get("acme") == nil)
        let events = try await db.client.tenants.events("acme")
        #expect(events.map { $0.details["weight"] } == ["2", "default"])
    }

    @Test("explain counts only the jobs of the same tenant ahead of a job in a fair queue")
    func explainInAFairQueue() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await db.store.registerWorker(
            WorkerPresence(id: "vm-1", queues: ["shared": 4], kinds: [Echo.kind], workflows: []),
            logger: db.logger
        )
        try await Self.enqueue(db, 2, of: "acme", into: "shared")
        let third = try await db.client.jobs.enqueue(Echo(value: 3), options: .init(queue: "shared", namespace: "acme"))
        let bolt = try await db.client.jobs.enqueue(Echo(value: 4), options: .init(queue: "shared", namespace: "bolt"))
        let acme = try await db.client.jobs.explain(third.id)
        #expect(
            acme.sentence
                == "ready: the next fetch of queue shared takes it (0 of 4 slots busy, 2 ahead of it in tenant acme's share)"
        )
        #expect(acme.facts["fair"] == "true")
        let quiet = try await db.client.jobs.explain(bolt.id)
        #expect(
            quiet.sentence
                == "ready: the next fetch of queue shared takes it (0 of 4 slots busy, next in line in tenant bolt's share)"
        )
    }

    @Test("three worker processes drain a fair queue of three tenants, every job once")
    func drainAcrossProcesses() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setFairness("shared", true)
        try await db.client.tenants.set("bolt", weight: 2)
        try await db.client.tenants.set("cato", weight: 3)
        let file = ProcessTests.recordFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        let workers = try (0..<3).map { _ in
            try WorkerProcess(
                database: db,
                arguments: ["--queue", "shared:4", "--heartbeat", "0.3", "--poll", "0.1"]
            )
        }
        try await db.waitUntil("the three workers are listening") { try await db.listeners() == 3 }
        let jobs = try await db.client.jobs.enqueue(
            ["acme", "bolt", "cato"].flatMap { tenant in
                (0..<40).map { _ in
                    JobRequest(
                        ProcessTests.Record(file: file, milliseconds: 2),
                        options: .init(queue: "shared", namespace: tenant)
                    )
                }
            }
        )
        try await db.waitUntil("every job completed", timeout: .seconds(120)) {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == jobs.count
        }
        for worker in workers { #expect(await worker.terminate() == 0, "\(worker.output)") }
        let runs = try RecordedRun.read(file)
        #expect(runs.count == jobs.count)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE attempt <> 1") == 0)
    }
}
