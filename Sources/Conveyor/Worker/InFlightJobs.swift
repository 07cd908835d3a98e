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
        let job: FetchedJob
        let deadline: ContinuousClock.Instant?
        private let state = Mutex<(task: Task<Void, any Error>?, stopReason: StopReason?, finished: Bool)>(
            (nil, nil, false)
        )

        init(job: FetchedJob, deadline: ContinuousClock.Instant?) {
            self.job = job
            self.deadline = deadline
        }

        var lease: JobLease { JobLease(id: self.job.id, token: self.job.leaseToken) }

        var stopReason: StopReason? { self.state.withLock { $0.stopReason } }

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

        var isFinished: Bool { self.state.withLock { $0.finished } }
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

    var isEmpty: Bool { self.executions.withLock { $0.isEmpty } }

    /// Running handlers (not yet finished) of `queue`, or of every queue.
    func running(queue: String? = nil) -> [Execution] {
        self.executions.withLock { executions in
            executions.values.filter { !$0.isFinished && (queue == nil || $0.job.queue == queue) }
        }
    }

    /// Stops every running handler whose deadline passed.
    func stopOverdue(now: ContinuousClock.Instant) {
        for execution in self.running() {
            if let deadline = execution.deadline, deadline <= now {
                execution.stop(.timeout)
            }
        }
    }
}
