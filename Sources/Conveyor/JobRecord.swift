import ConveyorCore
import Foundation

/// A job as stored: what ``ConveyorClient/Jobs/get(_:)`` and ``ConveyorClient/Jobs/list(_:)`` return.
public struct JobRecord: Sendable, Hashable {
    public var id: JobID
    public var namespace: String
    public var queue: String
    public var kind: String
    /// The stored arguments as JSON text.
    public var argumentsJSON: String
    public var state: JobState
    public var priority: Int
    /// The number of attempts started that count towards ``maxAttempts``.
    public var attempt: Int
    public var maxAttempts: Int
    public var runAt: Date
    public var createdAt: Date
    public var finishedAt: Date?
    /// The worker that holds the lease while the job is `running`.
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var uniqueKey: String?
    public var tags: [String]
    public var timeoutMilliseconds: Int64?
    /// The job this one replays, if it was created by ``ConveyorClient/Jobs/replay(_:)``.
    public var replayOf: JobID?
    /// For `discarded` jobs: why they were dead-lettered.
    public var deadReason: DeadLetterReason?
    /// Set when a client asked a running job to stop.
    public var cancelRequestedAt: Date?
    /// The message of the most recent failed attempt.
    public var lastError: String?
    /// Every finished attempt, oldest first.
    public var attempts: [AttemptRecord]

    public init(
        id: JobID,
        namespace: String,
        queue: String,
        kind: String,
        argumentsJSON: String,
        state: JobState,
        priority: Int,
        attempt: Int,
        maxAttempts: Int,
        runAt: Date,
        createdAt: Date,
        finishedAt: Date?,
        leaseOwner: String?,
        leaseExpiresAt: Date?,
        uniqueKey: String?,
        tags: [String],
        timeoutMilliseconds: Int64?,
        replayOf: JobID?,
        deadReason: DeadLetterReason?,
        cancelRequestedAt: Date?,
        lastError: String?,
        attempts: [AttemptRecord]
    ) {
        self.id = id
        self.namespace = namespace
        self.queue = queue
        self.kind = kind
        self.argumentsJSON = argumentsJSON
        self.state = state
        self.priority = priority
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.runAt = runAt
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.uniqueKey = uniqueKey
        self.tags = tags
        self.timeoutMilliseconds = timeoutMilliseconds
        self.replayOf = replayOf
        self.deadReason = deadReason
        self.cancelRequestedAt = cancelRequestedAt
        self.lastError = lastError
        self.attempts = attempts
    }

    /// Decodes the arguments as `Arguments`.
    public func decodeArguments<Arguments: Decodable>(
        as type: Arguments.Type = Arguments.self,
        decoder: JSONDecoder = JSONDecoder()
    ) throws -> Arguments {
        try decoder.decode(Arguments.self, from: Data(self.argumentsJSON.utf8))
    }
}

/// One finished attempt of a job, as kept in the job's `attempts` history.
public struct AttemptRecord: Sendable, Hashable, Codable {
    /// The attempt number (1-based). Snoozed and released attempts keep the number the next attempt reuses.
    public var attempt: Int
    /// The id of the worker process that ran it.
    public var worker: String
    public var startedAt: Date
    public var finishedAt: Date
    public var outcome: AttemptOutcome
    public var errorCode: AttemptErrorCode?
    public var error: String?
    /// Run time in microseconds as the worker measured it, or the lease's wall time for a reaped attempt.
    public var durationMicroseconds: Int64

    public init(
        attempt: Int,
        worker: String,
        startedAt: Date,
        finishedAt: Date,
        outcome: AttemptOutcome,
        errorCode: AttemptErrorCode? = nil,
        error: String? = nil,
        durationMicroseconds: Int64
    ) {
        self.attempt = attempt
        self.worker = worker
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.errorCode = errorCode
        self.error = error
        self.durationMicroseconds = durationMicroseconds
    }

    enum CodingKeys: String, CodingKey {
        case attempt
        case worker
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case outcome
        case errorCode = "error_code"
        case error
        case durationMicroseconds = "duration_us"
    }
}

/// A job created by an enqueue: its id and whether an existing job with the same unique key was returned instead.
public struct EnqueuedJob: Sendable, Hashable {
    public var id: JobID
    /// `true` when a job with the same namespace and unique key already existed and nothing was inserted.
    public var isDuplicate: Bool

    public init(id: JobID, isDuplicate: Bool) {
        self.id = id
        self.isDuplicate = isDuplicate
    }
}
