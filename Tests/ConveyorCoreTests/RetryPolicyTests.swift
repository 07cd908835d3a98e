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

@Suite struct NameValidationTests {
    @Test("labels allow letters, digits and _ - . : only")
    func labels() {
        #expect(NameValidation.checkLabel("mail.outbound:eu-1_a") == nil)
        #expect(NameValidation.checkLabel("") == .empty)
        #expect(NameValidation.checkLabel("a b") == .invalidCharacter(" "))
        #expect(NameValidation.checkLabel("x'; DROP TABLE jobs; --") == .invalidCharacter("'"))
        #expect(NameValidation.checkLabel("é") == .invalidCharacter("é"))
        #expect(NameValidation.checkLabel(String(repeating: "a", count: 129)) == .tooLong(limit: 128))
    }

    @Test("schema names are plain lower-case identifiers")
    func schemas() {
        #expect(NameValidation.checkSchema("conveyor") == nil)
        #expect(NameValidation.checkSchema("_t1") == nil)
        #expect(NameValidation.checkSchema("1abc") == .invalidStart)
        #expect(NameValidation.checkSchema("Conveyor") == .invalidStart)
        #expect(NameValidation.checkSchema("con\"veyor") == .invalidCharacter("\""))
        #expect(NameValidation.checkSchema(String(repeating: "a", count: 64)) == .tooLong(limit: 63))
    }
}
