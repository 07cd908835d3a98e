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
}
