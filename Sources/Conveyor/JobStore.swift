import ConveyorCore
import Foundation
import Logging

/// The storage seam between the engine and a database driver.
///
/// `ConveyorPostgres.PostgresJobStore` is the one implementation. Applications do not call these methods; they use
/// ``ConveyorClient`` and ``ConveyorWorker``. Every method is safe to call from many processes at once: the
/// implementation is responsible for the locking that makes fetch exclusive and completion fenced.
public protocol JobStore: Sendable {
    /// Applies pending migrations under a lock; returns the versions this call applied.
    func migrate(logger: Logger) async throws -> [Int]

    /// Inserts a batch in one transaction, and returns once it committed: all of it or, on any error, none.
    /// Duplicates by unique key return the existing job with `isDuplicate`. When `notify` is true, workers
    /// listening on the jobs' queues are woken when the insert commits.
    func insert(_ batch: NewJobBatch, notify: Bool, logger: Logger) async throws -> [EnqueuedJob]

    /// Wakes the workers listening on `queues` now (the trailing notification of a coalesced burst).
    func notify(queues: [String], logger: Logger) async throws

    /// Leases up to `limit` runnable jobs of `queue` to `workerID`, oldest first by priority and run time. The
    /// leases are visible to every other session when this returns; with `synchronousCommit` false they may not yet
    /// be on disk, and a database crash in that moment makes the jobs runnable again.
    func fetch(
        queue: String,
        limit: Int,
        workerID: String,
        leaseDuration: Duration,
        synchronousCommit: Bool,
        logger: Logger
    ) async throws
        -> [FetchedJob]

    /// Writes attempt results. A result whose lease token no longer matches (the lease was taken over) changes
    /// nothing. Returns the ids that were written.
    func complete(_ completions: [JobCompletion], logger: Logger) async throws -> [JobID]

    /// Extends the leases of jobs still held by `workerID`. Returns which of them a client asked to cancel and
    /// which are no longer held. It never waits for a row another statement has locked (a result being written):
    /// such a lease is left as it is until the next heartbeat.
    func heartbeat(
        _ leases: [JobLease],
        workerID: String,
        leaseDuration: Duration,
        logger: Logger
    ) async throws
        -> HeartbeatResult

    /// Makes up to `limit` due scheduled and retryable jobs available, oldest run time first, and wakes the workers
    /// listening on their queues. Safe to call from any number of processes at once.
    func stageDueJobs(limit: Int, logger: Logger) async throws -> StagedJobs

    /// Running jobs whose lease expired before now, at most `limit`.
    func expiredLeases(limit: Int, logger: Logger) async throws -> [ExpiredLease]

    /// Reads one job with its attempt history.
    func job(_ id: JobID, logger: Logger) async throws -> JobRecord?

    /// Lists jobs newest first, filtered, one page at a time.
    func jobs(matching filter: JobFilter, logger: Logger) async throws -> JobPage

    /// Cancels a job: at once when it is not running; a running job gets a cancel request that its worker sees at
    /// the next heartbeat. Finished jobs are left as they are.
    func cancel(_ id: JobID, by performer: String?, logger: Logger) async throws -> JobRecord

    /// Moves a `discarded` or `cancelled` job back to `available` with one more attempt allowed.
    func retry(_ id: JobID, by performer: String?, logger: Logger) async throws -> JobRecord

    /// Inserts a copy of a finished job that points at the original through `replay_of`.
    func replay(_ id: JobID, by performer: String?, logger: Logger) async throws -> EnqueuedJob

    /// Pauses or resumes fetching from a queue for every worker.
    func setQueuePaused(_ queue: String, paused: Bool, by performer: String?, logger: Logger) async throws

    /// Sets or removes (`nil`) a queue's concurrency limit and its slots, with an event, in one statement.
    func setQueueConcurrencyLimit(_ queue: String, maxRunning: Int?, by performer: String?, logger: Logger) async throws

    /// Makes a queue fair (its fetches share jobs among namespaces by weight) or first-come, with an event.
    func setQueueFair(_ queue: String, fair: Bool, by performer: String?, logger: Logger) async throws

    /// Stores a tenant's settings, with an event, in one transaction.
    func setTenant(_ name: String, weight: Double, by performer: String?, logger: Logger) async throws

    /// Sets or removes (`nil`) a tenant's concurrency limit and its slots, with an event, in one transaction.
    func setTenantConcurrencyLimit(_ name: String, maxRunning: Int?, by performer: String?, logger: Logger) async throws

    /// Deletes a tenant's settings (its namespace has the defaults again), with an event; `false` when it had none.
    func removeTenant(_ name: String, by performer: String?, logger: Logger) async throws -> Bool

    /// Every tenant with settings, by name.
    func tenants(logger: Logger) async throws -> [TenantInfo]

    /// One tenant's settings; `nil` when its namespace has none.
    func tenant(named name: String, logger: Logger) async throws -> TenantInfo?

    /// Every queue that has unfinished or dead-lettered jobs, or a pause record, with counts of its `available`,
    /// `scheduled`, `retryable`, `running` and `discarded` jobs. Finished jobs (`completed`, `cancelled`) are not
    /// counted: counting them would read every finished row; the worker's metrics count completions instead.
    func queues(logger: Logger) async throws -> [QueueInfo]

    /// Available jobs per queue (due and waiting for a worker), counted from the index of available jobs only: jobs
    /// scheduled for later and finished jobs are never read.
    func runnableCounts(logger: Logger) async throws -> [String: Int]

    /// Calls `onWake` with a queue name whenever jobs become available on it in another session. Calls
    /// `onListening` once the LISTEN is in place (notifications sent before then are not seen). Returns when the task
    /// is cancelled; throws when the listening connection fails (the caller reconnects).
    func listen(
        onListening: @escaping @Sendable () -> Void,
        onWake: @escaping @Sendable (String) -> Void,
        logger: Logger
    ) async throws

    // MARK: Workflows

    /// Inserts runs with the jobs that execute them, in one transaction: all of them or none. A run whose id exists
    /// already is not inserted; the existing run is returned with `isExisting`.
    func startWorkflowRuns(
        _ runs: [NewWorkflowRun],
        notify: Bool,
        logger: Logger
    ) async throws
        -> [StartedWorkflowRun]

    /// Loads what executions of the runs need: each run, its stored steps, its pending signals and its children.
    /// Runs that do not exist are missing from the result.
    func workflowExecutionStates(
        _ ids: [WorkflowRunID],
        logger: Logger
    ) async throws
        -> [WorkflowRunID: WorkflowExecutionState]

    /// Commits `work` in one transaction, skipping the writes whose lease is no longer held.
    func commit(_ work: WorkflowUnitOfWork, logger: Logger) async throws -> WorkflowCommitResult

    /// Stores a signal for a run and makes a suspended run runnable.
    ///
    /// - Throws: `WORKFLOW_NOT_FOUND`; `INVALID_WORKFLOW_STATE` when the run has ended.
    func signal(
        _ id: WorkflowRunID,
        name: String,
        payloadJSON: String,
        by performer: String?,
        logger: Logger
    ) async throws

    /// Cancels a run and every unfinished run below it: a waiting run at once, a running one through a cancel
    /// request its worker sees at the next heartbeat. Ended runs are left as they are.
    func cancelWorkflowRun(
        _ id: WorkflowRunID,
        by performer: String?,
        logger: Logger
    ) async throws
        -> WorkflowRunRecord

    /// Starts a run `newID` that copies run `id` (its workflow, version, input, queue and namespace) with the
    /// outputs of the steps stored before step `step`, and points back at it through `forked_from`.
    ///
    /// - Throws: `WORKFLOW_NOT_FOUND`; `STEP_NOT_FOUND` when the run has no stored step of that name.
    func forkWorkflowRun(
        _ id: WorkflowRunID,
        fromStep step: String,
        newID: WorkflowRunID,
        by performer: String?,
        logger: Logger
    )
        async throws -> StartedWorkflowRun

    /// Makes runs that wait for one of `versions` (workflow name and version) runnable.
    func resumeWorkflowRuns(waitingFor versions: [WorkflowVersion], logger: Logger) async throws -> Int

    /// Reads one run with its steps.
    func workflowRun(_ id: WorkflowRunID, logger: Logger) async throws -> WorkflowRunRecord?

    /// Lists runs newest first, without their steps, one page at a time.
    func workflowRuns(matching filter: WorkflowRunFilter, logger: Logger) async throws -> WorkflowRunPage

    // MARK: Operations

    /// The most recent `limit` events of a subject, oldest first.
    func events(for subject: EventSubject, limit: Int, logger: Logger) async throws -> [EventRecord]

    /// Upserts a worker's presence row with the database's time as its heartbeat, and deletes rows whose heartbeat
    /// is a day old (workers that crashed). Returns what the worker must apply: its pool's pause, and which of its
    /// queues have a concurrency limit.
    @discardableResult
    func registerWorker(_ presence: WorkerPresence, logger: Logger) async throws -> WorkerRegistration

    /// Marks a worker's presence row stopped (on shutdown); a later upsert of the same id no longer revives it.
    func removeWorker(id: String, logger: Logger) async throws

    /// Workers whose last heartbeat is within `heartbeatWithin` of the database's time.
    func workers(heartbeatWithin: Duration, logger: Logger) async throws -> [WorkerPresence]

    /// The pause records of paused pools, by name.
    func pausedPools(logger: Logger) async throws -> [(name: String, at: Date?, by: String?)]

    /// Pauses or resumes a pool, with its event, in one transaction.
    func setPoolPaused(_ pool: String, paused: Bool, by performer: String?, logger: Logger) async throws

    /// One queue with its counts, as in ``queues(logger:)``; `nil` when it has no unfinished or dead-lettered
    /// job and no pause record.
    func queue(named name: String, logger: Logger) async throws -> QueueInfo?

    /// How many available jobs of the job's queue come before it in fetch order (priority, run time, id), counted
    /// up to `limit`; in a fair queue, only those of the job's namespace.
    func jobsAhead(of job: JobRecord, limit: Int, logger: Logger) async throws -> Int

    /// The database's clock: explanations and timelines compare stored times with it, not with this process's.
    func databaseNow(logger: Logger) async throws -> Date

    /// The migration versions applied to the schema (empty when it has none) and the newest this build knows.
    func schemaStatus(logger: Logger) async throws -> SchemaStatus

    /// Dead-lettered jobs per reason, counted through the index of dead-lettered jobs only.
    func deadLetterCounts(logger: Logger) async throws -> [DeadLetterReason: Int]

    /// Retries (back to `available`, one more attempt) or deletes the dead-lettered jobs that match `filter` (its
    /// states are ignored), at most `limit` of them, recording an event for each; with `dryRun` it only counts
    /// them. Returns how many matched.
    func bulkDeadLetter(
        _ action: DeadLetterAction,
        matching filter: JobFilter,
        limit: Int,
        dryRun: Bool,
        by performer: String?,
        logger: Logger
    ) async throws -> Int

    // MARK: Metrics

    /// Adds a worker's counts to the per-minute stats (one upsert per sample's minute and queue).
    func recordQueueStats(_ samples: [QueueStatsSample], workerID: String, logger: Logger) async throws

    /// The stats of the last `minutes` minutes summed over workers, per queue and minute.
    func queueStats(minutes: Int, logger: Logger) async throws -> [QueueStatsSample]

    /// Start latency per queue of the jobs that started in the last `within`, read from the newest `sampleSize`
    /// jobs through the primary key (never a scan of the table).
    func startLatencies(within: Duration, sampleSize: Int, logger: Logger) async throws -> [String: StartLatency]

    // MARK: Guardrails

    /// Records refused enqueues. Best effort for callers: a refusal is reported to its caller even when this fails.
    func recordIngestDecisions(_ decisions: [IngestDecision], logger: Logger) async throws

    /// Lists refused enqueues newest first.
    func ingestDecisions(matching filter: IngestDecisionFilter, logger: Logger) async throws -> IngestDecisionPage

    /// Deletes ingest decisions older than `age`, at most `limit`; returns how many.
    func pruneIngestDecisions(olderThan age: Duration, limit: Int, logger: Logger) async throws -> Int

    /// Every configured enqueue limit.
    func enqueueLimits(logger: Logger) async throws -> [EnqueueLimit]

    /// Creates or replaces a limit (its bucket starts full).
    func setEnqueueLimit(_ limit: EnqueueLimit, logger: Logger) async throws

    /// Removes a limit; returns whether one existed.
    func removeEnqueueLimit(scope: EnqueueLimit.Scope, name: String, logger: Logger) async throws -> Bool

    /// Takes `count` tokens from each named bucket, all or none, in one transaction. Returns the buckets that had
    /// too few, with how long until they will have enough; empty when the tokens were taken. Names without a
    /// configured limit are not limited.
    func takeEnqueueTokens(
        _ requests: [EnqueueLimitRequest],
        logger: Logger
    ) async throws -> [EnqueueLimitRefusal]

    // MARK: Cron schedules

    /// Creates or replaces a schedule. A schedule whose expression and time zone are unchanged keeps its next tick
    /// and its pause; otherwise its next tick becomes `firstTick`.
    func defineSchedule(_ schedule: CronSchedule, firstTick: Date?, by performer: String?, logger: Logger) async throws

    /// Every schedule by name, or the one named. A row this build cannot read (an expression or time zone it does
    /// not know) is left out.
    func schedules(named name: String?, logger: Logger) async throws -> [CronScheduleRecord]

    /// Pauses a schedule or resumes it with `nextTick` (the ticks of a pause are skipped). Returns whether it
    /// exists.
    func setSchedulePaused(
        _ name: String,
        paused: Bool,
        nextTick: Date?,
        by performer: String?,
        logger: Logger
    ) async throws -> Bool

    /// Removes a schedule; returns whether one existed. Jobs it enqueued stay.
    func deleteSchedule(_ name: String, by performer: String?, logger: Logger) async throws -> Bool

    /// In one transaction: locks up to `limit` due schedules that no other scheduler holds, asks `plan` (with the
    /// database's time) what each enqueues, inserts those jobs and moves each schedule to its next tick. Returns
    /// the names and the jobs enqueued. A scheduler that dies mid-pass rolls back: another one fires the same
    /// ticks. A due row this build cannot read is put off for a minute.
    func fireDueSchedules(
        limit: Int,
        plan: @escaping @Sendable (CronScheduleRecord, Date) -> ScheduleFiring,
        logger: Logger
    ) async throws -> [(name: String, jobs: [EnqueuedJob])]
}

/// What a bulk dead-letter call does.
public enum DeadLetterAction: String, Sendable, Hashable, CaseIterable, Codable {
    /// Back to `available` with one more attempt.
    case retry
    /// Delete the jobs.
    case discard
}

/// Tokens an enqueue needs from one bucket.
public struct EnqueueLimitRequest: Sendable, Hashable {
    public var scope: EnqueueLimit.Scope
    public var name: String
    public var count: Int

    public init(scope: EnqueueLimit.Scope, name: String, count: Int) {
        self.scope = scope
        self.name = name
        self.count = count
    }
}

/// A bucket that refused an enqueue.
public struct EnqueueLimitRefusal: Sendable, Hashable {
    public var limit: EnqueueLimit
    /// How long until the bucket holds the tokens asked for (`nil` when it never will: more than its burst).
    public var retryAfter: Duration?

    public init(limit: EnqueueLimit, retryAfter: Duration?) {
        self.limit = limit
        self.retryAfter = retryAfter
    }
}

/// Which migrations a schema has, beside the ones this build knows.
public struct SchemaStatus: Sendable, Hashable {
    public var applied: [Int]
    public var latestKnown: Int

    public init(applied: [Int], latestKnown: Int) {
        self.applied = applied
        self.latestKnown = latestKnown
    }

    /// Every known migration is applied, and none that this build does not know.
    public var isCurrent: Bool { self.applied.max() == self.latestKnown }
    /// The schema was migrated by a newer build.
    public var isNewer: Bool { (self.applied.max() ?? 0) > self.latestKnown }
}

/// A job leased to a worker by ``JobStore/fetch(queue:limit:workerID:leaseDuration:logger:)``.
public struct FetchedJob: Sendable {
    public var id: JobID
    public var kind: String
    public var queue: String
    public var namespace: String
    public var argumentsJSON: String
    /// The number of this attempt (1-based).
    public var attempt: Int
    public var maxAttempts: Int
    /// The fencing token of this lease: completions must present it.
    public var leaseToken: Int64
    public var timeoutMilliseconds: Int64?
    public var tags: [String]

    public init(
        id: JobID,
        kind: String,
        queue: String,
        namespace: String,
        argumentsJSON: String,
        attempt: Int,
        maxAttempts: Int,
        leaseToken: Int64,
        timeoutMilliseconds: Int64?,
        tags: [String]
    ) {
        self.id = id
        self.kind = kind
        self.queue = queue
        self.namespace = namespace
        self.argumentsJSON = argumentsJSON
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseToken = leaseToken
        self.timeoutMilliseconds = timeoutMilliseconds
        self.tags = tags
    }
}

/// A held lease: the job and the token it was fetched with.
public struct JobLease: Sendable, Hashable {
    public var id: JobID
    public var token: Int64

    public init(id: JobID, token: Int64) {
        self.id = id
        self.token = token
    }
}

/// The result of one attempt, ready to be written.
public struct JobCompletion: Sendable {
    public var lease: JobLease
    public var transition: JobTransition
    /// Measured run time; `nil` lets the store use the lease's wall time (the reaper's case).
    public var durationMicroseconds: Int64?
    /// Only write when the lease has expired (the reaper's guard against racing a heartbeat).
    public var requireExpiredLease: Bool

    public init(
        lease: JobLease,
        transition: JobTransition,
        durationMicroseconds: Int64?,
        requireExpiredLease: Bool = false
    ) {
        self.lease = lease
        self.transition = transition
        self.durationMicroseconds = durationMicroseconds
        self.requireExpiredLease = requireExpiredLease
    }
}

/// What a heartbeat learnt.
public struct HeartbeatResult: Sendable {
    /// Jobs a client asked to cancel.
    public var cancelRequested: Set<JobID>
    /// Jobs whose lease this worker no longer holds.
    public var lost: Set<JobID>

    public init(cancelRequested: Set<JobID>, lost: Set<JobID>) {
        self.cancelRequested = cancelRequested
        self.lost = lost
    }
}

/// A running job whose lease expired.
public struct ExpiredLease: Sendable {
    public var lease: JobLease
    public var kind: String
    public var attempt: Int
    public var maxAttempts: Int

    public init(lease: JobLease, kind: String, attempt: Int, maxAttempts: Int) {
        self.lease = lease
        self.kind = kind
        self.attempt = attempt
        self.maxAttempts = maxAttempts
    }
}

/// Filters for listing jobs. Values are matched exactly and always sent as bound parameters.
public struct JobFilter: Sendable, Hashable {
    public var states: [JobState]
    public var queue: String?
    public var kind: String?
    public var namespace: String?
    public var tag: String?
    /// Only jobs created at or after this time.
    public var createdAfter: Date?
    /// Only jobs created before this time.
    public var createdBefore: Date?
    /// Only dead-lettered jobs with this reason.
    public var deadReason: DeadLetterReason?
    /// Page size, 1–1000 (default 50).
    public var limit: Int
    /// The ``JobPage/nextCursor`` of the previous page.
    public var cursor: String?

    public init(
        states: [JobState] = [],
        queue: String? = nil,
        kind: String? = nil,
        namespace: String? = nil,
        tag: String? = nil,
        createdAfter: Date? = nil,
        createdBefore: Date? = nil,
        deadReason: DeadLetterReason? = nil,
        limit: Int = 50,
        cursor: String? = nil
    ) {
        self.states = states
        self.queue = queue
        self.kind = kind
        self.namespace = namespace
        self.tag = tag
        self.createdAfter = createdAfter
        self.createdBefore = createdBefore
        self.deadReason = deadReason
        self.limit = limit
        self.cursor = cursor
    }

    /// The id below which the page starts, decoded from ``cursor``.
    ///
    /// - Throws: `INVALID_FILTER` when the cursor is not one that a previous page returned, or the limit is out of
    ///   range.
    public func validatedCursor() throws -> JobID? {
        guard (1...1000).contains(self.limit) else {
            throw ConveyorError(.invalidFilter, "limit must be between 1 and 1000, got \(self.limit)")
        }
        guard let cursor = self.cursor else { return nil }
        guard cursor.hasPrefix("j"), let value = Int64(cursor.dropFirst()), value > 0 else {
            throw ConveyorError(.invalidFilter, "cursor is not one returned by a previous page")
        }
        return JobID(value)
    }

    /// The cursor that continues after `id`.
    public static func cursor(after id: JobID) -> String { "j\(id.rawValue)" }

    /// Checks the filter's queue, kind, namespace and tag against the naming rules.
    ///
    /// - Throws: `INVALID_QUEUE_NAME`, `INVALID_KIND`, `INVALID_NAMESPACE` or `INVALID_FILTER` (a tag).
    public func validateNames() throws {
        for (value, code) in [
            (self.queue, ConveyorError.Code.invalidQueueName), (self.kind, .invalidKind),
            (self.namespace, .invalidNamespace), (self.tag, .invalidFilter),
        ] {
            if let value, let violation = NameValidation.checkLabel(value) {
                throw ConveyorError(code, "invalid filter value: \(violation.explanation)")
            }
        }
    }
}

/// What a worker learns when it registers (see ``JobStore/registerWorker(_:logger:)``).
public struct WorkerRegistration: Sendable, Hashable {
    /// Whether the worker's pool is paused.
    public var poolPaused: Bool
    /// The worker's queues whose fetches a limit can cut short: every queue once a tenant has a limit.
    public var limitedQueues: Set<String>

    public init(poolPaused: Bool, limitedQueues: Set<String> = []) {
        self.poolPaused = poolPaused
        self.limitedQueues = limitedQueues
    }
}

/// One page of jobs.
public struct JobPage: Sendable {
    public var jobs: [JobRecord]
    /// Pass as ``JobFilter/cursor`` for the next page; `nil` on the last page.
    public var nextCursor: String?

    public init(jobs: [JobRecord], nextCursor: String?) {
        self.jobs = jobs
        self.nextCursor = nextCursor
    }
}

/// A queue and how many of its unfinished and dead-lettered jobs are in each state (see
/// ``JobStore/queues(logger:)``).
public struct QueueInfo: Sendable, Hashable {
    public var name: String
    public var isPaused: Bool
    /// When the queue was paused, and by whom (see ``EventRecord/performedBy``).
    public var pausedAt: Date?
    public var pausedBy: String?
    /// The most jobs of the queue leased at once across every worker (see
    /// ``ConveyorClient/Queues/setConcurrencyLimit(_:maxRunning:by:)``); `nil`: no limit.
    public var maxRunning: Int?
    /// Whether the queue shares its fetches among namespaces by weight (see
    /// ``ConveyorClient/Queues/setFairness(_:_:by:)``).
    public var isFair: Bool
    /// Jobs per state: available, scheduled, retryable, running and discarded (finished ones are not counted).
    /// Each count stops at ``countLimit``, so that reading a queue costs the same behind any backlog.
    public var counts: [JobState: Int]
    /// The states whose counts reached ``countLimit``: there are at least that many (shown as "1,000+").
    public var cappedStates: Set<JobState>

    /// Where counting stops.
    public static let countLimit = 1_000

    public init(
        name: String,
        isPaused: Bool,
        pausedAt: Date? = nil,
        pausedBy: String? = nil,
        maxRunning: Int? = nil,
        isFair: Bool = false,
        counts: [JobState: Int],
        cappedStates: Set<JobState> = []
    ) {
        self.name = name
        self.isPaused = isPaused
        self.pausedAt = pausedAt
        self.pausedBy = pausedBy
        self.maxRunning = maxRunning
        self.isFair = isFair
        self.counts = counts
        self.cappedStates = cappedStates
    }
}

/// What a call of ``JobStore/stageDueJobs(limit:logger:)`` did.
public struct StagedJobs: Sendable, Hashable {
    /// Jobs made available.
    public var staged: Int
    /// How long until the next scheduled or retryable job is due, by the database's clock; `nil` when none waits.
    public var nextDue: Duration?

    public init(staged: Int, nextDue: Duration?) {
        self.staged = staged
        self.nextDue = nextDue
    }
}
