/// What happened when a worker ran one attempt of a job, before policy is applied.
public enum AttemptResult: Sendable, Hashable {
    /// The handler returned.
    case succeeded
    /// The handler threw an ordinary error; the job retries by policy.
    case failed(message: String)
    /// The handler threw an error marked as not worth retrying.
    case failedNonRetryable(message: String)
    /// The handler ran past its timeout.
    case timedOut
    /// The reaper found the lease expired: the worker crashed, hung or lost its connection.
    case leaseExpired
    /// The handler asked to run again after a delay; the attempt does not count.
    case snoozed(Duration)
    /// The handler, or a client while the job ran, cancelled the job.
    case cancelled(reason: String)
    /// The handler asked for the job to be dead-lettered.
    case discarded(reason: String)
    /// No handler is registered for the job's kind.
    case unknownKind
    /// The arguments could not be decoded.
    case malformedArguments(message: String)
    /// The worker shut down before the handler finished; the attempt does not count.
    case released
}

/// The state a job moves to after an attempt, decided by ``AttemptResult`` and policy.
public struct JobTransition: Sendable, Hashable {
    /// The job's next state.
    public var state: JobState
    /// For `scheduled` and `retryable`: how long from now until the job may run again.
    public var runAfter: Duration?
    /// For `discarded`: the dead-letter reason.
    public var deadReason: DeadLetterReason?
    /// The outcome written into the attempt history.
    public var outcome: AttemptOutcome
    /// The error code written into the attempt history, if the attempt failed.
    public var errorCode: AttemptErrorCode?
    /// The error message written into the attempt history and `last_error`.
    public var errorMessage: String?
    /// Whether the attempt counts towards `max_attempts`. Snoozes and shutdown releases do not.
    public var countsAttempt: Bool

    /// Applies policy to the result of attempt number `attempt` (1-based) of a job allowed `maxAttempts`.
    ///
    /// - Parameters:
    ///   - result: What happened.
    ///   - attempt: The number of the attempt that just ended.
    ///   - maxAttempts: The job's attempt budget.
    ///   - retryPolicy: The backoff for this job type.
    ///   - retryOnTimeout: Whether a timed-out attempt may be retried (otherwise it dead-letters with `TIMEOUT`).
    ///   - unitRandom: Jitter source in `0..<1`.
    public static func after(
        _ result: AttemptResult,
        attempt: Int,
        maxAttempts: Int,
        retryPolicy: RetryPolicy,
        retryOnTimeout: Bool = true,
        unitRandom: Double
    ) -> JobTransition {
        func retryOrDeadLetter(code: AttemptErrorCode, message: String) -> JobTransition {
            if attempt < maxAttempts {
                return JobTransition(
                    state: .retryable,
                    runAfter: retryPolicy.delay(afterAttempt: attempt, unitRandom: unitRandom),
                    outcome: .failed,
                    errorCode: code,
                    errorMessage: message
                )
            }
            return JobTransition(
                state: .discarded,
                deadReason: .maxAttemptsExceeded,
                outcome: .failed,
                errorCode: code,
                errorMessage: message
            )
        }

        switch result {
        case .succeeded:
            return JobTransition(state: .completed, outcome: .completed)
        case .failed(let message):
            return retryOrDeadLetter(code: .handlerError, message: message)
        case .leaseExpired:
            return retryOrDeadLetter(code: .leaseExpired, message: "lease expired before the attempt finished")
        case .timedOut:
            guard retryOnTimeout else {
                return JobTransition(
                    state: .discarded,
                    deadReason: .timeout,
                    outcome: .failed,
                    errorCode: .timeout,
                    errorMessage: "attempt timed out"
                )
            }
            return retryOrDeadLetter(code: .timeout, message: "attempt timed out")
        case .failedNonRetryable(let message):
            return JobTransition(
                state: .discarded,
                deadReason: .nonRetryable,
                outcome: .failed,
                errorCode: .nonRetryable,
                errorMessage: message
            )
        case .snoozed(let delay):
            return JobTransition(state: .scheduled, runAfter: delay, outcome: .snoozed, countsAttempt: false)
        case .cancelled(let reason):
            return JobTransition(state: .cancelled, outcome: .cancelled, errorCode: .cancelled, errorMessage: reason)
        case .discarded(let reason):
            return JobTransition(
                state: .discarded,
                deadReason: .discarded,
                outcome: .discarded,
                errorCode: .discarded,
                errorMessage: reason
            )
        case .unknownKind:
            return JobTransition(
                state: .discarded,
                deadReason: .unknownKind,
                outcome: .failed,
                errorCode: .unknownKind,
                errorMessage: "no handler is registered for this kind"
            )
        case .malformedArguments(let message):
            return JobTransition(
                state: .discarded,
                deadReason: .malformedArguments,
                outcome: .failed,
                errorCode: .malformedArguments,
                errorMessage: message
            )
        case .released:
            return JobTransition(
                state: .available,
                runAfter: .zero,
                outcome: .released,
                errorCode: .shutdown,
                errorMessage: "worker shut down before the attempt finished",
                countsAttempt: false
            )
        }
    }

    /// The transition written when the database refused an attempt's own result: dead-lettered with
    /// `RESULT_REJECTED`, the attempt counted, and `reason` in the history.
    public static func resultRejected(reason: String) -> JobTransition {
        JobTransition(
            state: .discarded,
            deadReason: .resultRejected,
            outcome: .failed,
            errorCode: .resultRejected,
            errorMessage: reason
        )
    }

    /// The transition of a workflow run's job whose execution suspended: `scheduled` until `runAfter` (or
    /// `available` when it is zero), the attempt not counted.
    public static func suspended(runAfter: Duration) -> JobTransition {
        JobTransition(
            state: runAfter > .zero ? .scheduled : .available,
            runAfter: max(.zero, runAfter),
            outcome: .suspended,
            countsAttempt: false
        )
    }

    /// The transition of a workflow run's job whose run ended: `completed`, or `cancelled` for a cancelled run.
    public static func workflowEnded(cancelled: Bool, message: String? = nil) -> JobTransition {
        cancelled
            ? JobTransition(state: .cancelled, outcome: .cancelled, errorCode: .cancelled, errorMessage: message)
            : JobTransition(state: .completed, outcome: .completed)
    }

    init(
        state: JobState,
        runAfter: Duration? = nil,
        deadReason: DeadLetterReason? = nil,
        outcome: AttemptOutcome,
        errorCode: AttemptErrorCode? = nil,
        errorMessage: String? = nil,
        countsAttempt: Bool = true
    ) {
        self.state = state
        self.runAfter = runAfter
        self.deadReason = deadReason
        self.outcome = outcome
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.countsAttempt = countsAttempt
    }
}
