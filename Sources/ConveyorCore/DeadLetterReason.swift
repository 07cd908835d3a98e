/// Why a job was moved to the dead-letter queue (`state = 'discarded'`).
///
/// The raw values are stored in the `dead_reason` column and are part of the public contract: dashboards,
/// alerts and scripts may match on them.
public enum DeadLetterReason: String, Sendable, Hashable, CaseIterable, Codable {
    /// Every allowed attempt failed (by throwing, timing out or losing its lease).
    case maxAttemptsExceeded = "MAX_ATTEMPTS_EXCEEDED"
    /// The handler threw an error marked as not worth retrying.
    case nonRetryable = "NON_RETRYABLE"
    /// The attempt ran past its timeout and the job type does not retry timeouts.
    case timeout = "TIMEOUT"
    /// No handler is registered for the job's kind on the worker that fetched it.
    case unknownKind = "UNKNOWN_KIND"
    /// The stored arguments could not be decoded into the handler's argument type.
    case malformedArguments = "MALFORMED_ARGUMENTS"
    /// The handler asked for the job to be discarded.
    case discarded = "DISCARDED"
    /// The database refused to store the attempt's result (see ``AttemptErrorCode/resultRejected``).
    case resultRejected = "RESULT_REJECTED"
}

/// The outcome of one attempt, as recorded in the job's attempt history.
public enum AttemptOutcome: String, Sendable, Hashable, CaseIterable, Codable {
    case completed
    case failed
    case snoozed
    case cancelled
    case discarded
    /// The worker shut down before the attempt finished; the job went back to `available` and the attempt does
    /// not count towards `max_attempts`.
    case released
    /// A workflow run's execution suspended (a sleep, a signal wait, a child); its job waits to resume it.
    case suspended
}

/// Error codes recorded on a failed attempt (`error_code` in the attempt history).
public enum AttemptErrorCode: String, Sendable, Hashable, CaseIterable, Codable {
    /// The handler threw.
    case handlerError = "HANDLER_ERROR"
    /// The handler ran past its timeout.
    case timeout = "TIMEOUT"
    /// The worker stopped heartbeating (it crashed or hung) and the reaper took the lease back.
    case leaseExpired = "LEASE_EXPIRED"
    /// The handler threw an error marked non-retryable.
    case nonRetryable = "NON_RETRYABLE"
    /// No handler for the kind.
    case unknownKind = "UNKNOWN_KIND"
    /// The arguments did not decode.
    case malformedArguments = "MALFORMED_ARGUMENTS"
    /// The worker shut down while the attempt ran.
    case shutdown = "SHUTDOWN"
    /// A client cancelled the job while it ran.
    case cancelled = "CANCELLED"
    /// The handler discarded the job.
    case discarded = "DISCARDED"
    /// The database refused to store the attempt's result (a trigger, a constraint, a value it cannot hold); the
    /// job was dead-lettered with the database's reason instead, so that it cannot stall its worker's other results.
    case resultRejected = "RESULT_REJECTED"
}
