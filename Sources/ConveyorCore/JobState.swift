/// The lifecycle state of a job, as stored in the `state` column.
///
/// A job is *runnable* in `available`, `scheduled` and `retryable` once its `run_at` has passed; it is
/// *finished* in `completed`, `cancelled` and `discarded` (the dead-letter queue).
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Waiting for its `run_at` to pass.
    case scheduled
    /// Ready to be fetched now.
    case available
    /// Held by a worker under a lease.
    case running
    /// Failed an attempt and waits for its backoff before the next one.
    case retryable
    /// Finished successfully.
    case completed
    /// Cancelled by a client or by its handler; never runs again unless replayed.
    case cancelled
    /// Dead-lettered: kept with a reason code until retried, replayed or pruned.
    case discarded

    /// Whether the job will not run again without an explicit retry or replay.
    public var isFinished: Bool {
        switch self {
        case .completed, .cancelled, .discarded: true
        case .scheduled, .available, .running, .retryable: false
        }
    }
}
