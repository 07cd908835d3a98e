import ConveyorCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs registered job handlers: a swift-service-lifecycle `Service`.
///
/// `run()` applies migrations (unless told not to), then for each configured queue fetches jobs into its execution
/// slots, heartbeats the leases it holds, reaps expired leases of crashed workers, and writes results in batches. It
/// wakes on LISTEN/NOTIFY and polls as a fallback (or polls only, for PgBouncer in transaction mode).
///
/// On graceful shutdown it stops fetching, lets running handlers finish within ``Configuration/shutdownGracePeriod``,
/// then cancels the rest and releases their jobs back to `available`; when `run()` returns after a graceful shutdown,
/// this process holds no lease. On task cancellation it does the same without the grace period.
///
/// ```swift
/// var registry = JobRegistry()
/// registry.register(SendReceipt.self) { args, context in … }
/// let worker = ConveyorWorker(client: conveyor, registry: registry)
/// let group = ServiceGroup(services: [postgres, worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class ConveyorWorker: Service, Sendable {
    /// How a worker learns that jobs arrived.
    public enum WakeMode: Sendable, Hashable {
        /// LISTEN on one connection per process, and poll as a fallback.
        case listen
        /// Poll only: works through PgBouncer in transaction mode, where LISTEN does not.
        case pollOnly
    }

    /// Settings of one queue.
    public struct QueueConfiguration: Sendable, Hashable {
        /// How many jobs of this queue run at once in this process.
        public var slots: Int
        /// The most jobs that may be leased ahead and wait in memory for a free slot (default: 30 per slot).
        /// The worker prefetches about twice what its slots finish during one fetch round trip, up to this
        /// limit: short jobs come in large batches, long ones are not hoarded. Waiting jobs stay leased and
        /// heartbeated, and are released on shutdown. 0 fetches only for free slots.
        public var prefetch: Int

        public init(slots: Int, prefetch: Int? = nil) {
            self.slots = slots
            self.prefetch = prefetch ?? 30 * slots
        }
    }

    /// Worker settings; every `var` has a documented default.
    public struct Configuration: Sendable {
        /// The worker pool this process belongs to (default `default`): a name shared by processes deployed
        /// alike, listed with their slots and running jobs, and paused or resumed together (see
        /// ``ConveyorClient/Pools``).
        public var pool: String = "default"
        /// Queues to work and their slots (default: `default` with 10 slots).
        public var queues: [String: QueueConfiguration] = ["default": QueueConfiguration(slots: 10)]
        /// This process's identity in leases and attempt records (default: host name, process id and a random tag).
        public var workerID: String = ConveyorWorker.defaultWorkerID()
        /// How long a fetched job's lease lasts without a heartbeat (default 30 s). A crashed worker's jobs are
        /// retried about this long after it died.
        public var leaseDuration: Duration = .seconds(30)
        /// Whether a fetch waits for its leases to reach the disk before their jobs start (default `false`).
        ///
        /// Enqueues and results are always committed synchronously. A lease is not, by default: it needs no
        /// durability for nothing to be lost, and waiting for it puts a WAL flush between every enqueue and the
        /// job's start. If PostgreSQL crashes within a moment (three `wal_writer_delay`) of a fetch, its leases may
        /// be gone after recovery: those jobs are runnable again and may run a second time, as when a worker
        /// crashes, and that attempt is not counted. Set `true` to count every attempt across database crashes.
        public var synchronousLeases: Bool = false
        /// How often held leases are extended, in one statement for all of them (default 10 s). Also how quickly a
        /// running job sees a client's cancel request.
        public var heartbeatInterval: Duration = .seconds(10)
        /// The poll interval (default 2 s): the fallback for lost notifications, and the most a scheduled or
        /// retrying job may start late. New jobs wake a listening worker at once; in `.pollOnly` mode, lower it.
        public var pollInterval: Duration = .seconds(2)
        /// How often expired leases are looked for and queue depth is sampled (default 15 s).
        public var reaperInterval: Duration = .seconds(15)
        /// How long running handlers may take to finish on graceful shutdown (default 10 s).
        public var shutdownGracePeriod: Duration = .seconds(10)
        /// The most results written in one statement (default 500). Finished jobs beyond two batches that wait to be
        /// written hold back fetching, so a worker never runs further ahead of its writes than that.
        public var completionBatchSize: Int = 500
        /// How long the completer waits for more results before writing a partial batch (default 1 ms).
        public var completionFlushInterval: Duration = .milliseconds(1)
        /// How often handler deadlines are checked (default 50 ms).
        public var supervisionInterval: Duration = .milliseconds(50)
        /// LISTEN/NOTIFY with poll fallback, or poll only (default `.listen`).
        public var wakeMode: WakeMode = .listen
        /// The longest the worker waits for one database call (default 10 s).
        ///
        /// Every call on the worker's paths (fetch, results, heartbeat, reaper, staging, getting a LISTEN
        /// connection) is bounded by it: a call that has not returned by then is cancelled and counts as a transient
        /// failure, retried with backoff, so no loop can hang on a connection that died without saying so. It also
        /// bounds shutdown: results still unwritten this long after the handlers stopped are left to expire.
        public var databaseTimeout: Duration = .seconds(10)
        /// Whether `run()` applies migrations first (default `true`).
        public var migrateOnStart: Bool = true
        /// How often the counts of finished attempts are added to the per-minute stats that `GET /metrics` and the
        /// dashboard read (default 5 s).
        public var statsInterval: Duration = .seconds(5)
        /// How long refused enqueues stay in `ingest_decisions` before the reaper prunes them (default 7 days).
        public var ingestDecisionRetention: Duration = .seconds(7 * 86_400)
        /// Cron schedules this worker defines when it starts (see ``ConveyorClient/Schedules/define(_:)``).
        public var schedules: [CronSchedule] = []
        /// Whether this worker fires due schedules (default `true`). Any number of workers may: each tick is
        /// enqueued once.
        public var runsSchedules: Bool = true
        /// How often due schedules are fired (default 1 s): the most a tick is enqueued late while a worker runs.
        public var scheduleInterval: Duration = .seconds(1)

        public init() {}

        /// Checks ranges once, before anything starts.
        public func validate() throws {
            guard !self.queues.isEmpty else {
                throw ConveyorError(.invalidConfiguration, "a worker needs at least one queue")
            }
            if let violation = NameValidation.checkLabel(self.pool) {
                throw ConveyorError(.invalidConfiguration, "invalid pool name: \(violation.explanation)")
            }
            for (name, queue) in self.queues {
                try ConveyorClient.Queues.validate(name)
                guard (1...10_000).contains(queue.slots) else {
                    throw ConveyorError(.invalidConfiguration, "queue \(name): slots must be between 1 and 10000")
                }
                guard (0...10_000).contains(queue.prefetch) else {
                    throw ConveyorError(.invalidConfiguration, "queue \(name): prefetch must be between 0 and 10000")
                }
            }
            let longest = Duration.seconds(86_400 * 365)
            let durations: [(String, Duration)] = [
                ("lease duration", self.leaseDuration), ("heartbeat interval", self.heartbeatInterval),
                ("poll interval", self.pollInterval), ("reaper interval", self.reaperInterval),
                ("supervision interval", self.supervisionInterval), ("database timeout", self.databaseTimeout),
                ("stats interval", self.statsInterval), ("ingest decision retention", self.ingestDecisionRetention),
                ("schedule interval", self.scheduleInterval),
            ]
            for (name, value) in durations where value <= .zero || value > longest {
                throw ConveyorError(.invalidConfiguration, "the \(name) must be positive and at most a year")
            }
            for (name, value) in [
                ("shutdown grace period", self.shutdownGracePeriod),
                ("completion flush interval", self.completionFlushInterval),
            ] where value < .zero || value > longest {
                throw ConveyorError(.invalidConfiguration, "the \(name) must be between zero and a year")
            }
            guard self.heartbeatInterval < self.leaseDuration else {
                throw ConveyorError(.invalidConfiguration, "the heartbeat interval must be shorter than the lease")
            }
            guard self.pollInterval > .zero, self.reaperInterval > .zero, self.supervisionInterval > .zero else {
                throw ConveyorError(.invalidConfiguration, "intervals must be positive")
            }
            guard (1...10_000).contains(self.completionBatchSize) else {
                throw ConveyorError(.invalidConfiguration, "completion batch size must be between 1 and 10000")
            }
        }
    }

    public let client: ConveyorClient
    public let registry: JobRegistry
    public let configuration: Configuration
    private let logger: Logger

    public init(
        client: ConveyorClient,
        registry: JobRegistry,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "conveyor.worker")
    ) {
        self.client = client
        self.registry = registry
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker_id"] = "\(configuration.workerID)"
        self.logger = logger
    }

    /// A worker id of the form `host-pid-random`.
    public static func defaultWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(tag)"
    }

    /// Runs the worker until graceful shutdown or cancellation.
    ///
    /// - Throws: A fatal ``ConveyorError`` (such as `SCHEMA_MISMATCH`) that one of its loops met: the worker does
    ///   not stay half alive. The other loops are cancelled first, and leases still held expire.
    public func run() async throws {
        try self.configuration.validate()
        if self.configuration.migrateOnStart {
            try await self.client.migrate()
        }
        let runtime = WorkerRuntime(
            store: self.client.store,
            registry: self.registry,
            configuration: self.configuration,
            logger: self.logger
        )
        // Runs that waited for a worker with their version resume now (and on every poll tick, for runs that an
        // older worker parked while this one was starting).
        try await self.resumeRunsWaitingForVersions()
        let runners = self.configuration.queues.sorted { $0.key < $1.key }.map { name, queue in
            QueueRunner(queue: name, slots: queue.slots, prefetch: queue.prefetch, worker: runtime)
        }
        // Registered before the first fetch, so that a worker that starts in a paused pool fetches nothing.
        await self.register(runtime, runners: runners)
        self.logger.info(
            "worker started",
            metadata: [
                "queues": "\(runners.map(\.queue).joined(separator: ","))",
                "wake_mode": "\(self.configuration.wakeMode)",
            ]
        )

        // A loop that fails fatally stops the queue runners too (a failing child cancels its own group's other
        // children, not the code that runs the runners), so the worker drains and run() throws: it never goes on
        // half alive.
        let failed = Mutex(false)
        @Sendable func failing(_ loop: @escaping @Sendable () async throws -> Void) -> @Sendable () async throws -> Void
        {
            {
                do {
                    try await loop()
                } catch {
                    guard !(error is CancellationError) else { throw error }
                    let first = failed.withLock { failed in
                        defer { failed = true }
                        return !failed
                    }
                    if first {
                        // The body writes what the runners release once they have drained (see below).
                        for runner in runners { runner.beginShutdown() }
                    }
                    throw error
                }
            }
        }
        do {
            // Every loop is a child of these groups: a loop that fails ends the worker, and none outlives run().
            try await withThrowingDiscardingTaskGroup { background in
                background.addTask(operation: failing { try await self.heartbeatLoop(runtime) })
                background.addTask(operation: failing { try await self.reaperLoop(runtime) })
                background.addTask { await self.supervisionLoop(runtime) }
                background.addTask { await self.pollLoop(runners) }
                background.addTask { await self.versionLoop() }
                background.addTask { await self.presenceLoop(runtime, runners: runners) }
                background.addTask { await self.statsLoop(runtime) }
                background.addTask { await self.scheduleLoop() }
                background.addTask { await runtime.workflowLoader.run() }
                background.addTask(
                    operation: failing {
                        try await runtime.stager.run(staged: { for runner in runners { runner.nudge() } })
                    }
                )
                if self.configuration.wakeMode == .listen {
                    background.addTask(operation: failing { try await self.listenLoop(runtime, runners: runners) })
                }
                try await withThrowingDiscardingTaskGroup { work in
                    // The completer keeps writing after the queue runners stop, until it has drained or its bound
                    // passed.
                    work.addTask(operation: failing { try await runtime.completer.run() })
                    work.addTask(operation: failing { try await runtime.workflowWriter.run() })
                    try await withGracefulShutdownHandler {
                        try await withThrowingDiscardingTaskGroup { queues in
                            for runner in runners {
                                queues.addTask(operation: failing { try await runner.run() })
                            }
                        }
                    } onGracefulShutdown: {
                        for runner in runners { runner.beginShutdown() }
                    }
                    runtime.completer.finish(within: self.configuration.databaseTimeout)
                    runtime.workflowWriter.finish(within: self.configuration.databaseTimeout)
                }
                background.cancelAll()
            }
        } catch {
            await self.signOff(runtime)
            self.logger.error("worker stopped by an error", metadata: ["error": "\(String(reflecting: error))"])
            throw error
        }
        await self.signOff(runtime)
        self.logger.info("worker stopped")
    }

    /// Runs one bounded database call of a loop (see ``BoundedCall``).
    private func call<Value: Sendable>(
        _ what: @autoclosure () -> String,
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        try await BoundedCall.run(timeout: self.configuration.databaseTimeout, what(), operation)
    }

    /// Extends held leases every heartbeat interval and stops the handlers whose job was cancelled or whose lease
    /// was lost, by lease (job and token), so that a newer attempt of the same job is never stopped by an answer
    /// about an older one.
    private func heartbeatLoop(_ runtime: WorkerRuntime) async throws {
        let clock = ContinuousClock()
        let writeBound = self.configuration.leaseDuration / 2
        var abandonedBefore = 0
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.heartbeatInterval)
            } catch {
                return
            }
            let (leases, abandoned) = runtime.inFlight.leasesToExtend(resultsWaitingSince: clock.now - writeBound)
            if abandoned > 0, abandoned != abandonedBefore {
                self.logger.warning(
                    "results unwritten for over half the lease; their leases are left to expire",
                    metadata: ["jobs": "\(abandoned)"]
                )
            }
            abandonedBefore = abandoned
            guard !leases.isEmpty else { continue }
            let sent = Dictionary(leases.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let result: HeartbeatResult
            do {
                result = try await self.call("extending \(leases.count) lease(s)") { [logger, configuration] in
                    try await runtime.store.heartbeat(
                        leases,
                        workerID: runtime.workerID,
                        leaseDuration: configuration.leaseDuration,
                        logger: logger
                    )
                }
            } catch let error as ConveyorError where error.isFatal {
                throw error
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
                continue
            }
            for lease in runtime.apply(result, sent: sent) where lease.reason == .leaseLost {
                self.logger.warning("lease lost; stopping the handler", metadata: ["job_id": "\(lease.lease.id)"])
            }
        }
    }

    private func reaperLoop(_ runtime: WorkerRuntime) async throws {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.reaperInterval)
            } catch {
                return
            }
            do {
                try await self.reap(runtime)
            } catch let error as ConveyorError where error.isFatal {
                throw error
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("reaper failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Takes back expired leases of crashed workers as failed attempts, and samples queue depth.
    private func reap(_ runtime: WorkerRuntime) async throws {
        let logger = self.logger
        let expired = try await self.call("finding expired leases") {
            try await runtime.store.expiredLeases(limit: 1000, logger: logger)
        }
        if !expired.isEmpty {
            let completions = expired.map { lease in
                let entry = self.registry.entry(for: lease.kind)
                let transition = JobTransition.after(
                    .leaseExpired,
                    attempt: lease.attempt,
                    maxAttempts: lease.maxAttempts,
                    retryPolicy: lease.kind == WorkflowJob.kind
                        ? WorkflowJob.resumePolicy : entry?.retryPolicy ?? .default,
                    unitRandom: Double.random(in: 0..<1)
                )
                return JobCompletion(
                    lease: lease.lease,
                    transition: transition,
                    durationMicroseconds: nil,
                    requireExpiredLease: true
                )
            }
            let reaped: [JobID]
            do {
                reaped = try await self.call("writing \(completions.count) expired lease(s)") {
                    try await runtime.store.complete(completions, logger: logger)
                }
            } catch let error as ConveyorError where error.code == .databaseError {
                // A row the database refuses must not stop the reaping of every other: write them one by one.
                var written: [JobID] = []
                for completion in completions {
                    do {
                        written += try await self.call("writing an expired lease") {
                            try await runtime.store.complete([completion], logger: logger)
                        }
                    } catch let error as ConveyorError where error.code == .databaseError {
                        self.logger.error(
                            "the database refused to record an expired lease",
                            metadata: ["job_id": "\(completion.lease.id)", "error": "\(error)"]
                        )
                    }
                }
                reaped = written
            }
            if !reaped.isEmpty {
                ConveyorMetrics.leasesReaped(reaped.count)
                self.logger.info("reaped expired leases", metadata: ["count": "\(reaped.count)"])
            }
        }
        let depths = try await self.call("counting runnable jobs") {
            try await runtime.store.runnableCounts(logger: logger)
        }
        for (queue, depth) in depths {
            ConveyorMetrics.queueDepth(queue: queue, depth: depth)
        }
        // Retention of refused enqueues: any worker may prune, a thousand rows a pass, oldest first.
        let pruned = try await self.call("pruning ingest decisions") { [configuration] in
            try await runtime.store.pruneIngestDecisions(
                olderThan: configuration.ingestDecisionRetention,
                limit: 1000,
                logger: logger
            )
        }
        if pruned > 0 {
            self.logger.debug("pruned ingest decisions", metadata: ["count": "\(pruned)"])
        }
    }

    private func supervisionLoop(_ runtime: WorkerRuntime) async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.supervisionInterval)
            } catch {
                return
            }
            runtime.inFlight.stopOverdue(now: clock.now)
        }
    }

    /// Makes runs that wait for a workflow version this worker has runnable; returns how many.
    private func resumeRunsWaitingForVersions() async throws {
        let versions = self.registry.workflows.values.flatMap { $0.values }.map {
            WorkflowVersion(name: $0.name, version: $0.version)
        }
        guard !versions.isEmpty else { return }
        let resumed = try await self.call("resuming runs waiting for their version") { [client, logger] in
            try await client.store.resumeWorkflowRuns(waitingFor: versions, logger: logger)
        }
        if resumed > 0 {
            self.logger.info(
                "resumed runs that waited for a worker with their version",
                metadata: ["runs": "\(resumed)"]
            )
        }
    }

    /// Upserts this process's row in the workers table every heartbeat interval (after the first registration in
    /// `run()`), so that operators and explanations see which queues and kinds live workers serve and how many
    /// jobs they run; the answer says whether the pool is paused.
    private func presenceLoop(_ runtime: WorkerRuntime, runners: [QueueRunner]) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.heartbeatInterval)
            } catch {
                return
            }
            await self.register(runtime, runners: runners)
        }
    }

    /// Writes this process's presence and applies its pool's pause. A failed write is logged and tried again on
    /// the next tick, keeping the pause as last read: presence is for operators, and never stops the work.
    private func register(_ runtime: WorkerRuntime, runners: [QueueRunner]) async {
        var running: [String: Int] = [:]
        for runner in runners {
            let count = runner.running
            if count > 0 { running[runner.queue] = count }
        }
        let presence = WorkerPresence(
            id: self.configuration.workerID,
            pool: self.configuration.pool,
            queues: self.configuration.queues.mapValues(\.slots),
            running: running,
            kinds: self.registry.kinds,
            workflows: self.registry.workflowVersions,
            startedAt: runtime.startedAt
        )
        let registration: WorkerRegistration
        do {
            registration = try await self.call("registering the worker") { [client, logger] in
                try await client.store.registerWorker(presence, logger: logger)
            }
        } catch {
            if Task.isCancelled { return }
            self.logger.debug("registering the worker failed", metadata: ["error": "\(error)"])
            return
        }
        runtime.limitedQueues.withLock { $0 = registration.limitedQueues }
        let paused = registration.poolPaused
        let was = runtime.poolPaused.exchange(paused, ordering: .relaxed)
        guard was != paused else { return }
        self.logger.info(
            paused ? "pool paused; fetching stops" : "pool resumed; fetching again",
            metadata: ["pool": "\(self.configuration.pool)"]
        )
        if !paused {
            for runner in runners { runner.nudge() }
        }
    }

    /// Defines the configured schedules, then fires due ones every ``Configuration/scheduleInterval``. Failures are
    /// logged and retried on the next pass: a tick that a pass failed to enqueue stays due.
    private func scheduleLoop() async {
        var undefined = self.configuration.schedules
        guard self.configuration.runsSchedules || !undefined.isEmpty else { return }
        while !Task.isCancelled {
            while let schedule = undefined.first {
                do {
                    try await self.call("defining schedule \(schedule.name)") { [client, configuration] in
                        try await client.schedules.define(schedule, by: "worker:\(configuration.workerID)")
                    }
                    undefined.removeFirst()
                } catch {
                    if Task.isCancelled { return }
                    let transient = (error as? ConveyorError)?.isTransient ?? false
                    self.logger.log(
                        level: transient ? .warning : .error,
                        transient
                            ? "defining a schedule failed; retrying" : "a schedule was refused; it is not defined",
                        metadata: ["schedule": "\(schedule.name)", "error": "\(error)"]
                    )
                    guard !transient else { break }
                    undefined.removeFirst()
                }
            }
            if self.configuration.runsSchedules {
                do {
                    let fired = try await self.call("firing due schedules") { [client] in
                        try await client.schedules.fireDue()
                    }
                    for (name, jobs) in fired where !jobs.isEmpty {
                        self.logger.debug("enqueued ticks", metadata: ["schedule": "\(name)", "jobs": "\(jobs.count)"])
                    }
                } catch {
                    if Task.isCancelled { return }
                    self.logger.debug("firing due schedules failed", metadata: ["error": "\(error)"])
                }
            }
            do {
                try await Task.sleep(for: self.configuration.scheduleInterval)
            } catch {
                return
            }
        }
    }

    /// Writes what this worker's attempts ended as (counted in memory) to the per-minute stats every
    /// ``Configuration/statsInterval``: what `GET /metrics` and the dashboard read.
    private func statsLoop(_ runtime: WorkerRuntime) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.statsInterval)
            } catch {
                return
            }
            await self.flushStats(runtime)
        }
    }

    /// One write of the counted stats; on failure they are kept for the next one. Bounded by two seconds at most,
    /// as ``leave()`` is: stats are for operators and never hold the work or the shutdown up.
    private func flushStats(_ runtime: WorkerRuntime) async {
        let samples = runtime.stats.drain()
        guard !samples.isEmpty else { return }
        do {
            let bound = min(self.configuration.databaseTimeout, .seconds(2))
            try await BoundedCall.run(timeout: bound, "writing queue stats") { [client, configuration, logger] in
                try await client.store.recordQueueStats(samples, workerID: configuration.workerID, logger: logger)
            }
        } catch {
            runtime.stats.restore(samples)
            self.logger.debug("writing queue stats failed", metadata: ["error": "\(error)"])
        }
    }

    /// On the way out: the last counted stats and the presence row's stop, side by side, within one bound.
    private func signOff(_ runtime: WorkerRuntime) async {
        async let stats: Void = self.flushStats(runtime)
        async let left: Void = self.leave()
        _ = await (stats, left)
    }

    /// Marks this process's presence row stopped on the way out (best effort: a row left live stops counting once
    /// its heartbeat is a minute old).
    private func leave() async {
        do {
            // At most two seconds: shutdown with the database down must not wait long for this.
            let bound = min(self.configuration.databaseTimeout, .seconds(2))
            try await BoundedCall.run(timeout: bound, "removing the worker's presence") {
                [client, configuration, logger] in
                try await client.store.removeWorker(id: configuration.workerID, logger: logger)
            }
        } catch {
            self.logger.debug("removing the worker's presence failed", metadata: ["error": "\(error)"])
        }
    }

    /// Resumes runs waiting for this worker's workflow versions every poll interval. The query reads a partial
    /// index that holds only such runs, so it costs nothing while there are none.
    private func versionLoop() async {
        guard !self.registry.workflows.isEmpty else { return }
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.pollInterval)
                try await self.resumeRunsWaitingForVersions()
            } catch {
                if Task.isCancelled { return }
                self.logger.debug("resuming runs waiting for their version failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func pollLoop(_ runners: [QueueRunner]) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.pollInterval)
            } catch {
                return
            }
            for runner in runners { runner.nudge() }
        }
    }

    /// Listens for enqueue notifications on one connection, and gets a new one when it fails: at once, then with
    /// backoff up to a second. Getting the connection is bounded; listening is not. Every (re)start nudges every
    /// queue, since notifications sent while nobody listened are lost.
    private func listenLoop(_ runtime: WorkerRuntime, runners: [QueueRunner]) async throws {
        let byQueue = Dictionary(uniqueKeysWithValues: runners.map { ($0.queue, $0) })
        var backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(1))
        let logger = self.logger
        while !Task.isCancelled {
            let established = Mutex(false)
            var failure: (any Error)?
            do {
                try await BoundedCall.run(
                    timeout: self.configuration.databaseTimeout,
                    "starting to listen for notifications"
                ) { started in
                    try await runtime.store.listen(
                        onListening: {
                            guard started() else { return }
                            established.withLock { $0 = true }
                            for runner in runners { runner.nudge() }
                        },
                        onWake: { queue in byQueue[queue]?.nudge() },
                        logger: logger
                    )
                }
            } catch let error as ConveyorError where error.isFatal {
                throw error
            } catch {
                failure = error
            }
            if Task.isCancelled { return }
            // A connection that was listening and then failed starts the backoff afresh; either way the next one
            // waits a moment, so a connection that keeps failing at once is not retried in a loop.
            if established.withLock({ $0 }) { backoff.reset() }
            let delay = backoff.next()
            if backoff.failures == 1, let failure {
                self.logger.warning(
                    "listening for notifications failed; polling until it reconnects",
                    metadata: ["error": "\(failure)"]
                )
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }
}
