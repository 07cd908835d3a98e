import Logging

/// What a handler knows about the attempt it runs.
///
/// A handler is asked to stop by task cancellation: when its timeout passes, when a client cancels the job, and
/// when the worker shuts down after its grace period. Long handlers should check `Task.isCancelled` or call
/// `try Task.checkCancellation()` between units of work.
public struct JobContext: Sendable {
    public var id: JobID
    public var kind: String
    public var queue: String
    public var namespace: String
    /// The number of this attempt, starting at 1.
    public var attempt: Int
    public var maxAttempts: Int
    public var tags: [String]
    /// The worker process running the attempt.
    public var workerID: String
    /// The worker's logger, which ``logger`` decorates.
    var workerLogger: Logger

    /// A logger with `job_id`, `kind`, `queue` and `attempt` metadata.
    ///
    /// It is built when asked for, so that handlers that never log do not pay for the metadata; keep it in a local
    /// when logging many times.
    public var logger: Logger {
        var logger = self.workerLogger
        logger[metadataKey: "job_id"] = "\(self.id)"
        logger[metadataKey: "kind"] = "\(self.kind)"
        logger[metadataKey: "queue"] = "\(self.queue)"
        logger[metadataKey: "attempt"] = "\(self.attempt)"
        return logger
    }
}
