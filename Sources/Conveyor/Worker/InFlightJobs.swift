import Synchronization

/// The jobs a worker process holds leases on, from fetch until their completion is written.
///
/// The heartbeat extends exactly these leases; the supervisor cancels the ones past their deadline or asked to
/// stop. An entry outlives its handler until the completer has written the result, so the lease stays fresh while
/// the result waits in the completion buffer.
final class InFlightJobs: Sendable {
    enum StopReason: Sendable {
        case timeout
        case cancelRequested
        case shutdown
        case leaseLost
    }

    final class Execution: Sendable {
        struct State {
            var task: Task<Void, any Error>?
            var stopReason: StopReason?
            var started = false
            var finished = false
            var deadline: ContinuousClock.Instant?
        }

        let job: FetchedJob
        private let state = Mutex(State())

        init(job: FetchedJob) {
            self.job = job
        }

        var lease: JobLease { JobLease(id: self.job.id, token: self.job.leaseToken) }

        /// Marks the handler started with its deadline.
        func begin(deadline: ContinuousClock.Instant?) {
            self.state.withLock {
                $0.started = true
                $0.deadline = deadline
            }
        }

        /// Attaches the handler's task; cancels it at once if a stop was asked for before it started.
        func attach(_ task: Task<Void, any Error>) {
            let cancelNow = self.state.withLock { state -> Bool in
                state.task = task
                return state.stopReason != nil
            }
            if cancelNow { task.cancel() }
        }

        /// Asks the handler to stop; the first reason wins. Does nothing once the handler finished.
        func stop(_ reason: StopReason) {
            let task = self.state.withLock { state -> Task<Void, any Error>? in
                guard !state.finished, state.stopReason == nil else { return nil }
                state.stopReason = reason
                return state.task
            }
            task?.cancel()
        }

        /// Marks the handler finished; returns the stop reason that applied, if any.
        func markFinished() -> StopReason? {
            self.state.withLock { state in
                state.finished = true
                state.task = nil
                return state.stopReason
            }
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
