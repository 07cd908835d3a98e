import ConveyorCore
import Foundation
import Logging
import ServiceLifecycle

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
        /// Whether `run()` applies migrations first (default `true`).
        public var migrateOnStart: Bool = true

        public init() {}

        /// Checks ranges once, before anything starts.
        public func validate() throws {
            guard !self.queues.isEmpty else {
                throw ConveyorError(.invalidConfiguration, "a worker needs at least one queue")
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
        let runners = self.configuration.queues.sorted { $0.key < $1.key }.map { name, queue in
            QueueRunner(queue: name, slots: queue.slots, prefetch: queue.prefetch, worker: runtime)
        }
        self.logger.info(
            "worker started",
            metadata: [
                "queues": "\(runners.map(\.queue).joined(separator: ","))",
                "wake_mode": "\(self.configuration.wakeMode)",
            ]
        )

        await withDiscardingTaskGroup { background in
            background.addTask { await self.heartbeatLoop(runtime) }
            background.addTask { await self.reaperLoop(runtime) }
            background.addTask { await self.supervisionLoop(runtime) }
            background.addTask { await self.pollLoop(runners) }
            if self.configuration.wakeMode == .listen {
                background.addTask { await self.listenLoop(runtime, runners: runners) }
            }
            await withDiscardingTaskGroup { work in
                // The completer keeps writing after the queue runners stop, until it has drained.
                work.addTask { await runtime.completer.run() }
                await withGracefulShutdownHandler {
                    await withDiscardingTaskGroup { queues in
                        for runner in runners {
                            queues.addTask { await runner.run() }
                        }
                    }
                } onGracefulShutdown: {
                    for runner in runners { runner.beginShutdown() }
                }
                runtime.completer.finish()
            }
            background.cancelAll()
        }
        self.logger.info("worker stopped")
    }

    private func heartbeatLoop(_ runtime: WorkerRuntime) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.heartbeatInterval)
            } catch {
                return
            }
            let leases = runtime.inFlight.leases
            guard !leases.isEmpty else { continue }
            do {
                let result = try await runtime.store.heartbeat(
                    leases,
                    workerID: runtime.workerID,
                    leaseDuration: self.configuration.leaseDuration,
                    logger: self.logger
                )
                for id in result.cancelRequested {
                    runtime.inFlight.execution(id)?.stop(.cancelRequested)
                }
                for id in result.lost {
                    self.logger.warning("lease lost; stopping the handler", metadata: ["job_id": "\(id)"])
                    runtime.inFlight.execution(id)?.stop(.leaseLost)
                }
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    private func reaperLoop(_ runtime: WorkerRuntime) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: self.configuration.reaperInterval)
            } catch {
                return
            }
            do {
                let expired = try await runtime.store.expiredLeases(limit: 1000, logger: self.logger)
                if !expired.isEmpty {
                    let completions = expired.map { lease in
                        let entry = self.registry.entry(for: lease.kind)
                        let transition = JobTransition.after(
                            .leaseExpired,
                            attempt: lease.attempt,
                            maxAttempts: lease.maxAttempts,
                            retryPolicy: entry?.retryPolicy ?? .default,
                            unitRandom: Double.random(in: 0..<1)
                        )
                        return JobCompletion(
                            lease: lease.lease,
                            transition: transition,
                            durationMicroseconds: nil,
                            requireExpiredLease: true
                        )
                    }
                    let reaped = try await runtime.store.complete(completions, logger: self.logger)
                    if !reaped.isEmpty {
                        ConveyorMetrics.leasesReaped(reaped.count)
                        self.logger.info("reaped expired leases", metadata: ["count": "\(reaped.count)"])
                    }
                }
                for (queue, depth) in try await runtime.store.runnableCounts(logger: self.logger) {
                    ConveyorMetrics.queueDepth(queue: queue, depth: depth)
                }
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("reaper failed", metadata: ["error": "\(String(reflecting: error))"])
            }
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

    private func listenLoop(_ runtime: WorkerRuntime, runners: [QueueRunner]) async {
        let byQueue = Dictionary(uniqueKeysWithValues: runners.map { ($0.queue, $0) })
        while !Task.isCancelled {
            do {
                try await runtime.store.listen(
                    onWake: { queue in byQueue[queue]?.nudge() },
                    logger: self.logger
                )
            } catch {
                if Task.isCancelled { return }
                self.logger.warning(
                    "listening for notifications failed; polling until it reconnects",
                    metadata: ["error": "\(String(reflecting: error))"]
                )
                // Notifications may have been missed while the connection was down.
                for runner in runners { runner.nudge() }
            }
            do {
                try await Task.sleep(for: .seconds(1))
            } catch {
                return
            }
        }
    }
}
