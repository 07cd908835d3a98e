import Synchronization

/// The jobs a worker process holds leases on, from fetch until their completion is written.
///
/// The heartbeat extends exactly these leases; the supervisor cancels the ones past their deadline or asked to
/// stop. An entry outlives its handler until the completer has written the result, so the lease stays fresh while
/// the result waits in the completion buffer.
final class InFlightJobs: Sendable {
    enum StopReason: UInt8, Sendable {
        case timeout = 1
        case cancelRequested
        case shutdown
        case leaseLost
    }

    final class Execution: Sendable {
        struct State {
            /// The lane task running the handler, while it runs. Only used under the lock, and cleared by
            /// ``markFinished()`` before the lane goes on, so it never outlives the task.
            var task: RunningTask?
            var started = false
            var finished = false
            var deadline: ContinuousClock.Instant?
        }

        let job: FetchedJob
        private let state = Mutex(State())
        /// The first stop reason (0 while none): an atomic, so that a cancellation handler can record one without
        /// taking the lock that ``stop(_:)`` holds while it cancels.
        private let stopReason = Atomic<UInt8>(0)

        init(job: FetchedJob) {
            self.job = job
        }

        var lease: JobLease { JobLease(id: self.job.id, token: self.job.leaseToken) }

        /// Marks the handler started with its deadline, on the task that runs it; cancels that task at once if a
        /// stop was asked for before the handler started.
        func begin(deadline: ContinuousClock.Instant?, task: UnsafeCurrentTask?) {
            self.state.withLock { state in
                state.started = true
                state.deadline = deadline
                state.task = task.map(RunningTask.init)
                if self.stopReason.load(ordering: .acquiring) != 0 { task?.cancel() }
            }
        }

        /// Asks the handler to stop by cancelling its task; the first reason wins. Does nothing once the handler
        /// finished.
        func stop(_ reason: StopReason) {
            self.state.withLock { state in
                guard !state.finished, self.record(reason) else { return }
                state.task?.task.cancel()
            }
        }

        /// Records that the handler's task was cancelled from outside (the worker is shutting down), unless a
        /// reason was recorded already. Takes no lock: it runs inside `Task.cancel()`.
        func cancelledFromOutside() {
            _ = self.record(.shutdown)
        }

        private func record(_ reason: StopReason) -> Bool {
            self.stopReason.compareExchange(
                expected: 0,
                desired: reason.rawValue,
                successOrdering: .acquiringAndReleasing,
                failureOrdering: .acquiring
            ).exchanged
        }

        /// Marks the handler finished; returns the stop reason that applied, if any.
        func markFinished() -> StopReason? {
            self.state.withLock { state in
                state.finished = true
                state.task = nil
            }
            return StopReason(rawValue: self.stopReason.load(ordering: .acquiring))
        }

        /// Started and not finished.
        var isRunning: Bool { self.state.withLock { $0.started && !$0.finished } }

        /// Whether the handler is running past its deadline.
        func isOverdue(now: ContinuousClock.Instant) -> Bool {
            self.state.withLock { state in
                guard state.started, !state.finished, let deadline = state.deadline else { return false }
                return deadline <= now
            }
        }
    }

    /// The task running a handler. `UnsafeCurrentTask` is not `Sendable` because it must not outlive its task;
    /// an ``Execution`` keeps it only while the handler runs and uses it only under its lock, which the task takes
    /// to clear it before the handler's lane goes on.
    struct RunningTask: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    private let executions = Mutex<[JobID: Execution]>([:])

    func insert(_ execution: Execution) {
        self.executions.withLock { $0[execution.job.id] = execution }
    }

    func remove(_ ids: some Sequence<JobID>) {
        self.executions.withLock { executions in
            for id in ids { executions.removeValue(forKey: id) }
        }
    }

    func execution(_ id: JobID) -> Execution? {
        self.executions.withLock { $0[id] }
    }

    var leases: [JobLease] {
        self.executions.withLock { $0.values.map(\.lease) }
    }

    /// Running handlers (started, not yet finished) of `queue`.
    func running(queue: String) -> [Execution] {
        self.executions.withLock { executions in
            executions.values.filter { $0.job.queue == queue && $0.isRunning }
        }
    }

    /// Stops every running handler whose deadline passed.
    func stopOverdue(now: ContinuousClock.Instant) {
        let overdue = self.executions.withLock { executions in
            executions.values.filter { $0.isOverdue(now: now) }
        }
        for execution in overdue {
            execution.stop(.timeout)
        }
    }
}
