import Conveyor
import ConveyorCore
import ConveyorPostgres
import Foundation
import Synchronization
import Testing

/// Concurrency limits per queue, enforced in the fetch across every worker.
@Suite(.database) struct ConcurrencyLimitTests {
    /// The most runs that overlapped, from their start and end times.
    static func mostOverlapping(_ runs: [(start: UInt64, end: UInt64)]) -> Int {
        // Ends sort before starts at the same instant: a run that ended as another started did not overlap it.
        let events = runs.flatMap { [($0.start, 1), ($0.end, -1)] }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        var running = 0
        var most = 0
        for (_, change) in events {
            running += change
            most = max(most, running)
        }
        return most
    }

    @Test("a fetch leases no more jobs than the queue's free slots, and a finished job frees its slot")
    func fetchHonoursTheLimit() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 2, by: "test:ops")
        _ = try await db.client.jobs.enqueue(
            (0..<6).map { JobRequest(Echo(value: $0), options: .init(queue: "capped")) }
        )
        let first = try await db.lease(5, queue: "capped", as: "w1", for: .seconds(30))
        #expect(first.count == 2)
        #expect(try await db.lease(5, queue: "capped", as: "w2", for: .seconds(30)).isEmpty)
        // A result frees its slot; so does a lease that expired and was taken back by the reaper.
        _ = try await db.store.complete([.succeeded(first[0])], logger: db.logger)
        let second = try await db.lease(5, queue: "capped", as: "w2", for: .milliseconds(1))
        #expect(second.count == 1)
        try await db.waitUntil("the short lease expired") {
            try await db.scalar(
                "SELECT count(*) FROM {schema}.jobs WHERE queue = 'capped' AND lease_expires_at < now()"
            ) == 1
        }
        let reaped = try await db.reapExpiredLeases().reaped
        #expect(reaped == [second[0].id])
        #expect(try await db.lease(5, queue: "capped", as: "w3", for: .seconds(30)).count == 1)
        // Queues without a limit are not affected.
        _ = try await db.client.jobs.enqueue((0..<4).map { JobRequest(Echo(value: $0), options: .init(queue: "free")) })
        #expect(try await db.lease(5, queue: "free", as: "w1", for: .seconds(30)).count == 4)

        // Raising the limit adds slots; removing it drops them.
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 3)
        #expect(try await db.lease(5, queue: "capped", as: "w4", for: .seconds(30)).count == 1)
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: nil)
        #expect(try await db.client.queues.get("capped")?.maxRunning == nil)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.queue_slots") == 0)
        // Without the limit a fetch takes all it asks for: the one left available (the reaped job waits to be
        // staged as retryable) and three more, beside the four jobs already running.
        _ = try await db.client.jobs.enqueue(
            (0..<3).map { JobRequest(Echo(value: $0), options: .init(queue: "capped")) }
        )
        #expect(try await db.lease(5, queue: "capped", as: "w4", for: .seconds(30)).count == 4)
        let events = try await db.client.queues.events("capped")
        #expect(events.map(\.action) == [.limitChanged, .limitChanged, .limitChanged])
        #expect(events.map { $0.details["max_running"] } == ["2", "3", "none"])
    }

    @Test("a limit set on a busy queue counts the jobs already running, and one lowered below them takes none")
    func limitOnABusyQueue() async throws {
        let db = try TestDatabase.get()
        _ = try await db.client.jobs.enqueue((0..<6).map { JobRequest(Echo(value: $0), options: .init(queue: "busy")) })
        let running = try await db.lease(3, queue: "busy", as: "w1", for: .seconds(30))
        #expect(running.count == 3)
        try await db.client.queues.setConcurrencyLimit("busy", maxRunning: 4)
        let fourth = try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30))
        #expect(fourth.count == 1)
        try await db.client.queues.setConcurrencyLimit("busy", maxRunning: 2)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).isEmpty)
        // Two of the four finish: two still run, at the limit.
        _ = try await db.store.complete([.succeeded(running[0]), .succeeded(running[1])], logger: db.logger)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).isEmpty)
        _ = try await db.store.complete([.succeeded(running[2])], logger: db.logger)
        #expect(try await db.lease(5, queue: "busy", as: "w2", for: .seconds(30)).count == 1)
    }

    @Test("a limit out of range is refused with INVALID_OPTION and the stored limit stays")
    func badLimits() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 4)
        for bad in [0, -1, 10_001] {
            let error = await #expect(throws: ConveyorError.self) {
                try await db.client.queues.setConcurrencyLimit("capped", maxRunning: bad)
            }
            #expect(error?.code == .invalidOption)
        }
        let badName = await #expect(throws: ConveyorError.self) {
            try await db.client.queues.setConcurrencyLimit("bad queue", maxRunning: 1)
        }
        #expect(badName?.code == .invalidQueueName)
        #expect(try await db.client.queues.get("capped")?.maxRunning == 4)
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.queue_slots WHERE queue = 'capped'") == 4)
    }

    @Test("three workers with nine slots between them never run more than the limit of two at once")
    func limitHoldsAcrossWorkers() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 2)
        let clock = ContinuousClock()
        let origin = clock.now
        let runs = Mutex<[(start: UInt64, end: UInt64)]>([])
        let nanoseconds: @Sendable () -> UInt64 = {
            let elapsed = clock.now - origin
            return UInt64(elapsed.components.seconds) * 1_000_000_000
                + UInt64(elapsed.components.attoseconds / 1_000_000_000)
        }
        let registry = {
            var registry = JobRegistry()
            registry.register(Echo.self) { _, _ in
                let start = nanoseconds()
                try await Task.sleep(for: .milliseconds(15))
                runs.withLock { $0.append((start, nanoseconds())) }
            }
            return registry
        }()
        let total = 40
        @Sendable func worker(_ id: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
            try await db.withWorker(
                registry,
                configure: {
                    $0.workerID = id
                    $0.queues = ["capped": .init(slots: 3, prefetch: 0)]
                }
            ) { _ in try await body() }
        }
        try await worker("a") {
            try await worker("b") {
                try await worker("c") {
                    _ = try await db.client.jobs.enqueue(
                        (0..<total).map { JobRequest(Echo(value: $0), options: .init(queue: "capped")) }
                    )
                    try await db.waitUntil("every job ran") { runs.withLock { $0.count } == total }
                }
            }
        }
        let most = Self.mostOverlapping(runs.withLock { $0 })
        #expect(most <= 2, "\(most) jobs ran at once under a limit of 2")
        #expect(most == 2, "the limit's two slots were never used together")
    }

    @Test("three worker processes never run more jobs of a limited queue at once than its limit")
    func limitHoldsAcrossProcesses() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 3)
        let file = ProcessTests.recordFile()
        defer { try? FileManager.default.removeItem(atPath: file) }
        let workers = try (0..<3).map { _ in
            try WorkerProcess(
                database: db,
                arguments: ["--queue", "capped:4", "--prefetch", "0", "--heartbeat", "0.3", "--poll", "0.1"]
            )
        }
        try await db.waitUntil("the three workers are listening") { try await db.listeners() == 3 }
        let jobs = try await db.client.jobs.enqueue(
            (0..<60).map { _ in
                JobRequest(ProcessTests.Record(file: file, milliseconds: 10), options: .init(queue: "capped"))
            }
        )
        try await db.waitUntil("every job completed", timeout: .seconds(120)) {
            try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'") == jobs.count
        }
        for worker in workers { #expect(await worker.terminate() == 0, "\(worker.output)") }
        let runs = try RecordedRun.read(file)
        #expect(runs.count == jobs.count)
        let most = Self.mostOverlapping(runs.map { ($0.start, $0.end) })
        #expect(most <= 3, "\(most) jobs ran at once under a limit of 3")
        #expect(most >= 2, "the limit's slots were never used together")
    }

    @Test("a job of a queue at its limit is explained as waiting for the limit")
    func explainAtLimit() async throws {
        let db = try TestDatabase.get()
        try await db.client.queues.setConcurrencyLimit("capped", maxRunning: 1)
        try await db.store.registerWorker(
            WorkerPresence(id: "vm-1", queues: ["capped": 4], kinds: [Echo.kind], workflows: []),
            logger: db.logger
        )
        _ = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "capped"))
        let waiting = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(queue: "capped"))
        #expect(try await db.lease(5, queue: "capped", as: "vm-1", for: .seconds(30)).count == 1)
        let explanation = try await db.client.jobs.explain(waiting.id)
        #expect(explanation.reason == .queueAtLimit, "\(explanation.sentence)")
        #expect(explanation.sentence == "waiting: queue capped is at its limit of 1 running (next in line)")
        #expect(explanation.facts["max_running"] == "1")
    }
}
