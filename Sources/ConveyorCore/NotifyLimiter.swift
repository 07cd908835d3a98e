/// Coalesces wake-up notifications per queue: at most one per interval, plus one trailing notification for
/// whatever was suppressed, so the last job of a burst never waits for a poll.
///
/// PostgreSQL serialises the commits of transactions that sent NOTIFY on one lock, and each notification wakes
/// every listening worker; a burst of single enqueues should cost a handful of notifications, not one each.
/// Pure: the caller passes the time in and schedules the trailing flush.
public struct NotifyLimiter<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    /// What the caller should do for one enqueue.
    public enum Decision: Sendable, Equatable {
        /// Send a notification with the insert.
        case send
        /// Do not send now. When `trailingAt` is set, call ``flush(queue:now:)`` at that time and send if it says so.
        case suppress(trailingAt: Instant?)
    }

    public let interval: Duration
    private var lastSent: [String: Instant] = [:]
    private var trailing: Set<String> = []

    public init(interval: Duration) {
        self.interval = interval
    }

    public mutating func request(queue: String, now: Instant) -> Decision {
        if let last = self.lastSent[queue], now < last.advanced(by: self.interval) {
            if self.trailing.insert(queue).inserted {
                return .suppress(trailingAt: last.advanced(by: self.interval))
            }
            return .suppress(trailingAt: nil)
        }
        self.lastSent[queue] = now
        if self.lastSent.count > 10_000 {
            self.forgetOld(now: now)
        }
        return .send
    }

    /// Whether a trailing notification is still owed for `queue`; records it as sent when it is.
    public mutating func flush(queue: String, now: Instant) -> Bool {
        guard self.trailing.remove(queue) != nil else { return false }
        self.lastSent[queue] = now
        return true
    }

    private mutating func forgetOld(now: Instant) {
        self.lastSent = self.lastSent.filter {
            now < $0.value.advanced(by: self.interval) || self.trailing.contains($0.key)
        }
    }
}
