import ConveyorCore
import Logging
import Synchronization

/// Writes the durable calls of running workflows in batches: every unit of work buffered while the batches in flight
/// are written goes into the next one, as one transaction (see ``JobStore/commit(_:logger:)``). Two batches are in
/// flight at once (measured on W3: 2 gave a quarter more workflows/s than 1; 4 gave less, each batch carrying fewer
/// steps for the same commit).
///
/// A step waits for its write, so one batch carries the steps of every run that finished one meanwhile: under load a
/// step costs a share of one round trip, and an idle worker writes a step as soon as it ends. The units of one
/// execution are written in the order they were submitted, so a run's steps are always stored before its
/// suspension or its end.
///
/// Failures are handled as the ``Completer`` handles them: transient ones are retried with backoff (50 ms doubling
/// to 500 ms) until the database is back; a batch refused with `DATABASE_ERROR` is split until the unit that is
/// refused is alone, and only that unit fails; a fatal error ends ``run()``.
final class WorkflowWriter: Sendable {
    private struct Entry: Sendable {
        var unit: WorkflowUnitOfWork
        var leases: Set<JobLease>
        var done: @Sendable (Result<WorkflowCommitResult, any Error>) -> Void
    }

    private struct Buffer {
        var pending: [Entry] = []
        var finishBy: ContinuousClock.Instant?
        var stopped = false
        /// Batches in flight, and the leases they present.
        var inFlight = 0
        var busy: Set<JobLease> = []
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))

        /// Takes, in order, up to `limit` units whose leases no batch in flight presents and no unit left behind
        /// before them presents either.
        mutating func takeBatch(limit: Int) -> [Entry] {
            var batch: [Entry] = []
            var kept: [Entry] = []
            var blocked = self.busy
            for entry in self.pending {
                if batch.count < limit, entry.leases.isDisjoint(with: blocked) {
                    batch.append(entry)
                    self.busy.formUnion(entry.leases)
                } else {
                    blocked.formUnion(entry.leases)
                    kept.append(entry)
                }
            }
            self.pending = kept
            return batch
        }
    }

    private struct Interrupted: Error {
        var unwritten: [Entry]
        var error: ConveyorError
    }

    let store: any JobStore
    private let batchSize: Int
    /// Batches in flight at once.
    let concurrency: Int
    private let callTimeout: Duration
    private let logger: Logger
    private let signal = WakeSignal()
    private let buffer = Mutex(Buffer())

    init(store: any JobStore, batchSize: Int, concurrency: Int = 2, callTimeout: Duration, logger: Logger) {
        self.store = store
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.callTimeout = callTimeout
        self.logger = logger
    }

    /// Writes `unit` and returns once it is committed.
    ///
    /// - Throws: ``WorkflowLeaseLost`` when a lease the unit presents is no longer held (nothing of it was
    ///   written); the database's ``ConveyorError`` when the unit was refused; `CancellationError` when the worker
    ///   stopped before it could be written.
    func write(_ unit: WorkflowUnitOfWork) async throws -> WorkflowCommitResult {
        try await withCheckedThrowingContinuation { continuation in
            self.submit(unit) { continuation.resume(with: $0) }
        }
    }

    /// Queues `unit`; `done` is called once it is written or has failed.
    func submit(_ unit: WorkflowUnitOfWork, done: @escaping @Sendable (Result<WorkflowCommitResult, any Error>) -> Void)
    {
        let accepted = self.buffer.withLock { buffer -> Bool in
            guard !buffer.stopped else { return false }
            // A split batch can end with a fatal error after one half was written: `done` runs once, whatever
            // the paths that reach it.
            let once = OnceFlag()
            buffer.pending.append(
                Entry(unit: unit, leases: unit.leases, done: { result in if once.claim() { done(result) } })
            )
            return true
        }
        guard accepted else {
            done(.failure(CancellationError()))
            return
        }
        self.signal.wake()
    }

    /// Asks ``run()`` to write what is buffered and return, giving up after `bound`.
    func finish(within bound: Duration) {
        self.buffer.withLock { $0.finishBy = ContinuousClock.now + bound }
        self.signal.wake()
    }

    /// Writes batches until ``finish(within:)`` was called and the buffer is empty or its bound passed, or the task
    /// is cancelled. Units still buffered then fail with `CancellationError` (their leases expire).
    ///
    /// Up to ``concurrency`` batches are in flight at once, on connections of their own, so a step need not wait
    /// for the batch before it to commit. A unit is never written beside an earlier unit of the same lease that
    /// is in flight or still waiting: the units of one execution commit in the order they were submitted.
    func run() async throws {
        defer { self.stop() }
        enum Next {
            case write([Entry], finishBy: ContinuousClock.Instant?)
            case wait
            case done
        }
        try await withThrowingDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let next = self.buffer.withLock { buffer -> Next in
                    if let finishBy = buffer.finishBy,
                        (buffer.pending.isEmpty && buffer.inFlight == 0) || ContinuousClock.now >= finishBy
                    {
                        return .done
                    }
                    guard buffer.inFlight < self.concurrency else { return .wait }
                    let batch = buffer.takeBatch(limit: self.batchSize)
                    guard !batch.isEmpty else { return .wait }
                    buffer.inFlight += 1
                    return .write(batch, finishBy: buffer.finishBy)
                }
                switch next {
                case .done:
                    return
                case .wait:
                    guard await self.signal.wait() else { return }
                case .write(let batch, let finishBy):
                    group.addTask { try await self.writeBatch(batch, finishBy: finishBy) }
                }
            }
        }
    }

    /// Writes one batch and gives its leases back; after a transient failure, backs off and puts the batch back in
    /// front of the buffer.
    private func writeBatch(_ batch: [Entry], finishBy: ContinuousClock.Instant?) async throws {
        do {
            try await self.write(batch, finishBy: finishBy)
            self.finished(batch, putBack: [], succeeded: true)
        } catch let interrupted as Interrupted {
            if Task.isCancelled {
                for entry in interrupted.unwritten { entry.done(.failure(CancellationError())) }
                self.finished(batch, putBack: [], succeeded: false)
                return
            }
            let (delay, first) = self.buffer.withLock { buffer in
                (buffer.backoff.next(), buffer.backoff.failures == 1)
            }
            if first {
                self.logger.warning(
                    "writing workflow steps failed; retrying until the database is back",
                    metadata: ["error": "\(interrupted.error)", "unwritten": "\(interrupted.unwritten.count)"]
                )
            }
            let sleep = finishBy.map { min(delay, max(.zero, $0 - ContinuousClock.now)) } ?? delay
            try? await Task.sleep(for: sleep)
            self.finished(batch, putBack: interrupted.unwritten, succeeded: false)
        } catch {
            for entry in batch { entry.done(.failure(error)) }
            self.finished(batch, putBack: [], succeeded: false)
            throw error
        }
    }

    /// A batch is no longer in flight: its leases may be written again, and `putBack` goes to the front of the
    /// buffer, ahead of later units of the same leases.
    private func finished(_ batch: [Entry], putBack: [Entry], succeeded: Bool) {
        self.buffer.withLock { buffer in
            buffer.inFlight -= 1
            for entry in batch { buffer.busy.subtract(entry.leases) }
            buffer.pending.insert(contentsOf: putBack, at: 0)
            if succeeded { buffer.backoff.reset() }
        }
        self.signal.wake()
    }

    /// Fails what is still buffered, and every later submission.
    private func stop() {
        let left = self.buffer.withLock { buffer -> [Entry] in
            buffer.stopped = true
            defer { buffer.pending = [] }
            return buffer.pending
        }
        if !left.isEmpty {
            self.logger.warning(
                "stopping with workflow writes unwritten; their runs resume from their last stored step",
                metadata: ["unwritten": "\(left.count)"]
            )
        }
        for entry in left { entry.done(.failure(CancellationError())) }
    }

    private func write(_ batch: [Entry], finishBy: ContinuousClock.Instant?) async throws {
        var unit = WorkflowUnitOfWork()
        for entry in batch { unit.append(entry.unit) }
        let timeout = finishBy.map { min(self.callTimeout, max(.milliseconds(1), $0 - ContinuousClock.now)) }
        let result: WorkflowCommitResult
        do {
            result = try await BoundedCall.run(timeout: timeout ?? self.callTimeout, "writing workflow steps") {
                [store, logger, unit] in
                try await store.commit(unit, logger: logger)
            }
        } catch let error as ConveyorError where error.isTransient {
            throw Interrupted(unwritten: batch, error: error)
        } catch is CancellationError {
            throw Interrupted(unwritten: batch, error: ConveyorError(.databaseUnavailable, "cancelled"))
        } catch let error as ConveyorError where error.code == .databaseError || error.code == .duplicateJob {
            guard batch.count > 1 else {
                self.logger.error(
                    "the database refused a workflow write",
                    metadata: ["workflow_run_id": "\(batch[0].unit.runIDs)", "error": "\(error)"]
                )
                batch[0].done(.failure(error))
                return
            }
            let half = batch.count / 2
            do {
                try await self.write(Array(batch[..<half]), finishBy: finishBy)
            } catch var interrupted as Interrupted {
                interrupted.unwritten += batch[half...]
                throw interrupted
            }
            try await self.write(Array(batch[half...]), finishBy: finishBy)
            return
        }
        for entry in batch {
            if entry.unit.leases.isDisjoint(with: result.fenced) {
                entry.done(.success(result))
            } else {
                entry.done(.failure(WorkflowLeaseLost()))
            }
        }
    }
}

extension WorkflowUnitOfWork {
    /// The runs the writes concern, for logs.
    var runIDs: String {
        Set(self.steps.map(\.runID) + self.suspensions.map(\.runID) + self.endings.map(\.runID))
            .map(\.rawValue).sorted().joined(separator: ",")
    }
}

/// A flag that is claimed once.
final class OnceFlag: Sendable {
    private let claimed = Mutex(false)

    /// `true` the first time only.
    func claim() -> Bool {
        self.claimed.withLock { claimed in
            defer { claimed = true }
            return !claimed
        }
    }
}
