import ConveyorCore
import Testing

@Suite struct RetryPolicyTests {
    @Test("the delay doubles per attempt until the cap")
    func delayGrowsExponentiallyUntilTheCap() {
        let policy = RetryPolicy(base: .seconds(1), multiplier: 2, maximum: .seconds(10), jitter: 0)
        let delays = (1...6).map { policy.delay(afterAttempt: $0, unitRandom: 0.5) }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
    }

    @Test("jitter spreads the delay within its fraction and never below zero")
    func jitterStaysWithinItsFraction() {
        let policy = RetryPolicy(base: .seconds(10), multiplier: 1, maximum: .seconds(10), jitter: 0.1)
        #expect(policy.delay(afterAttempt: 1, unitRandom: 0) == .seconds(9))
        #expect(policy.delay(afterAttempt: 1, unitRandom: 0.5) == .seconds(10))
        #expect(policy.delay(afterAttempt: 1, unitRandom: 1) == .seconds(11))
        let wild = RetryPolicy(base: .seconds(1), multiplier: 1, maximum: .seconds(1), jitter: 5)
        #expect(wild.delay(afterAttempt: 1, unitRandom: 0) == .zero)
    }

    @Test("huge attempt numbers stay at the cap instead of overflowing")
    func hugeAttemptNumbersStayAtTheCap() {
        let policy = RetryPolicy(base: .seconds(1), multiplier: 2, maximum: .seconds(3600), jitter: 0)
        #expect(policy.delay(afterAttempt: 5000, unitRandom: 0.5) == .seconds(3600))
    }

    @Test("a policy with huge or non-finite fields yields a bounded delay instead of trapping")
    func hugeFieldsDoNotTrap() {
        let longest = Duration.milliseconds(Int64(RetryPolicy.longestDelaySeconds * 1000))
        let huge = RetryPolicy(base: .seconds(Int64.max), multiplier: 2, maximum: .seconds(Int64.max), jitter: 0)
        #expect(huge.delay(afterAttempt: 3, unitRandom: 0.5) == longest)
        let nan = RetryPolicy(base: .seconds(1), multiplier: .nan, maximum: .seconds(10), jitter: .nan)
        #expect(nan.delay(afterAttempt: 2, unitRandom: 0.5) <= longest)
        let infinite = RetryPolicy(base: .seconds(1), multiplier: .infinity, maximum: .seconds(60), jitter: 0)
        #expect(infinite.delay(afterAttempt: 4, unitRandom: 0.5) == .seconds(60))
    }

    @Test("durations convert to milliseconds saturating, and untrusted seconds are checked")
    func durationConversionsDoNotTrap() {
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == Int64.max)
        #expect(Duration.seconds(Int64.min).wholeNanoseconds == Int64.min)
        #expect(Duration.milliseconds(1500).wholeMilliseconds == 1500)
        #expect(Duration.checkedSeconds(.infinity) == nil)
        #expect(Duration.checkedSeconds(.nan) == nil)
        #expect(Duration.checkedSeconds(1e300) == nil)
        #expect(Duration.checkedSeconds(1.5) == .milliseconds(1500))
    }
}

@Suite struct BackoffTests {
    @Test("backoff doubles from its start to its cap, jittered within the upper half, and resets")
    func backoffGrowsAndResets() {
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        let upper = (0..<6).map { _ in backoff.next(unitRandom: 1) }
        #expect(
            upper == [50, 100, 200, 400, 500, 500].map { Duration.milliseconds($0) }
        )
        #expect(backoff.failures == 6)
        backoff.reset()
        #expect(backoff.next(unitRandom: 0) == .milliseconds(25))
    }
}
