import Foundation

/// A worker process as it registers itself: its pool, what it serves, what it is running, and when it last said it
/// is alive.
///
/// A worker upserts its row every heartbeat interval and marks it stopped on shutdown; one that crashed stops
/// refreshing it and counts as gone once ``heartbeatAt`` is older than ``ConveyorClient/Workers/liveWithin``.
public struct WorkerPresence: Sendable, Hashable {
    public var id: String
    /// The pool this process belongs to (see ``ConveyorWorker/Configuration/pool``).
    public var pool: String
    /// Queue names and their execution slots in this process.
    public var queues: [String: Int]
    /// Jobs running now per queue, as of the last heartbeat (queues with none are left out).
    public var running: [String: Int]
    /// Job kinds with a registered handler.
    public var kinds: [String]
    /// Workflows with a registered implementation, as `name@version`.
    public var workflows: [String]
    public var startedAt: Date
    public var heartbeatAt: Date

    public init(
        id: String,
        pool: String = "default",
        queues: [String: Int],
        running: [String: Int] = [:],
        kinds: [String],
        workflows: [String],
        startedAt: Date = Date(),
        heartbeatAt: Date = Date()
    ) {
        self.id = id
        self.pool = pool
        self.queues = queues
        self.running = running
        self.kinds = kinds
        self.workflows = workflows
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}

/// A worker pool: the live workers that name it, their slots and running jobs, and its pause.
///
/// A pool exists while a live worker names it or while it has a pause record. Pausing a pool stops its workers
/// from fetching from their next heartbeat on; the jobs they run finish normally.
public struct PoolInfo: Sendable, Hashable {
    public var name: String
    /// Live workers of the pool, by id.
    public var workers: [String]
    /// Execution slots of the pool's live workers, summed per queue.
    public var slots: [String: Int]
    /// Jobs running now per queue, summed over the pool's live workers as of their last heartbeats.
    public var running: [String: Int]
    public var isPaused: Bool
    public var pausedAt: Date?
    /// Who paused it (see ``EventRecord/performedBy``).
    public var pausedBy: String?

    public init(
        name: String,
        workers: [String] = [],
        slots: [String: Int] = [:],
        running: [String: Int] = [:],
        isPaused: Bool = false,
        pausedAt: Date? = nil,
        pausedBy: String? = nil
    ) {
        self.name = name
        self.workers = workers
        self.slots = slots
        self.running = running
        self.isPaused = isPaused
        self.pausedAt = pausedAt
        self.pausedBy = pausedBy
    }

    /// Every pool that a live worker names or that has a pause record, by name.
    static func assemble(workers: [WorkerPresence], paused: [(name: String, at: Date?, by: String?)]) -> [PoolInfo] {
        var pools: [String: PoolInfo] = [:]
        for worker in workers {
            var pool = pools[worker.pool] ?? PoolInfo(name: worker.pool)
            pool.workers.append(worker.id)
            pool.slots.merge(worker.queues, uniquingKeysWith: +)
            pool.running.merge(worker.running, uniquingKeysWith: +)
            pools[worker.pool] = pool
        }
        for record in paused where record.at != nil {
            var pool = pools[record.name] ?? PoolInfo(name: record.name)
            pool.isPaused = true
            pool.pausedAt = record.at
            pool.pausedBy = record.by
            pools[record.name] = pool
        }
        return pools.values.sorted { $0.name < $1.name }
    }
}
