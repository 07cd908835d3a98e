import Conveyor
import ConveyorCore
import Foundation
import Synchronization

/// Keeps the last metrics read for a moment, so that any number of dashboards refreshing every second and scrapers
/// cost the database one read per interval: callers that come while a read is under way wait for that read
/// instead of starting their own.
final class MetricsCache: Sendable {
    private struct Entry: Sendable {
        var at: ContinuousClock.Instant
        var read: Task<Value, any Error>
    }

    struct Value: Sendable {
        var queues: [QueueMetrics]
        var deadLetters: [DeadLetterReason: Int]
    }

    private let interval: Duration
    private let state = Mutex<Entry?>(nil)

    init(interval: Duration) {
        self.interval = interval
    }

    func value(_ client: ConveyorClient) async throws -> Value {
        let now = ContinuousClock.now
        let read = self.state.withLock { entry -> Task<Value, any Error> in
            if let entry, now - entry.at < self.interval { return entry.read }
            let read = Task {
                async let deadLetters = client.store.deadLetterCounts(logger: client.logger)
                let queues = try await client.metrics.queues()
                return Value(queues: queues, deadLetters: try await deadLetters)
            }
            entry = Entry(at: now, read: read)
            return read
        }
        do {
            return try await read.value
        } catch {
            // A failed read is not kept: the next caller tries again.
            self.state.withLock { entry in
                if let current = entry, current.at == now { entry = nil }
            }
            throw error
        }
    }

    func queues(_ client: ConveyorClient) async throws -> [QueueMetrics] {
        try await self.value(client).queues
    }
}
