import ConveyorCore
import Testing

@Suite struct NotifyLimiterTests {
    typealias Instant = ContinuousClock.Instant

    @Test("a burst sends one notification up front and one trailing, per queue")
    func burstIsCoalesced() {
        let start = ContinuousClock.now
        var limiter = NotifyLimiter<Instant>(interval: .milliseconds(10))
        do {
            let decision = limiter.request(queue: "a", now: start)
            #expect(decision == .send)
        }
        do {
            let decision = limiter.request(queue: "b", now: start)
            #expect(decision == .send)
        }
        let trailingAt = start.advanced(by: .milliseconds(10))
        do {
            let decision = limiter.request(queue: "a", now: start.advanced(by: .milliseconds(1)))
            #expect(decision == .suppress(trailingAt: trailingAt))
        }
        for step in 2..<10 {
            do {
                let decision = limiter.request(queue: "a", now: start.advanced(by: .milliseconds(step)))
                #expect(decision == .suppress(trailingAt: nil))
            }
        }
        let owed = limiter.flush(queue: "a", now: trailingAt)
        let owedAgain = limiter.flush(queue: "a", now: trailingAt)
        let owedOther = limiter.flush(queue: "b", now: trailingAt)
        #expect(owed)
        #expect(!owedAgain)
        #expect(!owedOther)
        // The trailing notification counts as the last one sent.
        do {
            let decision = limiter.request(queue: "a", now: trailingAt.advanced(by: .milliseconds(5)))
            #expect(decision != .send)
        }
        do {
            let decision = limiter.request(queue: "a", now: trailingAt.advanced(by: .milliseconds(10)))
            #expect(decision == .send)
        }
    }
}
