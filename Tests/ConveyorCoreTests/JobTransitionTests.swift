import ConveyorCore
import Testing

@Suite struct JobTransitionTests {
    let policy = RetryPolicy.constant(.seconds(5))

    @Test("a failure with attempts left schedules a retry after the backoff")
    func failureWithAttemptsLeftRetries() {
        let transition = JobTransition.after(
            .failed(message: "boom"),
            attempt: 1,
            maxAttempts: 3,
            retryPolicy: self.policy,
            unitRandom: 0.5
        )
        #expect(transition.state == .retryable)
        #expect(transition.runAfter == .seconds(5))
        #expect(transition.errorCode == .handlerError)
        #expect(transition.deadReason == nil)
        #expect(transition.countsAttempt)
    }

    @Test("the last failed attempt dead-letters with MAX_ATTEMPTS_EXCEEDED")
    func lastFailureDeadLetters() {
        for result in [AttemptResult.failed(message: "x"), .leaseExpired, .timedOut] {
            let transition = JobTransition.after(
                result,
                attempt: 3,
                maxAttempts: 3,
                retryPolicy: self.policy,
                unitRandom: 0.5
            )
            #expect(transition.state == .discarded)
            #expect(transition.deadReason == .maxAttemptsExceeded)
        }
    }

    @Test("non-retryable errors, discards, unknown kinds and bad arguments dead-letter at once with their reason")
    func immediateDeadLetters() {
        let cases: [(AttemptResult, DeadLetterReason)] = [
            (.failedNonRetryable(message: "no"), .nonRetryable),
            (.discarded(reason: "spam"), .discarded),
            (.unknownKind, .unknownKind),
            (.malformedArguments(message: "bad"), .malformedArguments),
        ]
        for (result, reason) in cases {
            let transition = JobTransition.after(
                result,
                attempt: 1,
                maxAttempts: 10,
                retryPolicy: self.policy,
                unitRandom: 0.5
            )
            #expect(transition.state == .discarded)
            #expect(transition.deadReason == reason)
        }
    }

    @Test("a timeout dead-letters with TIMEOUT when the job type does not retry timeouts")
    func timeoutWithoutRetry() {
        let transition = JobTransition.after(
            .timedOut,
            attempt: 1,
            maxAttempts: 10,
            retryPolicy: self.policy,
            retryOnTimeout: false,
            unitRandom: 0.5
        )
        #expect(transition.state == .discarded)
        #expect(transition.deadReason == .timeout)
    }

    @Test("snoozes and shutdown releases do not count as attempts")
    func snoozeAndReleaseDoNotCount() {
        let snooze = JobTransition.after(
            .snoozed(.seconds(7)),
            attempt: 3,
            maxAttempts: 3,
            retryPolicy: self.policy,
            unitRandom: 0.5
        )
        #expect(snooze.state == .scheduled)
        #expect(snooze.runAfter == .seconds(7))
        #expect(!snooze.countsAttempt)
        let release = JobTransition.after(
            .released,
            attempt: 3,
            maxAttempts: 3,
            retryPolicy: self.policy,
            unitRandom: 0.5
        )
        #expect(release.state == .available)
        #expect(release.errorCode == .shutdown)
        #expect(!release.countsAttempt)
    }
}
