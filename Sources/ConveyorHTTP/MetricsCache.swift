import Conveyor
import Foundation
import Synchronization

/// Keeps the last metrics read for a moment, so that any number of dashboards refreshing every second and scrapers
/// cost the database one read per interval.
final class MetricsCache: Sendable {
    private let interval: Duration
    private let state = Mutex<(at: ContinuousClock.Instant, value: [QueueMetrics])?>(nil)

    init(interval: Duration) {
        self.interval = interval
    }

    func queues(_ client: ConveyorClient) async throws -> [QueueMetrics] {
        let now = ContinuousClock.now
        if let cached = self.state.withLock({ $0 }), now - cached.at < self.interval {
            return cached.value
        }
        let value = try await client.metrics.queues()
        self.state.withLock { $0 = (now, value) }
        return value
    }
}
