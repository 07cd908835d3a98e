import Logging
import Synchronization

/// The client's side of wake-up coalescing: a ``NotifyLimiter`` shared by every enqueue of one client.
final class NotificationCoalescer: Sendable {
    struct Plan {
        /// Whether the insert itself should notify.
        var notifyNow: Bool
        /// Queues owed a trailing notification, and when.
        var trailing: [(String, ContinuousClock.Instant)]
    }

    private let limiter: Mutex<NotifyLimiter<ContinuousClock.Instant>>

    init(interval: Duration) {
        self.limiter = Mutex(NotifyLimiter(interval: interval))
    }

    func plan(queues: Set<String>) -> Plan {
        let now = ContinuousClock.now
        return self.limiter.withLock { limiter in
            var plan = Plan(notifyNow: false, trailing: [])
            for queue in queues {
                switch limiter.request(queue: queue, now: now) {
                case .send: plan.notifyNow = true
                case .suppress(let trailingAt?): plan.trailing.append((queue, trailingAt))
                case .suppress(nil): break
                }
            }
            return plan
        }
    }

    /// Sends the trailing notification for `queue` at `deadline`, unless one was sent meanwhile. A short-lived
    /// task: it sleeps at most one coalescing interval and sends one statement; a failure only delays the jobs
    /// until the workers' next poll.
    func scheduleTrailing(queue: String, at deadline: ContinuousClock.Instant, store: any JobStore, logger: Logger) {
        Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            let owed = self.limiter.withLock { $0.flush(queue: queue, now: ContinuousClock.now) }
            guard owed else { return }
            do {
                try await store.notify(queues: [queue], logger: logger)
            } catch {
                logger.debug("trailing notification failed", metadata: ["queue": "\(queue)", "error": "\(error)"])
            }
        }
    }
}
