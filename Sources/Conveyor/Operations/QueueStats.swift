import Foundation

/// What one worker's attempts of one queue ended as during one minute: the counts a worker adds to the
/// `queue_stats` table every few seconds.
public struct QueueStatsSample: Sendable, Hashable {
    /// The start of the minute (UTC, seconds zero).
    public var minute: Date
    public var queue: String
    public var started: Int
    public var completed: Int
    public var failed: Int
    public var retried: Int
    public var deadLettered: Int
    public var cancelled: Int
    public var snoozed: Int
    /// Handler run time, summed, in microseconds.
    public var runMicroseconds: Int64

    public init(minute: Date, queue: String) {
        self.minute = minute
        self.queue = queue
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.deadLettered = 0
        self.cancelled = 0
        self.snoozed = 0
        self.runMicroseconds = 0
    }

    /// Whether nothing was counted.
    public var isEmpty: Bool {
        self.started == 0 && self.completed == 0 && self.failed == 0 && self.cancelled == 0 && self.snoozed == 0
    }
}

/// Start latency (from when a job could run to when a worker started it) of the jobs of one queue that started
/// recently, in milliseconds.
public struct StartLatency: Sendable, Hashable {
    public var samples: Int
    public var p50: Double
    public var p95: Double
    public var p99: Double

    public init(samples: Int, p50: Double, p95: Double, p99: Double) {
        self.samples = samples
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
    }
}

/// One queue's figures over the last minute, for `GET /metrics`, `conveyor stats` and the dashboard.
public struct QueueMetrics: Sendable, Hashable {
    public var queue: String
    public var isPaused: Bool
    /// Available now (runnable, waiting for a worker).
    public var available: Int
    /// Scheduled and retryable (waiting for their time).
    public var waiting: Int
    public var running: Int
    public var deadLettered: Int
    /// The states whose counts stopped at ``QueueInfo/countLimit`` (see ``QueueInfo/cappedStates``).
    public var cappedStates: Set<JobState>
    /// Attempts that completed their job in the last 60 s, per second.
    public var completedPerSecond: Double
    /// Attempts that failed in the last 60 s, per second.
    public var failedPerSecond: Double
    /// Completed attempts over all ended attempts in the last 60 s (1 when none ended).
    public var successRate: Double
    /// Failed attempts that scheduled a retry, over all ended attempts in the last 60 s.
    public var retryRate: Double
    /// Completions per minute over the last 30 minutes, oldest first (the dashboard's sparkline).
    public var completedPerMinute: [Int]
    public var startLatency: StartLatency?

    public init(
        queue: String,
        isPaused: Bool,
        available: Int,
        waiting: Int,
        running: Int,
        deadLettered: Int,
        completedPerSecond: Double,
        failedPerSecond: Double,
        successRate: Double,
        retryRate: Double,
        completedPerMinute: [Int],
        startLatency: StartLatency?,
        cappedStates: Set<JobState> = []
    ) {
        self.queue = queue
        self.isPaused = isPaused
        self.available = available
        self.waiting = waiting
        self.running = running
        self.deadLettered = deadLettered
        self.completedPerSecond = completedPerSecond
        self.failedPerSecond = failedPerSecond
        self.successRate = successRate
        self.retryRate = retryRate
        self.completedPerMinute = completedPerMinute
        self.startLatency = startLatency
        self.cappedStates = cappedStates
    }
}
