import ConveyorCore
import Foundation

extension ConveyorClient {
    /// The worker processes that are alive now.
    public var workers: Workers { Workers(client: self) }

    /// Live worker processes, from the presence rows they refresh every heartbeat interval.
    public struct Workers: Sendable {
        let client: ConveyorClient

        /// A worker counts as live while its last heartbeat is at most this old (one minute: six default heartbeat
        /// intervals).
        public static let liveWithin: Duration = .seconds(60)

        /// Live workers with their queues, slots, kinds and workflow versions, ordered by id.
        public func list() async throws -> [WorkerPresence] {
            try await self.client.store.workers(heartbeatWithin: Self.liveWithin, logger: self.client.logger)
        }
    }
}

extension ConveyorClient {
    /// Worker pools: list them, pause and resume them.
    public var pools: Pools { Pools(client: self) }

    /// Named groups of worker processes (see ``ConveyorWorker/Configuration/pool``). `performer` names who acts
    /// (recorded in the pool's events).
    public struct Pools: Sendable {
        let client: ConveyorClient

        /// Every pool that a live worker names or that is paused, by name, with its workers, slots and running jobs.
        public func list() async throws -> [PoolInfo] {
            let store = self.client.store
            let logger = self.client.logger
            async let workers = store.workers(heartbeatWithin: ConveyorClient.Workers.liveWithin, logger: logger)
            async let paused = store.pausedPools(logger: logger)
            return PoolInfo.assemble(workers: try await workers, paused: try await paused)
        }

        /// Stops the pool's workers from fetching, from their next heartbeat on (within
        /// ``ConveyorWorker/Configuration/heartbeatInterval``); the jobs they run finish normally. A pool may be
        /// paused before any of its workers start: they start paused.
        public func pause(_ pool: String, by performer: String? = nil) async throws {
            try Self.validate(pool)
            try await self.client.store.setPoolPaused(pool, paused: true, by: performer, logger: self.client.logger)
        }

        /// Lets the pool's workers fetch again, from their next heartbeat on.
        public func resume(_ pool: String, by performer: String? = nil) async throws {
            try Self.validate(pool)
            try await self.client.store.setPoolPaused(pool, paused: false, by: performer, logger: self.client.logger)
        }

        /// The most recent `limit` events of a pool (pauses and resumptions), oldest first.
        public func events(_ pool: String, limit: Int = 50) async throws -> [EventRecord] {
            try Self.validate(pool)
            return try await self.client.store.events(for: .pool(pool), limit: limit, logger: self.client.logger)
        }

        static func validate(_ pool: String) throws {
            if let violation = NameValidation.checkLabel(pool) {
                throw ConveyorError(.invalidPoolName, "invalid pool name: \(violation.explanation)")
            }
        }
    }
}

extension ConveyorClient.Jobs {
    /// Explains why a job is in its state and what happens next (see ``JobExplanation``). Reads the job, its
    /// queue, the live workers, its events and, for a workflow run's job, the run: a handful of small reads, none
    /// of which counts finished jobs.
    ///
    /// - Throws: `JOB_NOT_FOUND`.
    public func explain(_ id: JobID) async throws -> JobExplanation {
        JobExplanation(try await self.explanationFacts(id))
    }

    /// The facts an explanation is made from, read at one moment.
    public func explanationFacts(_ id: JobID) async throws -> JobExplanationFacts {
        let store = self.client.store
        let logger = self.client.logger
        guard let job = try await store.job(id, logger: logger) else {
            throw ConveyorError(.jobNotFound, "no job has id \(id)")
        }
        async let now = store.databaseNow(logger: logger)
        async let queue = store.queue(named: job.queue, logger: logger)
        async let workers = store.workers(heartbeatWithin: ConveyorClient.Workers.liveWithin, logger: logger)
        async let paused = store.pausedPools(logger: logger)
        async let events = store.events(for: .job(id), limit: 100, logger: logger)
        async let tenant = store.tenant(named: job.namespace, logger: logger)
        let ahead = job.state == .available ? try await store.jobsAhead(of: job, limit: 10_000, logger: logger) : 0
        var run: WorkflowRunRecord?
        if job.kind == WorkflowJob.kind, let runID = WorkflowJob.runID(fromArguments: job.argumentsJSON) {
            run = try await store.workflowRun(runID, logger: logger)
        }
        return JobExplanationFacts(
            job: job,
            now: try await now,
            queue: try await queue,
            workers: try await workers,
            pausedPools: Set(try await paused.map(\.name)),
            ahead: ahead,
            tenant: try await tenant,
            events: try await events,
            run: run
        )
    }

    /// Every attempt and every recorded state change and operator action of a job, in order (see
    /// ``JobTimeline``).
    ///
    /// - Throws: `JOB_NOT_FOUND`.
    public func timeline(_ id: JobID) async throws -> JobTimeline {
        guard let job = try await self.client.store.job(id, logger: self.client.logger) else {
            throw ConveyorError(.jobNotFound, "no job has id \(id)")
        }
        let events = try await self.client.store.events(for: .job(id), limit: 1000, logger: self.client.logger)
        return JobTimeline(job: job, events: events)
    }
}

extension ConveyorClient.Workflows {
    /// Explains a run through its job: why it waits (a sleep, a signal, a child, a version), what runs it, or how
    /// it ended.
    ///
    /// - Throws: `WORKFLOW_NOT_FOUND`.
    public func explain(_ id: WorkflowRunID) async throws -> JobExplanation {
        guard let run = try await self.get(id) else {
            throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)")
        }
        return try await self.client.jobs.explain(run.jobID)
    }

    /// The run's recorded operator actions (signals, cancel requests, forks), oldest first.
    public func events(_ id: WorkflowRunID) async throws -> [EventRecord] {
        try await self.client.store.events(for: .workflow(id), limit: 1000, logger: self.client.logger)
    }
}

extension ConveyorClient.Queues {
    /// One queue with its counts and pause record; `nil` when it has nothing waiting and no pause record.
    public func get(_ queue: String) async throws -> QueueInfo? {
        try Self.validate(queue)
        return try await self.client.store.queue(named: queue, logger: self.client.logger)
    }

    /// The queue's pauses and resumes with who did them, oldest first.
    public func events(_ queue: String) async throws -> [EventRecord] {
        try Self.validate(queue)
        return try await self.client.store.events(for: .queue(queue), limit: 1000, logger: self.client.logger)
    }
}
