/// Outcomes other than success and failure, thrown from a handler.
///
/// Returning from a handler completes the job and throwing an ordinary error retries it by policy; these values
/// say something else:
///
/// ```swift
/// guard rateLimiter.allows(args.account) else { throw JobControl.snooze(.seconds(30)) }
/// ```
public enum JobControl: Error, Sendable, Hashable {
    /// Run again after `duration`. The attempt does not count towards `max_attempts`.
    case snooze(Duration)
    /// Stop for good: the job ends `cancelled` and never runs again unless replayed.
    case cancel(reason: String)
    /// Dead-letter the job now with reason `DISCARDED`, whatever attempts remain.
    case discard(reason: String)
}

/// An error that retrying cannot fix (bad input, a permanent refusal). Throwing one dead-letters the job at once
/// with reason `NON_RETRYABLE`.
public protocol NonRetryableError: Error {}

/// Wraps any error to mark it non-retryable: `throw NonRetryable(error)`.
public struct NonRetryable: NonRetryableError, CustomStringConvertible {
    public var underlying: any Error

    public init(_ underlying: any Error) { self.underlying = underlying }

    public var description: String { String(describing: self.underlying) }
}
