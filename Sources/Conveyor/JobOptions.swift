import Foundation

/// Per-enqueue options. Every `nil` falls back to the job type's ``JobArguments/defaultOptions`` and then to the
/// documented default.
public struct JobOptions: Sendable, Hashable {
    /// The queue (default `"default"`).
    public var queue: String?
    /// 0 runs first, 9 runs last (default 0).
    public var priority: Int?
    /// Run no earlier than this time. Wins over ``delay``.
    public var runAt: Date?
    /// Run no earlier than this long after the enqueue commits.
    public var delay: Duration?
    /// The attempt budget, 1–1000 (default 20).
    public var maxAttempts: Int?
    /// The attempt timeout recorded with the job; the handler's own timeout wins when it is set.
    public var timeout: Duration?
    /// Free-form labels for filtering, each 1–128 label characters; at most 32.
    public var tags: [String]?
    /// The tenant the job belongs to (default `"default"`).
    public var namespace: String?
    /// A unique key within the namespace: while a job with this key exists in any state but `cancelled` or
    /// `discarded`, enqueuing another returns the existing one. At most 255 bytes.
    public var uniqueKey: String?

    public init(
        queue: String? = nil,
        priority: Int? = nil,
        runAt: Date? = nil,
        delay: Duration? = nil,
        maxAttempts: Int? = nil,
        timeout: Duration? = nil,
        tags: [String]? = nil,
        namespace: String? = nil,
        uniqueKey: String? = nil
    ) {
        self.queue = queue
        self.priority = priority
        self.runAt = runAt
        self.delay = delay
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self.tags = tags
        self.namespace = namespace
        self.uniqueKey = uniqueKey
    }

    /// These options with every `nil` filled from `defaults`.
    public func merged(over defaults: JobOptions) -> JobOptions {
        JobOptions(
            queue: self.queue ?? defaults.queue,
            priority: self.priority ?? defaults.priority,
            runAt: self.runAt ?? defaults.runAt,
            delay: self.delay ?? defaults.delay,
            maxAttempts: self.maxAttempts ?? defaults.maxAttempts,
            timeout: self.timeout ?? defaults.timeout,
            tags: self.tags ?? defaults.tags,
            namespace: self.namespace ?? defaults.namespace,
            uniqueKey: self.uniqueKey ?? defaults.uniqueKey
        )
    }
}
