/// How long to wait before the next attempt of a failed job.
///
/// The delay grows exponentially with the attempt number, is capped, and is spread by jitter so that many jobs
/// that failed together do not retry together. The computation is pure: the random source is passed in.
public struct RetryPolicy: Sendable, Hashable {
    /// The delay after the first failed attempt.
    public var base: Duration
    /// The factor by which each further attempt multiplies the delay.
    public var multiplier: Double
    /// The largest delay, before jitter.
    public var maximum: Duration
    /// The fraction of the delay that is randomised: 0.1 gives ±10 %.
    public var jitter: Double

    /// Creates a policy.
    ///
    /// - Parameters:
    ///   - base: The delay after the first failed attempt (default 1 s).
    ///   - multiplier: Growth per attempt (default 2).
    ///   - maximum: Cap on the delay (default 1 h).
    ///   - jitter: Random spread as a fraction of the delay (default 0.1).
    public init(
        base: Duration = .seconds(1),
        multiplier: Double = 2,
        maximum: Duration = .seconds(3600),
        jitter: Double = 0.1
    ) {
        self.base = base
        self.multiplier = multiplier
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The default policy: 1 s, 2 s, 4 s, … capped at one hour, ±10 %.
    public static let `default` = RetryPolicy()

    /// A policy without growth or jitter, useful in tests and for jobs that should retry promptly.
    public static func constant(_ delay: Duration) -> RetryPolicy {
        RetryPolicy(base: delay, multiplier: 1, maximum: delay, jitter: 0)
    }

    /// The delay before the attempt after `attempt` (1-based: the attempt that just failed).
    ///
    /// - Parameters:
    ///   - attempt: The number of the attempt that failed, starting at 1.
    ///   - unitRandom: A value in `0..<1`; `0.5` gives the delay without jitter.
    public func delay(afterAttempt attempt: Int, unitRandom: Double) -> Duration {
        let baseSeconds = self.base.inSeconds
        let maximumSeconds = self.maximum.inSeconds
        let exponent = Double(max(0, attempt - 1))
        var seconds = baseSeconds * pow(self.multiplier, exponent)
        if !seconds.isFinite || seconds > maximumSeconds {
            seconds = maximumSeconds
        }
        let spread = seconds * self.jitter * (2 * min(max(unitRandom, 0), 1) - 1)
        seconds += spread
        // Whatever the fields hold (a NaN jitter, a maximum of `Duration.seconds(Int64.max)`), the delay is a
        // number of milliseconds the database can add to a time, never a trap.
        guard seconds.isFinite else { return .milliseconds(Int64(Self.longestDelaySeconds * 1000)) }
        seconds = min(max(0, seconds), Self.longestDelaySeconds)
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The longest delay a policy yields, whatever its fields say: 100 years.
    public static let longestDelaySeconds: Double = 100 * 365.25 * 86_400

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 {
            result *= base
            remaining -= 1
            if !result.isFinite { return result }
        }
        return result
    }
}
