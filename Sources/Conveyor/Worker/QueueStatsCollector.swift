import ConveyorCore
import Foundation
import Synchronization

/// Counts what this worker's attempts ended as, per queue and minute, in memory; the worker's stats loop drains it
/// into the `queue_stats` table every few seconds. One lock per started and per finished attempt: no database
/// write on the hot path.
final class QueueStatsCollector: Sendable {
    private struct Key: Hashable {
        var minute: Int64
        var queue: String
    }

    private let samples = Mutex<[Key: QueueStatsSample]>([:])

    private static func minute(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 / 60).rounded(.down)) }

    private func update(_ queue: String, _ body: (inout QueueStatsSample) -> Void) {
        let minute = Self.minute(Date())
        self.samples.withLock { samples in
            let key = Key(minute: minute, queue: queue)
            var sample =
                samples[key] ?? QueueStatsSample(minute: Date(timeIntervalSince1970: Double(minute) * 60), queue: queue)
            body(&sample)
            samples[key] = sample
        }
    }

    func started(queue: String) {
        self.update(queue) { $0.started += 1 }
    }

    func finished(queue: String, transition: JobTransition, durationNanoseconds: Int64?) {
        self.update(queue) { sample in
            sample.runMicroseconds += (durationNanoseconds ?? 0) / 1000
            switch transition.outcome {
            case .completed: sample.completed += 1
            case .snoozed: sample.snoozed += 1
            case .cancelled: sample.cancelled += 1
            case .failed: sample.failed += 1
            case .discarded, .released, .suspended: break
            }
            if transition.state == .retryable { sample.retried += 1 }
            if transition.deadReason != nil { sample.deadLettered += 1 }
        }
    }

    /// Takes every counted sample out.
    func drain() -> [QueueStatsSample] {
        self.samples.withLock { samples in
            defer { samples = [:] }
            return Array(samples.values)
        }
    }

    /// Puts samples back after a write failed, adding to what was counted meanwhile, so that nothing is lost while
    /// the database is away (at most a day of minutes per queue is kept).
    func restore(_ drained: [QueueStatsSample]) {
        self.samples.withLock { samples in
            for old in drained {
                let key = Key(minute: Self.minute(old.minute), queue: old.queue)
                var sample = samples[key] ?? QueueStatsSample(minute: old.minute, queue: old.queue)
                sample.started += old.started
                sample.completed += old.completed
                sample.failed += old.failed
                sample.retried += old.retried
                sample.deadLettered += old.deadLettered
                sample.cancelled += old.cancelled
                sample.snoozed += old.snoozed
                sample.runMicroseconds += old.runMicroseconds
                samples[key] = sample
            }
            if samples.count > 1440 * 16 {
                let newest = samples.keys.sorted { $0.minute > $1.minute }.prefix(1440 * 16)
                samples = samples.filter { newest.contains($0.key) }
            }
        }
    }
}
