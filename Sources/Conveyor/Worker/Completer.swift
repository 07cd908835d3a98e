import ConveyorCore
import Logging
import Synchronization

/// Buffers attempt results and writes them in batches.
///
/// Handlers hand their result over and move on; the completer writes everything buffered in one statement per
/// batch, after a short flush interval that lets a burst of results share the round trip. Written leases leave the
/// in-flight set, which ends their heartbeats.
///
/// A failed write is handled by what failed:
/// - transient (the connection was lost, the server is restarting, a deadlock, a call past its bound): the batch
///   goes back to the front of the buffer and is written again after a backoff of 50 ms doubling to 500 ms, so a
///   database restart delays results but loses none;
/// - one row that can never be written (`DATABASE_ERROR`): the batch is split in halves until the row is alone,
///   its neighbours are written, and the row's job is written instead as dead-lettered with `RESULT_REJECTED`
///   and the database's reason in its history; if even that is refused, the result is dropped with an error
///   log, and the lease left to expire;
/// - fatal (`SCHEMA_MISMATCH`): ``run()`` throws, which ends the worker.
///
/// If the process dies first, the leases expire and the reaper retries the jobs. A result that stays unwritten
/// for half the lease no longer has its lease extended (see ``InFlightJobs/leasesToExtend(resultsWaitingSince:)``).
final class Completer: Sendable {
    private struct Buffer {
        var pending: [JobCompletion] = []
        /// When set, ``run()`` writes what is buffered until this instant and then returns.
        var finishBy: ContinuousClock.Instant?
    }

    /// A write that could not finish for a transient reason: what is still unwritten, and why.
    private struct Interrupted: Error {
        var unwritten: [JobCompletion]
        var error: ConveyorError
    }

    private let store: any JobStore
    private let inFlight: InFlightJobs
    private let batchSize: Int
    private let flushInterval: Duration
    private let callTimeout: Duration
    private let stager: Stager
    private let logger: Logger
    private let signal = WakeSignal()
    private let buffer = Mutex(Buffer())

    init(
        store: any JobStore,
        inFlight: InFlightJobs,
        batchSize: Int,
        flushInterval: Duration,
        callTimeout: Duration,
        stager: Stager,
        logger: Logger
    ) {
        self.store = store
        self.inFlight = inFlight
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.callTimeout = callTimeout
        self.stager = stager
        self.logger = logger
    }

    func add(_ completion: JobCompletion) {
        self.buffer.withLock { $0.pending.append(completion) }
        self.signal.wake()
    }

    /// Asks ``run()`` to write what is buffered and return, giving up on what is still unwritten after `bound`
    /// (those leases expire, and their jobs are taken back by another worker's reaper).
    func finish(within bound: Duration) {
        self.buffer.withLock { $0.finishBy = ContinuousClock.now + bound }
        self.signal.wake()
    }

    /// Writes batches until ``finish(within:)`` was called and the buffer is empty or its bound passed, or the task
    /// is cancelled.
    ///
    /// - Throws: `SCHEMA_MISMATCH` (or another fatal ``ConveyorError``) when no result can be written at all.
    func run() async throws {
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        while !Task.isCancelled {
            let (count, finishBy) = self.buffer.withLock { ($0.pending.count, $0.finishBy) }
            if let finishBy, count == 0 || ContinuousClock.now >= finishBy {
                if count > 0 {
                    self.logger.warning(
                        "shutting down with results unwritten; their leases will expire and other workers retry them",
                        metadata: ["unwritten": "\(count)"]
                    )
                }
                return
            }
            if count == 0 {
                guard await self.signal.wait() else { return }
                continue
            }
            if count < self.batchSize, finishBy == nil, self.flushInterval > .zero {
                try? await Task.sleep(for: self.flushInterval)
            }
            let batch = self.buffer.withLock { buffer -> [JobCompletion] in
                let batch = Array(buffer.pending.prefix(self.batchSize))
                buffer.pending.removeFirst(batch.count)
                return batch
            }
            do {
                try await self.write(batch, finishBy: finishBy)
                backoff.reset()
            } catch let interrupted as Interrupted {
                if Task.isCancelled { return }
                self.buffer.withLock { $0.pending.insert(contentsOf: interrupted.unwritten, at: 0) }
                let delay = backoff.next()
                // Logged once per outage, not once per retry.
                if backoff.failures == 1 {
                    self.logger.warning(
                        "writing results failed; retrying until the database is back",
                        metadata: ["error": "\(interrupted.error)", "unwritten": "\(interrupted.unwritten.count)"]
                    )
                }
                let sleep = finishBy.map { min(delay, max(.zero, $0 - ContinuousClock.now)) } ?? delay
                try? await Task.sleep(for: sleep)
            }
        }
    }

    /// Writes `batch`, isolating rows the database refuses.
    ///
    /// - Throws: ``Interrupted`` with the results not yet written after a transient failure; a fatal
    ///   ``ConveyorError`` as it is.
    private func write(_ batch: [JobCompletion], finishBy: ContinuousClock.Instant?) async throws {
        do {
            let written = try await self.complete(batch, finishBy: finishBy)
            if written.count < batch.count {
                self.logger.debug(
                    "results fenced: the lease was taken over",
                    metadata: ["fenced": "\(batch.count - written.count)"]
                )
            }
            self.inFlight.remove(batch.map(\.lease))
            // A retry or snooze is not fetchable until staged: stage it when it is due, not at the next poll tick.
            let now = ContinuousClock.now
            for completion in batch {
                let transition = completion.transition
                guard let runAfter = transition.runAfter,
                    transition.state == .retryable || transition.state == .scheduled
                else { continue }
                self.stager.expect(now + runAfter)
            }
        } catch let error as ConveyorError where error.code == .databaseError {
            guard batch.count > 1 else {
                try await self.writeRejected(batch[0], because: error, finishBy: finishBy)
                return
            }
            let half = batch.count / 2
            let first = Array(batch[..<half])
            let second = Array(batch[half...])
            do {
                try await self.write(first, finishBy: finishBy)
            } catch var interrupted as Interrupted {
                interrupted.unwritten += second
                throw interrupted
            }
            try await self.write(second, finishBy: finishBy)
        }
    }

    /// Writes `completion`'s job as dead-lettered with `RESULT_REJECTED`, since its own result was refused.
    private func writeRejected(
        _ completion: JobCompletion,
        because error: ConveyorError,
        finishBy: ContinuousClock.Instant?
    ) async throws {
        let reason = Self.reason(error)
        self.logger.error(
            "the database refused a job's result; recording it as RESULT_REJECTED",
            metadata: ["job_id": "\(completion.lease.id)", "error": "\(reason)"]
        )
        var rejected = completion
        rejected.transition = .resultRejected(
            reason: "the attempt's result (\(completion.transition.outcome.rawValue)) could not be stored: \(reason)"
        )
        do {
            _ = try await self.complete([rejected], finishBy: finishBy)
        } catch let error as ConveyorError where error.code == .databaseError {
            // Nothing of this job can be written; stop extending its lease, so that it expires.
            self.logger.error(
                "the database refused even the RESULT_REJECTED record; leaving the lease to expire",
                metadata: ["job_id": "\(completion.lease.id)", "error": "\(Self.reason(error))"]
            )
        } catch var interrupted as Interrupted {
            // Write the original again next time: the refusal may have been the outage's.
            interrupted.unwritten = [completion]
            throw interrupted
        }
        self.inFlight.remove([completion.lease])
    }

    /// One `complete` call, bounded; transient failures come out as ``Interrupted``.
    private func complete(_ batch: [JobCompletion], finishBy: ContinuousClock.Instant?) async throws -> [JobID] {
        let timeout = finishBy.map { min(self.callTimeout, max(.milliseconds(1), $0 - ContinuousClock.now)) }
        do {
            return try await BoundedCall.run(timeout: timeout ?? self.callTimeout, "writing \(batch.count) result(s)") {
                [store, logger] in
                try await store.complete(batch, logger: logger)
            }
        } catch let error as ConveyorError where error.isTransient {
            throw Interrupted(unwritten: batch, error: error)
        } catch is CancellationError {
            throw Interrupted(unwritten: batch, error: ConveyorError(.databaseUnavailable, "cancelled"))
        }
    }

    /// The database's reason, as stored: the error's code and message (the SQLSTATE; never row data).
    private static func reason(_ error: ConveyorError) -> String {
        ErrorText.sanitized(error.description, maximumBytes: 512)
    }
}
