import ConveyorCore
import Logging
import Synchronization

/// Makes due scheduled and retryable jobs available, so that a fetch never reads a job that is not due.
///
/// It stages on every poll tick, when the database said the next job is due, and when this worker's own results
/// scheduled a job to run sooner (a retry, a snooze) than either. Each run stages what is due in batches of 1,000,
/// and its NOTIFY wakes the workers of those queues in every process; this process's queue runners are nudged
/// directly too (for `.pollOnly`). Any number of workers stage at once without waiting on each other.
final class Stager: Sendable {
    static let batchSize = 1000

    private let store: any JobStore
    private let pollInterval: Duration
    private let callTimeout: Duration
    private let logger: Logger
    private let signal = WakeSignal()
    /// The earliest time a job this worker scheduled may be due, if before the next planned run.
    private let expected = Mutex<ContinuousClock.Instant?>(nil)

    init(store: any JobStore, pollInterval: Duration, callTimeout: Duration, logger: Logger) {
        self.store = store
        self.pollInterval = pollInterval
        self.callTimeout = callTimeout
        self.logger = logger
    }

    /// A job becomes due at `instant`: stage then, if that is sooner than planned.
    func expect(_ instant: ContinuousClock.Instant) {
        let sooner = self.expected.withLock { expected in
            guard expected.map({ instant < $0 }) ?? true else { return false }
            expected = instant
            return true
        }
        if sooner { self.signal.wake() }
    }

    /// Stages until cancelled, calling `staged` after every run that made jobs available.
    ///
    /// - Throws: A fatal ``ConveyorError`` (such as `SCHEMA_MISMATCH`); transient failures are retried at the next
    ///   poll tick.
    func run(staged: @escaping @Sendable () -> Void) async throws {
        let clock = ContinuousClock()
        var planned = clock.now
        var failures = 0
        while !Task.isCancelled {
            let target = self.expected.withLock { expected in min(planned, expected ?? planned) }
            if clock.now < target {
                await self.sleep(until: target)
                if Task.isCancelled { return }
                let expected = self.expected.withLock { $0 }
                if clock.now < min(planned, expected ?? planned) { continue }
            }
            self.expected.withLock { $0 = nil }
            var nextDue: Duration?
            do {
                var result: StagedJobs
                repeat {
                    result = try await BoundedCall.run(timeout: self.callTimeout, "staging due jobs") {
                        [store, logger] in
                        try await store.stageDueJobs(limit: Self.batchSize, logger: logger)
                    }
                    if result.staged > 0 { staged() }
                } while result.staged == Self.batchSize && !Task.isCancelled
                nextDue = result.nextDue
                failures = 0
            } catch let error as ConveyorError where error.isFatal {
                throw error
            } catch {
                if Task.isCancelled { return }
                failures += 1
                if failures == 1 {
                    self.logger.warning("staging due jobs failed; retrying", metadata: ["error": "\(error)"])
                }
            }
            // At least 10 ms apart, so a burst of retries scheduled a moment apart shares a run.
            let next = max(.milliseconds(10), min(self.pollInterval, nextDue ?? self.pollInterval))
            planned = clock.now + next
        }
    }

    /// Sleeps until `deadline`, or until ``expect(_:)`` asks for an earlier run.
    ///
    /// The deadline wakes the signal rather than racing a task that waits on it: cancelling a task that waits on
    /// an `AsyncStream` ends the stream for good, and every later wait would return at once.
    private func sleep(until deadline: ContinuousClock.Instant) async {
        let timer = Task { [signal] in
            do {
                try await Task.sleep(until: deadline, clock: .continuous)
            } catch {
                return
            }
            signal.wake()
        }
        _ = await self.signal.wait()
        timer.cancel()
    }
}
