import ConveyorCore
import Foundation
import Logging
import Synchronization

/// The parts of a running worker that its loops share.
final class WorkerRuntime: Sendable {
    let store: any JobStore
    let registry: JobRegistry
    let configuration: ConveyorWorker.Configuration
    let workerID: String
    let logger: Logger
    let inFlight = InFlightJobs()
    let stats = QueueStatsCollector()
    let completer: Completer
    let stager: Stager
    let workflowWriter: WorkflowWriter
    let workflowLoader: WorkflowLoader
    private let failureLog = FailureLog(interval: .seconds(10))
    /// Whether this worker's pool is paused, as of the last heartbeat of its presence: queue runners fetch
    /// nothing while it is.
    let poolPaused = Atomic<Bool>(false)
    /// This worker's queues that have a concurrency limit, as of the last heartbeat of its presence: a runner of
    /// such a queue fetches again whenever its results are written, since each one may have freed a slot.
    let limitedQueues = Mutex<Set<String>>([])
    /// When this run of the worker started: its presence's start time, the same in every heartbeat.
    let startedAt = Date()

    init(store: any JobStore, registry: JobRegistry, configuration: ConveyorWorker.Configuration, logger: Logger) {
        self.store = store
        self.registry = registry
        self.configuration = configuration
        self.workerID = configuration.workerID
        self.logger = logger
        self.stager = Stager(
            store: store,
            pollInterval: configuration.pollInterval,
            callTimeout: configuration.databaseTimeout,
            logger: logger
        )
        self.workflowWriter = WorkflowWriter(
            store: store,
            batchSize: configuration.completionBatchSize,
            callTimeout: configuration.databaseTimeout,
            logger: logger
        )
        self.workflowLoader = WorkflowLoader(
            store: store,
            batchSize: 100,
            callTimeout: configuration.databaseTimeout,
            logger: logger
        )
        self.completer = Completer(
            store: store,
            inFlight: self.inFlight,
            batchSize: configuration.completionBatchSize,
            flushInterval: configuration.completionFlushInterval,
            callTimeout: configuration.databaseTimeout,
            stager: self.stager,
            logger: logger
        )
    }

    /// Runs one attempt and hands its result to the completer. Never throws: every outcome becomes a transition.
    /// The execution was registered in ``inFlight`` when its job was fetched.
    func execute(_ execution: InFlightJobs.Execution) async {
        let job = execution.job
        ConveyorMetrics.jobStarted(queue: job.queue, kind: job.kind)
        self.stats.started(queue: job.queue)
        if job.kind == WorkflowJob.kind {
            await self.executeWorkflow(execution)
            return
        }
        let clock = ContinuousClock()
        let start = clock.now
        guard let entry = self.registry.entry(for: job.kind) else {
            _ = execution.markFinished()
            self.finish(job, result: .unknownKind, entry: nil, elapsed: .zero)
            return
        }
        let timeout = entry.timeout ?? job.timeoutMilliseconds.map { Duration.milliseconds($0) }
        // The handler runs on the calling lane's task, without a task of its own: stopping it cancels the lane,
        // which then runs no further job (see ``QueueRunner``).
        withUnsafeCurrentTask { task in
            execution.begin(deadline: timeout.map { start.advanced(by: $0) }, task: task)
        }
        let context = JobContext(
            id: job.id,
            kind: job.kind,
            queue: job.queue,
            namespace: job.namespace,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            tags: job.tags,
            workerID: self.workerID,
            workerLogger: self.logger
        )
        var thrown: (any Error)?
        do {
            try await withTaskCancellationHandler {
                try await entry.run(job.argumentsJSON, context)
            } onCancel: {
                execution.cancelledFromOutside()
            }
        } catch {
            thrown = error
        }
        let stopReason = execution.markFinished()
        let result = Self.classify(thrown: thrown, stopReason: stopReason)
        let transition = self.finish(job, result: result, entry: entry, elapsed: clock.now - start)
        if let code = transition.errorCode, transition.outcome == .failed {
            self.logFailure(job, code: code, transition: transition)
        }
    }

    /// Logs a failed attempt at `warning`, at most once per kind every ten seconds (with how many were not
    /// logged since), and every one at `debug`.
    private func logFailure(_ job: FetchedJob, code: AttemptErrorCode, transition: JobTransition) {
        var metadata: Logger.Metadata = [
            "job_id": "\(job.id)",
            "kind": "\(job.kind)",
            "queue": "\(job.queue)",
            "attempt": "\(job.attempt)",
            "error_code": "\(code.rawValue)",
            "next_state": "\(transition.state.rawValue)",
            "error": "\(transition.errorMessage ?? "")",
        ]
        if let suppressed = self.failureLog.admit(job.kind, now: ContinuousClock.now) {
            if suppressed > 0 { metadata["not_logged_since"] = "\(suppressed)" }
            self.logger.warning("attempt failed", metadata: metadata)
        } else if self.logger.logLevel <= .debug {
            self.logger.debug("attempt failed", metadata: metadata)
        }
    }

    /// Stops the handlers a heartbeat's answer concerns, by lease: the job and the token the heartbeat sent
    /// (`sent`, by job). A handler is stopped only while it runs under that very lease: a newer attempt of the job
    /// (fetched again after the lease was lost) is left alone, and so is a job whose result was written since the
    /// heartbeat read its leases (the write cleared the token, which the heartbeat then reports as lost), or whose
    /// handler finished and waits for the write. Returns the handlers it stopped, and why.
    @discardableResult
    func apply(
        _ result: HeartbeatResult,
        sent: [JobID: JobLease]
    ) -> [(lease: JobLease, reason: InFlightJobs.StopReason)] {
        var stopped: [(lease: JobLease, reason: InFlightJobs.StopReason)] = []
        let answers =
            result.cancelRequested.map { ($0, InFlightJobs.StopReason.cancelRequested) }
            + result.lost.map { ($0, InFlightJobs.StopReason.leaseLost) }
        for (id, reason) in answers {
            // Buffered jobs count too: one whose lease was lost or that was cancelled must not start.
            guard let lease = sent[id], let execution = self.inFlight.execution(holding: lease),
                execution.finishedAt == nil
            else { continue }
            execution.stop(reason)
            stopped.append((lease, reason))
        }
        return stopped
    }

    /// Gives a fetched job that never started back to `available` without using up an attempt.
    func release(_ job: FetchedJob) {
        self.finish(job, result: .released, entry: self.registry.entry(for: job.kind), elapsed: .zero)
    }

    /// Applies policy to `result` and hands the job's transition to the completer.
    @discardableResult
    func finish(
        _ job: FetchedJob,
        result: AttemptResult,
        entry: JobRegistry.Entry?,
        elapsed: Duration
    ) -> JobTransition {
        let transition = JobTransition.after(
            result,
            attempt: job.attempt,
            maxAttempts: job.maxAttempts,
            retryPolicy: entry?.retryPolicy ?? .default,
            retryOnTimeout: entry?.retryOnTimeout ?? true,
            unitRandom: result == .succeeded ? 0 : Double.random(in: 0..<1)
        )
        let nanoseconds = elapsed.wholeNanoseconds
        ConveyorMetrics.attemptFinished(
            queue: job.queue,
            kind: job.kind,
            transition: transition,
            durationNanoseconds: nanoseconds
        )
        self.stats.finished(queue: job.queue, transition: transition, durationNanoseconds: nanoseconds)
        self.completer.add(
            JobCompletion(
                lease: JobLease(id: job.id, token: job.leaseToken),
                transition: transition,
                durationMicroseconds: nanoseconds / 1000
            )
        )
        return transition
    }

    static func classify(thrown: (any Error)?, stopReason: InFlightJobs.StopReason?) -> AttemptResult {
        guard let thrown else { return .succeeded }
        switch stopReason {
        case .timeout: return .timedOut
        case .cancelRequested: return .cancelled(reason: "cancelled by a client while running")
        case .shutdown, .leaseLost: return .released
        case nil: break
        }
        switch thrown {
        case let control as JobControl:
            switch control {
            case .snooze(let duration): return .snoozed(duration)
            case .cancel(let reason): return .cancelled(reason: ErrorText.sanitized(reason))
            case .discard(let reason): return .discarded(reason: ErrorText.sanitized(reason))
            }
        case let failure as ArgumentDecodingFailure:
            return .malformedArguments(message: ErrorText.sanitized(failure.message))
        case let error as any NonRetryableError:
            return .failedNonRetryable(message: ErrorText.sanitized(String(describing: error)))
        default:
            return .failed(message: ErrorText.sanitized(String(describing: thrown)))
        }
    }

}

/// Decides which failed attempts are logged at `warning`: one per kind per interval, so a storm of failures of one
/// kind logs a line every interval instead of one per attempt.
final class FailureLog: Sendable {
    private let interval: Duration
    private let last = Mutex<[String: (at: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(interval: Duration) {
        self.interval = interval
    }

    /// The number of failures of `kind` not logged since the last logged one, if this one is to be logged.
    func admit(_ kind: String, now: ContinuousClock.Instant) -> Int? {
        self.last.withLock { last in
            if let previous = last[kind], now - previous.at < self.interval {
                last[kind] = (previous.at, previous.suppressed + 1)
                return nil
            }
            let suppressed = last[kind]?.suppressed ?? 0
            last[kind] = (now, 0)
            return suppressed
        }
    }
}
