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
        /// A database operation failed; see the underlying error.
        public static let databaseError = Code("DATABASE_ERROR")
        /// The configuration is not valid.
        public static let invalidConfiguration = Code("INVALID_CONFIGURATION")
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

    public var description: String { "\(self.code.rawValue): \(self.message)" }

    public var debugDescription: String {
        var text = "\(self.code.rawValue): \(self.message) (at \(self.file):\(self.line))"
        if let underlying = self.underlying {
            text += "; underlying: \(String(reflecting: underlying))"
        }
        return text
    }
}
