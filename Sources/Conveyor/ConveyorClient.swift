import ConveyorCore
import Foundation
import Logging

/// The entry point for enqueuing and managing jobs.
///
/// A client is a cheap value over a ``JobStore``; make one at start-up and share it. Calls are grouped by noun:
/// `client.jobs.enqueue(_:)`, `client.jobs.cancel(_:)`, `client.queues.pause(_:)`.
///
/// ```swift
/// let store = PostgresJobStore(client: postgres)
/// let conveyor = ConveyorClient(store: store)
/// try await conveyor.jobs.enqueue(SendReceipt(orderID: 42), options: .init(queue: "mail"))
/// ```
public struct ConveyorClient: Sendable {
    /// Client settings. Every `var` has a default.
    public struct Configuration: Sendable {
        /// The largest encoded arguments accepted, in bytes (default 1 MiB). Larger ones fail with
        /// `ARGUMENTS_TOO_LARGE` before anything is written.
        public var maximumArgumentBytes: Int = NewJob.Defaults.maximumArgumentBytes
        /// Whether an enqueue wakes listening workers through NOTIFY (default `true`). Turn off behind PgBouncer in
        /// transaction mode, where workers poll.
        public var notifyOnInsert: Bool = true
        /// At most one notification per queue per interval from this client, plus one trailing notification for
        /// what a burst suppressed (default 10 ms). Transactional enqueues always notify at their commit.
        public var notifyCoalescingInterval: Duration = .milliseconds(10)
        /// How stale this client's copy of the enqueue limits may be: a limit set, changed or removed elsewhere
        /// applies to this client's enqueues within this long (default 5 s). The client reads `enqueue_limits` at
        /// most once per interval, and only when it enqueues; an enqueue that no limit covers makes no other database
        /// call for the limits. Changes made through this client's ``ConveyorClient/limits`` apply to it at once.
        public var enqueueLimitRefresh: Duration = .seconds(5)

        public init() {}
    }

    /// The storage driver.
    public let store: any JobStore
    public let configuration: Configuration
    public let logger: Logger
    let notifications: NotificationCoalescer
    /// The enqueue limits as last read, shared by every copy of this client (see ``Configuration/enqueueLimitRefresh``).
    let limitCache: EnqueueLimitCache

    public init(
        store: any JobStore,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "conveyor.client")
    ) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.notifications = NotificationCoalescer(interval: configuration.notifyCoalescingInterval)
        self.limitCache = EnqueueLimitCache(refresh: configuration.enqueueLimitRefresh)
    }

    /// Applies pending schema migrations; safe to call from many processes at once. Returns the versions applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await self.store.migrate(logger: self.logger)
    }

    /// Job operations.
    public var jobs: Jobs { Jobs(client: self) }

    /// Queue operations.
    public var queues: Queues { Queues(client: self) }

    /// Builds a validated ``NewJob`` from typed arguments and options (used by drivers for transactional enqueue).
    public func makeNewJob<Arguments: JobArguments>(_ arguments: Arguments, options: JobOptions) throws -> NewJob {
        try NewJob(
            kind: Arguments.kind,
            argumentsJSON: try self.encodeArguments(arguments),
            options: options.merged(over: Arguments.defaultOptions),
            maximumArgumentBytes: self.configuration.maximumArgumentBytes,
            argumentsAreTrusted: true
        )
    }

    /// Builds jobs of one type with the same options: the options are validated with the first job, and every
    /// other job only needs its arguments encoded and checked.
    func makeNewJobs<Arguments: JobArguments>(
        _ arguments: ArraySlice<Arguments>,
        options: JobOptions
    ) throws -> [NewJob] {
        guard let first = arguments.first else { return [] }
        let template = try self.makeNewJob(first, options: options)
        var jobs = [template]
        jobs.reserveCapacity(arguments.count)
        for argument in arguments.dropFirst() {
            var job = template
            job.argumentsJSON = try self.encodeArguments(argument)
            try NewJob.checkArguments(
                job.argumentsJSON,
                maximumArgumentBytes: self.configuration.maximumArgumentBytes,
                trusted: true
            )
            jobs.append(job)
        }
        return jobs
    }

    private func encodeArguments<Arguments: JobArguments>(_ arguments: Arguments) throws -> String {
        do {
            return String(decoding: try Self.encoder.encode(arguments), as: UTF8.self)
        } catch {
            throw ConveyorError(.malformedArguments, "cannot encode \(Arguments.kind) arguments", underlying: error)
        }
    }

    /// One encoder for every call: configuring a new one per job cost more than encoding a small job.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// A typed enqueue request, for batches that mix job types.
public struct JobRequest: Sendable {
    let make: @Sendable (ConveyorClient) throws -> NewJob
    /// The queue, kind and timing of the job, known without building it.
    let group: NewJobBatch.Group
    /// The job's namespace, known without building it (for namespace enqueue limits).
    let namespace: String

    /// Validates and encodes the request with `client`'s settings.
    public func makeNewJob(for client: ConveyorClient) throws -> NewJob {
        try self.make(client)
    }

    public init<Arguments: JobArguments>(_ arguments: Arguments, options: JobOptions = JobOptions()) {
        self.make = { client in try client.makeNewJob(arguments, options: options) }
        let merged = options.merged(over: Arguments.defaultOptions)
        self.group = NewJobBatch.Group(kind: Arguments.kind, options: merged)
        self.namespace = merged.namespace ?? NewJob.Defaults.namespace
    }

    /// A request from a kind and raw JSON arguments (validated as JSON when the batch is built).
    public init(kind: String, argumentsJSON: String, options: JobOptions = JobOptions()) {
        self.make = { client in
            try NewJob(
                kind: kind,
                argumentsJSON: argumentsJSON,
                options: options,
                maximumArgumentBytes: client.configuration.maximumArgumentBytes
            )
        }
        self.group = NewJobBatch.Group(kind: kind, options: options)
        self.namespace = options.namespace ?? NewJob.Defaults.namespace
    }
}

extension ConveyorClient {
    /// Enqueue, inspect and control jobs.
    public struct Jobs: Sendable {
        /// The client these operations use.
        public let client: ConveyorClient

        /// Inserts one job; it runs once a worker on its queue is free and its run time has come.
        ///
        /// - Returns: The new job, or the existing one when the unique key is taken (`isDuplicate`).
        /// - Throws: ``ConveyorError`` with a validation code before anything is written, or `DATABASE_ERROR`;
        ///   `RATE_LIMITED` when an enqueue limit of its queue or namespace has no token left (see
        ///   ``ConveyorClient/limits``). Validation and rate-limit refusals are recorded in `ingest_decisions`.
        @discardableResult
        public func enqueue<Arguments: JobArguments>(
            _ arguments: Arguments,
            options: JobOptions = JobOptions()
        ) async throws -> EnqueuedJob {
            let client = self.client
            return try await client.recordingRefusals(
                .client,
                RefusalSubject(jobs: 1, kind: Arguments.kind, options: options.merged(over: Arguments.defaultOptions))
            ) {
                let job = try client.makeNewJob(arguments, options: options)
                return try await self.insert([job], source: .client)[0]
            }
        }

        /// Inserts a job from its kind and raw JSON arguments (the CLI's path). The JSON must be an object.
        /// Refusals are recorded in `ingest_decisions` as ``enqueue(_:options:)`` records them.
        @discardableResult
        public func enqueue(
            kind: String,
            argumentsJSON: String,
            options: JobOptions = JobOptions()
        ) async throws -> EnqueuedJob {
            try await self.enqueue(kind: kind, argumentsJSON: argumentsJSON, options: options, source: .client)
        }

        /// ``enqueue(kind:argumentsJSON:options:)`` with the source its refusals are recorded under (the HTTP
        /// layer's is `.api`).
        @discardableResult
        package func enqueue(
            kind: String,
            argumentsJSON: String,
            options: JobOptions,
            source: EnqueueSource
        ) async throws -> EnqueuedJob {
            let client = self.client
            return try await client.recordingRefusals(source, RefusalSubject(jobs: 1, kind: kind, options: options)) {
                let job = try NewJob(
                    kind: kind,
                    argumentsJSON: argumentsJSON,
                    options: options,
                    maximumArgumentBytes: client.configuration.maximumArgumentBytes
                )
                return try await self.insert([job], source: source)[0]
            }
        }

        /// Inserts many jobs of one type in a single transaction: all or none.
        ///
        /// A large batch is built (encoded and validated) a statement's worth at a time while the database inserts
        /// the statement before; an invalid job anywhere rolls the whole batch back, so nothing is written.
        @discardableResult
        public func enqueue<Arguments: JobArguments>(
            contentsOf arguments: [Arguments],
            options: JobOptions = JobOptions()
        ) async throws -> [EnqueuedJob] {
            let client = self.client
            let merged = options.merged(over: Arguments.defaultOptions)
            let group = NewJobBatch.Group(kind: Arguments.kind, options: merged)
            let batch = NewJobBatch(count: arguments.count, groups: [group: arguments.count]) { range in
                try client.makeNewJobs(arguments[range], options: options)
            }
            return try await client.recordingRefusals(
                .client,
                RefusalSubject(jobs: arguments.count, kind: Arguments.kind, options: merged)
            ) {
                try await self.insert(
                    batch,
                    namespaces: { [merged.namespace ?? NewJob.Defaults.namespace: arguments.count] },
                    source: .client
                )
            }
        }

        /// Inserts a mixed batch in a single transaction: all or none, built as ``enqueue(contentsOf:options:)``
        /// builds its batch.
        @discardableResult
        public func enqueue(_ requests: [JobRequest]) async throws -> [EnqueuedJob] {
            try await self.enqueue(requests, source: .client)
        }

        /// ``enqueue(_:)`` with the source its refusals are recorded under (the HTTP layer's is `.api`).
        @discardableResult
        package func enqueue(_ requests: [JobRequest], source: EnqueueSource) async throws -> [EnqueuedJob] {
            let client = self.client
            var groups: [NewJobBatch.Group: Int] = [:]
            for request in requests { groups[request.group, default: 0] += 1 }
            let batch = NewJobBatch(count: requests.count, groups: groups) { range in
                try requests[range].map { try $0.make(client) }
            }
            return try await client.recordingRefusals(source, of: requests) {
                try await self.insert(
                    batch,
                    namespaces: { requests.reduce(into: [:]) { $0[$1.namespace, default: 0] += 1 } },
                    source: source
                )
            }
        }

        private func insert(_ jobs: [NewJob], source: EnqueueSource) async throws -> [EnqueuedJob] {
            try await self.insert(
                NewJobBatch(jobs),
                namespaces: { jobs.reduce(into: [:]) { $0[$1.namespace, default: 0] += 1 } },
                source: source
            )
        }

        /// Inserts `batch` once the enqueue limits let it (`namespaces` counts its jobs per namespace, asked for
        /// only when a namespace has a limit).
        private func insert(
            _ batch: NewJobBatch,
            namespaces: () -> [String: Int],
            source: EnqueueSource
        ) async throws -> [EnqueuedJob] {
            guard batch.count > 0 else { return [] }
            let client = self.client
            try await client.checkEnqueueLimits(batch, namespaces: namespaces, source: source)
            var plan = NotificationCoalescer.Plan(notifyNow: false, trailing: [])
            if client.configuration.notifyOnInsert {
                plan = client.notifications.plan(queues: batch.queuesToWake)
            }
            let result = try await client.store.insert(batch, notify: plan.notifyNow, logger: client.logger)
            ConveyorMetrics.recordEnqueued(batch)
            // Scheduled only after the insert committed, so the trailing wake-up can never precede the jobs.
            for (queue, deadline) in plan.trailing {
                client.notifications.scheduleTrailing(
                    queue: queue,
                    at: deadline,
                    store: client.store,
                    logger: client.logger
                )
            }
            return result
        }

        /// Reads a job with its attempt history; `nil` when no job has this id.
        public func get(_ id: JobID) async throws -> JobRecord? {
            try await self.client.store.job(id, logger: self.client.logger)
        }

        /// Lists jobs newest first. Pass the returned `nextCursor` back in the filter for the next page.
        public func list(_ filter: JobFilter = JobFilter()) async throws -> JobPage {
            try await self.client.store.jobs(matching: filter, logger: self.client.logger)
        }

        /// Lists the dead-letter queue (`discarded` jobs), newest first.
        public func deadLettered(_ filter: JobFilter = JobFilter()) async throws -> JobPage {
            var filter = filter
            filter.states = [.discarded]
            return try await self.list(filter)
        }

        /// Cancels a job. A job that is not running is cancelled at once; a running job is asked to stop: its worker
        /// cancels the handler's task at its next heartbeat and records the job as `cancelled`. A finished job is
        /// returned unchanged.
        ///
        /// - Throws: `JOB_NOT_FOUND`.
        @discardableResult
        public func cancel(_ id: JobID, by performer: String? = nil) async throws -> JobRecord {
            try await self.client.store.cancel(id, by: performer, logger: self.client.logger)
        }

        /// Moves a dead-lettered (or cancelled) job back to `available`, allowing one more attempt. Its history and
        /// id are kept.
        ///
        /// - Throws: `JOB_NOT_FOUND`; `INVALID_JOB_STATE` when the job is not `discarded` or `cancelled`;
        ///   `DUPLICATE_JOB` when its unique key is held by another job now.
        @discardableResult
        public func retry(_ id: JobID, by performer: String? = nil) async throws -> JobRecord {
            try await self.client.store.retry(id, by: performer, logger: self.client.logger)
        }

        /// Enqueues a new job with the same kind, arguments and options as a finished job; the new job's `replayOf`
        /// points at the original, which is left as it is.
        ///
        /// - Throws: `JOB_NOT_FOUND`; `INVALID_JOB_STATE` when the original has not finished.
        @discardableResult
        public func replay(_ id: JobID, by performer: String? = nil) async throws -> EnqueuedJob {
            try await self.client.store.replay(id, by: performer, logger: self.client.logger)
        }
    }

    /// Pause, resume and inspect queues. `performer` names who acts (recorded in the queue's events); pass what
    /// your audit needs, such as a user name.
    public struct Queues: Sendable {
        let client: ConveyorClient

        /// Stops every worker from fetching jobs of `queue`; running jobs finish normally.
        public func pause(_ queue: String, by performer: String? = nil) async throws {
            try Self.validate(queue)
            try await self.client.store.setQueuePaused(queue, paused: true, by: performer, logger: self.client.logger)
        }

        /// Lets workers fetch from `queue` again.
        public func resume(_ queue: String, by performer: String? = nil) async throws {
            try Self.validate(queue)
            try await self.client.store.setQueuePaused(queue, paused: false, by: performer, logger: self.client.logger)
        }

        /// Lets at most `maxRunning` jobs of `queue` be leased at once across every worker process, or removes the
        /// limit (`nil`). Enforced when jobs are fetched: a fetch leases no more jobs than the queue has free
        /// slots, and fetches of the queue never wait on each other. Leased jobs count, whether their handler
        /// runs or they wait in a worker's prefetch buffer (set the queue's `prefetch` to 0 on the workers to keep
        /// every slot for a running handler). Jobs running when the limit is set count toward it; lowered below
        /// what runs, the jobs already running finish.
        ///
        /// - Throws: `INVALID_QUEUE_NAME`; `INVALID_OPTION` when `maxRunning` is outside 1...10,000.
        public func setConcurrencyLimit(_ queue: String, maxRunning: Int?, by performer: String? = nil) async throws {
            try Self.validate(queue)
            if let maxRunning, !(1...10_000).contains(maxRunning) {
                throw ConveyorError(
                    .invalidOption,
                    "a concurrency limit must be between 1 and 10000, got \(maxRunning)"
                )
            }
            try await self.client.store.setQueueConcurrencyLimit(
                queue,
                maxRunning: maxRunning,
                by: performer,
                logger: self.client.logger
            )
        }

        /// Makes `queue` fair (`true`): each fetch shares the queue's jobs among the namespaces (tenants) that have
        /// jobs available, in proportion to their weights (``ConveyorClient/Tenants/set(_:weight:by:)``), so a
        /// tenant with a deep backlog cannot hold back another tenant's job by more than one fetch (the next fetch
        /// leases it; give the queue `prefetch: 0` on the workers so that it also starts then, not after jobs
        /// already prefetched); a tenant alone gets every slot. Priority then orders each tenant's own jobs. `false`
        /// restores first-come order (priority, run time, id) across the queue.
        ///
        /// - Throws: `INVALID_QUEUE_NAME`.
        public func setFairness(_ queue: String, _ fair: Bool, by performer: String? = nil) async throws {
            try Self.validate(queue)
            try await self.client.store.setQueueFair(queue, fair: fair, by: performer, logger: self.client.logger)
        }

        /// Every known queue with counts of its available, scheduled, retryable, running and dead-lettered jobs
        /// (finished jobs are not counted, so the call costs what waits, never what finished).
        public func list() async throws -> [QueueInfo] {
            try await self.client.store.queues(logger: self.client.logger)
        }

        static func validate(_ queue: String) throws {
            if let violation = NameValidation.checkLabel(queue) {
                throw ConveyorError(.invalidQueueName, "invalid queue name: \(violation.explanation)")
            }
        }
    }
}
