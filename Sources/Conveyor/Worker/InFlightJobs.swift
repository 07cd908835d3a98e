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
            /// When the handler finished (or the job was released unstarted): since then its result waits for the
            /// completer.
            var finishedAt: ContinuousClock.Instant?
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
                state.finishedAt = ContinuousClock.now
                state.task = nil
            }
            return StopReason(rawValue: self.stopReason.load(ordering: .acquiring))
        }

        /// Started and not finished.
        var isRunning: Bool { self.state.withLock { $0.started && !$0.finished } }

        /// When the handler finished, while its result waits to be written; `nil` while it has not finished.
        var finishedAt: ContinuousClock.Instant? { self.state.withLock { $0.finishedAt } }

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

    private struct Held {
        var byID: [JobID: Execution] = [:]
        /// Entries of `byID` per queue.
        var perQueue: [String: Int] = [:]
    }

    private let held = Mutex(Held())
    /// Called with no lock held after jobs of a queue were removed (their results written).
    private let removalHandlers = Mutex<[String: @Sendable () -> Void]>([:])

    func insert(_ executions: [Execution]) {
        self.held.withLock { held in
            for execution in executions {
                // A job fetched again before the result of its previous attempt left the set replaces that entry.
                if let replaced = held.byID.updateValue(execution, forKey: execution.job.id) {
                    held.perQueue[replaced.job.queue, default: 0] -= 1
                }
                held.perQueue[execution.job.queue, default: 0] += 1
            }
        }
    }

    /// Removes the executions that still hold `leases`. An entry that a newer attempt of the same job replaced stays:
    /// the result written for the old attempt says nothing about the new one.
    func remove(_ leases: some Sequence<JobLease>) {
        let queues = self.held.withLock { held in
            var queues: Set<String> = []
            for lease in leases {
                guard let execution = held.byID[lease.id], execution.job.leaseToken == lease.token else { continue }
                held.byID[lease.id] = nil
                held.perQueue[execution.job.queue, default: 0] -= 1
                queues.insert(execution.job.queue)
            }
            return queues
        }
        let handlers = self.removalHandlers.withLock { handlers in queues.compactMap { handlers[$0] } }
        for handler in handlers { handler() }
    }

    /// Calls `handler` whenever jobs of `queue` leave the set (replacing an earlier handler for the queue).
    func onRemoval(queue: String, _ handler: @escaping @Sendable () -> Void) {
        self.removalHandlers.withLock { $0[queue] = handler }
    }

    /// The jobs of `queue` fetched and not yet written back: buffered, running, or waiting for the completer.
    func held(queue: String) -> Int {
        self.held.withLock { $0.perQueue[queue] ?? 0 }
    }

    /// The execution that holds `lease`: the same job under the same token. A newer attempt of the job (fetched
    /// again after this lease was lost) is not it.
    func execution(holding lease: JobLease) -> Execution? {
        self.held.withLock { held in
            guard let execution = held.byID[lease.id], execution.job.leaseToken == lease.token else { return nil }
            return execution
        }
    }

    var leases: [JobLease] {
        self.held.withLock { $0.byID.values.map(\.lease) }
    }

    /// The leases a heartbeat should extend: every held one but those whose result has waited for the completer
    /// since before `writtenSince`. A result that could not be written for that long (the database is down, or
    /// refuses it) no longer keeps its lease: the lease expires, and another worker takes the job back.
    func leasesToExtend(
        resultsWaitingSince writtenSince: ContinuousClock.Instant
    ) -> (
        extend: [JobLease], abandoned: Int
    ) {
        self.held.withLock { held in
            var extend: [JobLease] = []
            extend.reserveCapacity(held.byID.count)
            var abandoned = 0
            for execution in held.byID.values {
                if let finishedAt = execution.finishedAt, finishedAt < writtenSince {
                    abandoned += 1
                } else {
                    extend.append(execution.lease)
                }
            }
            return (extend, abandoned)
        }
    }

    /// Running handlers (started, not yet finished) of `queue`.
    func running(queue: String) -> [Execution] {
        self.held.withLock { held in
            held.byID.values.filter { $0.job.queue == queue && $0.isRunning }
        }
    }

    /// Stops every running handler whose deadline passed.
    func stopOverdue(now: ContinuousClock.Instant) {
        let overdue = self.held.withLock { held in
            held.byID.values.filter { $0.isOverdue(now: now) }
        }
        for execution in overdue {
            execution.stop(.timeout)
        }
    }
}
