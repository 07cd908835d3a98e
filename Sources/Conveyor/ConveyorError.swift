/// An error thrown by Conveyor.
///
/// Match on ``code``: codes are stable strings that scripts, dashboards and the HTTP layer rely on. The
/// ``description`` is safe to show or log (it never contains job arguments or connection details); the
/// ``debugDescription`` adds the underlying error and the source location.
public struct ConveyorError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A stable error code. New codes may be added in minor releases.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code as written in logs and API responses, e.g. `JOB_NOT_FOUND`.
        public let rawValue: String

        public init(_ rawValue: String) { self.rawValue = rawValue }

        public var description: String { self.rawValue }

        /// No job has the given id.
        public static let jobNotFound = Code("JOB_NOT_FOUND")
        /// The operation does not apply to the job in its current state (e.g. retrying a completed job).
        public static let invalidJobState = Code("INVALID_JOB_STATE")
        /// Job arguments could not be encoded, or raw JSON arguments are malformed.
        public static let malformedArguments = Code("MALFORMED_ARGUMENTS")
        /// Encoded arguments are larger than the configured limit.
        public static let argumentsTooLarge = Code("ARGUMENTS_TOO_LARGE")
        /// A queue name breaks the naming rules.
        public static let invalidQueueName = Code("INVALID_QUEUE_NAME")
        /// A job kind breaks the naming rules, or no handler is registered for it.
        public static let invalidKind = Code("INVALID_KIND")
        /// A namespace (tenant) breaks the naming rules.
        public static let invalidNamespace = Code("INVALID_NAMESPACE")
        /// A schema name breaks the naming rules.
        public static let invalidSchemaName = Code("INVALID_SCHEMA_NAME")
        /// An option is out of range (priority, max attempts, timeout, tag, unique key, page size, …).
        public static let invalidOption = Code("INVALID_OPTION")
        /// A filter value is not valid (an unknown state, a malformed cursor, …).
        public static let invalidFilter = Code("INVALID_FILTER")
        /// A unique key is held by another job that cannot be returned (e.g. retrying a dead-lettered job whose key
        /// was taken meanwhile).
        public static let duplicateJob = Code("DUPLICATE_JOB")
        /// The database schema is newer than this build knows.
        public static let schemaTooNew = Code("SCHEMA_TOO_NEW")
        /// A database operation failed; see the underlying error. For the worker, a result refused with this code
        /// is a problem of that row: it is isolated from its batch and stored as `RESULT_REJECTED`.
        public static let databaseError = Code("DATABASE_ERROR")
        /// The database could not be reached or dropped the connection, is starting up or shutting down, has no
        /// connection slot free, or aborted the transaction as a serialization failure or deadlock: a transient
        /// failure, retried with backoff by the worker.
        public static let databaseUnavailable = Code("DATABASE_UNAVAILABLE")
        /// A database call took longer than its bound (see ``ConveyorWorker/Configuration/databaseTimeout``);
        /// transient, as `DATABASE_UNAVAILABLE`.
        public static let databaseTimeout = Code("DATABASE_TIMEOUT")
        /// The schema, a table or a function the call needs is missing or differs, or the role may not use it:
        /// migrations were not applied, or were applied by a newer build. Fatal for a worker, which stops with it.
        public static let schemaMismatch = Code("SCHEMA_MISMATCH")
        /// No database connection was handed out in time: the `PostgresClient` is not running (add it to the
        /// `ServiceGroup`, or call its `run()`), or the database cannot be reached. Transient.
        public static let noConnection = Code("NO_CONNECTION")
        /// The configuration is not valid.
        public static let invalidConfiguration = Code("INVALID_CONFIGURATION")
        /// No workflow run has the given id.
        public static let workflowNotFound = Code("WORKFLOW_NOT_FOUND")
        /// No workflow of that name is registered with the worker or client.
        public static let unknownWorkflow = Code("UNKNOWN_WORKFLOW")
        /// The run is in a state that does not allow the operation (a signal to a finished run).
        public static let invalidWorkflowState = Code("INVALID_WORKFLOW_STATE")
        /// A resumed run reached a different durable call where a stored one stands: the code changed under a
        /// running workflow, or it branches on something that is not a step's output.
        public static let nonDeterministic = Code("NON_DETERMINISTIC")
        /// The run has no stored step of that name.
        public static let stepNotFound = Code("STEP_NOT_FOUND")
        /// A run reached the same step name twice.
        public static let duplicateStep = Code("DUPLICATE_STEP")
        /// A workflow input or output, step output or signal payload is larger than allowed.
        public static let outputTooLarge = Code("OUTPUT_TOO_LARGE")
        /// A run's deadline passed before it ended.
        public static let deadlineExceeded = Code("DEADLINE_EXCEEDED")
        /// A child run cannot be started under this id: another run that is not this run's child has it.
        public static let workflowIDInUse = Code("WORKFLOW_ID_IN_USE")
        /// An enqueue rate limit of the queue or namespace refused the jobs (see ``EnqueueLimit``); retry later.
        public static let rateLimited = Code("RATE_LIMITED")
        /// A cron expression breaks the syntax (see ``CronExpression``).
        public static let invalidCron = Code("INVALID_CRON")
        /// A time zone identifier is not one this system knows (`Europe/Berlin`, `UTC`, …).
        public static let invalidTimeZone = Code("INVALID_TIME_ZONE")
        /// A cron expression is valid but never fires (`0 0 30 2 *`: February 30).
        public static let cronNeverFires = Code("CRON_NEVER_FIRES")
        /// No schedule has the given name.
        public static let scheduleNotFound = Code("SCHEDULE_NOT_FOUND")
        /// A worker pool name breaks the naming rules (those of queue names).
        public static let invalidPoolName = Code("INVALID_POOL_NAME")
        /// A tenant's weight is not a number above 0 and at most 10,000.
        public static let invalidWeight = Code("INVALID_WEIGHT")
    }

    /// The stable code.
    public var code: Code
    /// A safe, human-readable message.
    public var message: String
    /// The error that caused this one, if any (for example a `PSQLError`).
    public var underlying: (any Error)?
    public var file: String
    public var line: Int

    public init(
        _ code: Code,
        _ message: String,
        underlying: (any Error)? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// Whether retrying the same call later may succeed: the database was unreachable, restarting or busy, or the
    /// call ran past its bound.
    public var isTransient: Bool {
        self.code == .databaseUnavailable || self.code == .databaseTimeout || self.code == .noConnection
    }

    /// Whether no retry of any call can succeed: neither transient nor a problem of the statement's rows
    /// (`DATABASE_ERROR`). A worker loop that meets such an error ends the worker with it.
    public var isFatal: Bool {
        !self.isTransient && self.code != .databaseError
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }

    public var debugDescription: String {
        var text = "\(self.code.rawValue): \(self.message) (at \(self.file):\(self.line))"
        if let underlying = self.underlying {
            text += "; underlying: \(String(reflecting: underlying))"
        }
        return text
    }
}
