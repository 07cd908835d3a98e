import Foundation

/// A worker process as it registers itself: what it serves, and when it last said it is alive.
///
/// A worker upserts its row every heartbeat interval and marks it stopped on shutdown; one that crashed stops
/// refreshing it and counts as gone once ``heartbeatAt`` is older than ``ConveyorClient/Workers/liveWithin``.
public struct WorkerPresence: Sendable, Hashable {
    public var id: String
    /// Queue names and their execution slots in this process.
    public var queues: [String: Int]
    /// Job kinds with a registered handler.
    public var kinds: [String]
    /// Workflows with a registered implementation, as `name@version`.
    public var workflows: [String]
    public var startedAt: Date
    public var heartbeatAt: Date

    public init(
        id: String,
        queues: [String: Int],
        kinds: [String],
        workflows: [String],
        startedAt: Date = Date(),
        heartbeatAt: Date = Date()
    ) {
        self.id = id
        self.queues = queues
        self.kinds = kinds
        self.workflows = workflows
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}
