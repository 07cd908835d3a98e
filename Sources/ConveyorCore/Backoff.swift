/// Exponential backoff for retrying a failed call: `initial`, doubling up to `maximum`, each delay drawn with
/// jitter from its upper half so that many workers that failed together do not retry together.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    /// Failures since the last ``reset()``.
    public private(set) var failures = 0

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// Records a failure and returns how long to wait before the next try.
    public mutating func next(unitRandom: Double = Double.random(in: 0..<1)) -> Duration {
        self.failures += 1
        var delay = self.initial
        for _ in 1..<min(self.failures, 32) where delay < self.maximum {
            delay *= 2
        }
        delay = min(delay, self.maximum)
        return delay / 2 + delay / 2 * min(max(unitRandom, 0), 1)
    }

    /// A call succeeded: the next failure starts from `initial` again.
    public mutating func reset() {
        self.failures = 0
    }
}
