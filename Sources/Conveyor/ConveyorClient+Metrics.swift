import ConveyorCore
import Foundation

extension ConveyorClient {
    /// Per-queue figures for operators: depth, running, throughput, success and retry rates, start latency.
    public var metrics: Metrics { Metrics(client: self) }

    /// Reads the figures of `GET /metrics`, `conveyor stats` and the dashboard from cheap sources: counts through the
    /// partial indexes of unfinished and dead-lettered jobs, the per-minute stats that workers write, and the newest
    /// few thousand jobs for start latency. Nothing here counts finished jobs.
    public struct Metrics: Sendable {
        let client: ConveyorClient

        /// How many of the newest jobs start latency is computed from.
        public static let latencySampleSize = 2000

        /// Every queue's figures, ordered by name.
        public func queues() async throws -> [QueueMetrics] {
            let store = self.client.store
            let logger = self.client.logger
            async let now = store.databaseNow(logger: logger)
            async let infos = store.queues(logger: logger)
            async let stats = store.queueStats(minutes: 31, logger: logger)
            async let latencies = store.startLatencies(
                within: .seconds(60),
                sampleSize: Self.latencySampleSize,
                logger: logger
            )
            return Self.combine(
                now: try await now,
                queues: try await infos,
                stats: try await stats,
                latencies: try await latencies
            )
        }

        /// Combines the sources at `now`. Rates are over the last 60 s: the current minute's counts plus the part of
        /// the previous minute that the window still covers.
        static func combine(
            now: Date,
            queues: [QueueInfo],
            stats: [QueueStatsSample],
            latencies: [String: StartLatency]
        ) -> [QueueMetrics] {
            let currentMinute = (now.timeIntervalSince1970 / 60).rounded(.down)
            let covered = 1 - (now.timeIntervalSince1970 / 60 - currentMinute)
            var byQueue: [String: [Int: QueueStatsSample]] = [:]
            for sample in stats {
                let age = Int(currentMinute - (sample.minute.timeIntervalSince1970 / 60).rounded(.down))
                byQueue[sample.queue, default: [:]][age] = sample
            }
            let names = Set(queues.map(\.name)).union(byQueue.keys).sorted()
            let infos = Dictionary(queues.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            return names.map { name in
                let info = infos[name]
                let minutes = byQueue[name] ?? [:]
                func windowed(_ value: (QueueStatsSample) -> Int) -> Double {
                    Double(minutes[0].map(value) ?? 0) + Double(minutes[1].map(value) ?? 0) * covered
                }
                let completed = windowed(\.completed)
                let failed = windowed(\.failed)
                let retried = windowed(\.retried)
                let ended = completed + failed
                return QueueMetrics(
                    queue: name,
                    isPaused: info?.isPaused ?? false,
                    available: info?.counts[.available] ?? 0,
                    waiting: (info?.counts[.scheduled] ?? 0) + (info?.counts[.retryable] ?? 0),
                    running: info?.counts[.running] ?? 0,
                    deadLettered: info?.counts[.discarded] ?? 0,
                    completedPerSecond: completed / 60,
                    failedPerSecond: failed / 60,
                    successRate: ended > 0 ? completed / ended : 1,
                    retryRate: ended > 0 ? retried / ended : 0,
                    completedPerMinute: (0..<30).reversed().map { minutes[$0]?.completed ?? 0 },
                    startLatency: latencies[name],
                    cappedStates: info?.cappedStates ?? []
                )
            }
        }
    }
}
