import Conveyor
import ConveyorCore
import Foundation
import PostgresNIO
import Testing

/// Worker pools: a pool's workers are listed with their slots and running jobs, and a paused pool fetches nothing.
@Suite(.database) struct PoolTests {
    /// The worker's last heartbeat as the database stored it, in microseconds since 2000.
    static func heartbeat(_ db: TestDatabase, _ id: String) async throws -> Int {
        var binds = PostgresBindings()
        binds.append(id)
        return try await db.scalar(
            "SELECT (extract(epoch FROM heartbeat_at) * 1000000)::bigint FROM \(db.schema).workers WHERE id = $1",
            binds
        )
    }

    /// Waits until the worker registered twice more: it has read its pool's pause twice since the call.
    static func twoMoreHeartbeats(_ db: TestDatabase, _ id: String) async throws {
        for _ in 0..<2 {
            let before = try await Self.heartbeat(db, id)
            try await db.waitUntil("worker \(id) heartbeated") { try await Self.heartbeat(db, id) > before }
        }
    }

    static func state(_ db: TestDatabase, _ id: JobID) async throws -> JobState? {
        try await db.client.jobs.get(id)?.state
    }

    @Test("a worker that starts in a paused pool fetches nothing until the pool is resumed")
    func startsPaused() async throws {
        let db = try TestDatabase.get()
        try await db.client.pools.pause("night", by: "test:ops")
        let recorder = Recorder()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in recorder.append(args.value) }
        try await db.withWorker(
            registry,
            configure: {
                $0.pool = "night"
                $0.workerID = "night-1"
                $0.heartbeatInterval = .milliseconds(300)
            }
        ) { _ in
            let job = try await db.client.jobs.enqueue(Echo(value: 7))
            try await db.waitUntil("the worker registered") { try await !db.client.workers.list().isEmpty }
            try await Self.twoMoreHeartbeats(db, "night-1")
            #expect(try await Self.state(db, job.id) == .available)
            #expect(recorder.all.isEmpty)

            let pools = try await db.client.pools.list()
            #expect(pools.map(\.name) == ["night"])
            #expect(pools.first?.isPaused == true)
            #expect(pools.first?.pausedBy == "test:ops")
            #expect(pools.first?.workers == ["night-1"])
            #expect(pools.first?.slots == ["default": 10])

            try await db.client.pools.resume("night", by: "test:ops")
            try await db.waitUntil("the job ran after the resume") { recorder.all == [7] }
            #expect(try await db.client.pools.list().first?.isPaused == false)
        }
        let events = try await db.client.pools.events("night")
        #expect(events.map(\.action) == [.paused, .resumed])
        #expect(events.allSatisfy { $0.performedBy == "test:ops" })
    }

    @Test("pausing a pool stops its workers' fetches while its running job finishes; other pools go on")
    func pauseWhileRunning() async throws {
        let db = try TestDatabase.get()
        let running = Gate()
        let release = Gate()
        let recorder = Recorder()
        var registry = JobRegistry()
        registry.register(Held.self) { args, _ in
            running.open()
            await release.wait()
            recorder.append(args.value)
        }
        registry.register(Echo.self) { args, _ in recorder.append(args.value) }
        try await db.withWorker(
            registry,
            configure: {
                $0.pool = "batch"
                $0.workerID = "batch-1"
                $0.queues = ["bulk": .init(slots: 2, prefetch: 0)]
                $0.heartbeatInterval = .milliseconds(300)
            }
        ) { _ in
            let held = try await db.client.jobs.enqueue(Held(value: 1), options: .init(queue: "bulk"))
            await running.wait()
            // Slots in use reach the pool's listing with the next heartbeat.
            try await db.waitUntil("the pool lists its running job") {
                try await db.client.pools.list().first { $0.name == "batch" }?.running == ["bulk": 1]
            }
            #expect(try await db.client.workers.list().first?.running == ["bulk": 1])

            try await db.client.pools.pause("batch")
            try await Self.twoMoreHeartbeats(db, "batch-1")
            let waiting = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(queue: "bulk"))
            try await Self.twoMoreHeartbeats(db, "batch-1")
            #expect(try await Self.state(db, waiting.id) == .available)

            // The explanation names the pause.
            let explanation = try await db.client.jobs.explain(waiting.id)
            #expect(explanation.reason == .poolPaused, "\(explanation.sentence)")
            #expect(explanation.sentence.contains("paused pool (batch)"))
            #expect(explanation.suggestedAction == "resume pool batch")

            // A worker of another pool takes the job while this one is paused.
            try await db.withWorker(
                registry,
                configure: {
                    $0.pool = "interactive"
                    $0.workerID = "interactive-1"
                    $0.queues = ["bulk": .init(slots: 1)]
                }
            ) { _ in
                try await db.waitUntil("the other pool ran the job") { recorder.all == [2] }
            }

            release.open()
            try await db.waitUntil("the running job finished") { try await Self.state(db, held.id) == .completed }
            #expect(recorder.all == [2, 1])
        }
    }

    @Test("a bad pool name is refused with INVALID_POOL_NAME, by the client and by the worker's configuration")
    func badNames() async throws {
        let db = try TestDatabase.get()
        for name in ["", "has space", String(repeating: "p", count: 300)] {
            let error = await #expect(throws: ConveyorError.self) { try await db.client.pools.pause(name) }
            #expect(error?.code == .invalidPoolName)
        }
        #expect(try await db.client.pools.list().isEmpty)
        var configuration = ConveyorWorker.Configuration()
        configuration.pool = "bad pool"
        #expect(throws: ConveyorError.self) { try configuration.validate() }
    }
}
