import ConveyorCore
import Logging
import Synchronization

/// Fetches and runs the jobs of one queue: `slots` handlers at once, fed from a small local buffer.
///
/// The fetch loop sleeps on a coalescing ``WakeSignal`` and, when it wakes, leases as many jobs as fit in the free
/// capacity (`slots` plus a prefetch allowance, minus the jobs running or buffered) in one statement. The
/// allowance adapts: it is about twice what the slots finish during one fetch round trip, so short jobs are
/// fetched in large batches while long jobs are not hoarded away from other workers; it never exceeds the
/// configured maximum. It fetches at once when a slot would otherwise idle, and otherwise waits until at least half
/// the capacity is free, so that the fetch round trip overlaps the work and each fetch carries a batch. Buffered jobs are leased (and heartbeated) but not
/// started; lanes, one per busy slot, take them one after another without further round trips, and run each handler
/// on their own task (no task per job). Stopping a handler cancels its lane, which then ends; the fetch loop starts
/// a new lane for the jobs still buffered.
///
/// On shutdown it stops fetching, releases buffered jobs that never started, waits up to the grace period for
/// running handlers, then cancels the rest; their jobs are released back to `available` as well.
final class QueueRunner: Sendable {
    struct State {
        var buffer = FetchedBuffer<InFlightJobs.Execution>()
        var executing = 0
        var lanes = 0
        /// The last fetch filled the free capacity, or a wake-up said new work arrived.
        var mayHaveMore = true
        /// Counts nudges, so that a fetch that started before one does not clear what it announced.
        var nudges = 0
        var shuttingDown = false
        var graceExpired = false
        /// Moving averages, in nanoseconds, of one fetch round trip and one handler run.
        var fetchNanoseconds: Double = 0
        var jobNanoseconds: Double = 0
    }

    let queue: String
    private let slots: Int
    private let maximumPrefetch: Int
    private let worker: WorkerRuntime
    private let signal = WakeSignal()
    private let state = Mutex(State())
    /// Results that may wait for the completer before they hold back fetching (see ``fetchLimit(_:)``).
    private let completionAllowance: Int

    init(queue: String, slots: Int, prefetch: Int, worker: WorkerRuntime) {
        self.queue = queue
        self.slots = slots
        self.maximumPrefetch = prefetch
        self.worker = worker
        self.completionAllowance = 2 * worker.configuration.completionBatchSize
        worker.inFlight.onRemoval(queue: queue) { [weak self] in self?.resultsWritten() }
    }

    /// The completer wrote results of this queue: a fetch held back by unwritten results may go ahead.
    private func resultsWritten() {
        let limited = self.worker.limitedQueues.withLock { $0.contains(self.queue) }
        let wake = self.state.withLock { state in
            // A written result of a limited queue may have freed a slot that a fetch cut short was waiting for.
            if limited { state.mayHaveMore = true }
            return state.mayHaveMore && self.fetchLimit(state) > 0
        }
        if wake { self.signal.wake() }
    }

    /// Jobs whose handlers run now.
    var running: Int { self.state.withLock { $0.executing } }

    /// New work may be waiting (a notification or a poll tick).
    func nudge() {
        self.state.withLock { state in
            state.mayHaveMore = true
            state.nudges += 1
        }
        self.signal.wake()
    }

    func beginShutdown() {
        self.state.withLock { $0.shuttingDown = true }
        self.signal.wake()
    }

    /// Fetches and runs until shutdown.
    ///
    /// - Throws: A fatal ``ConveyorError`` from a fetch (such as `SCHEMA_MISMATCH`), after draining. Transient
    ///   failures are retried with backoff (50 ms doubling to 1 s) for as long as they last.
    func run() async throws {
        var fatal: (any Error)?
        var backoff = Backoff(initial: .milliseconds(50), maximum: .seconds(1))
        await withDiscardingTaskGroup { group in
            while true {
                let (limit, shuttingDown) = self.state.withLock { state -> (Int, Bool) in
                    (self.fetchLimit(state), state.shuttingDown)
                }
                if shuttingDown || Task.isCancelled { break }
                if limit > 0 {
                    let nudgesBefore = self.state.withLock { $0.nudges }
                    let fetchStart = ContinuousClock.now
                    let jobs: [FetchedJob]
                    do {
                        jobs = try await self.fetch(limit: limit)
                        backoff.reset()
                    } catch let error as ConveyorError where !error.isFatal {
                        if Task.isCancelled { break }
                        let delay = backoff.next()
                        if backoff.failures == 1 {
                            self.worker.logger.warning(
                                "fetch failed; retrying until the database is back",
                                metadata: ["queue": "\(self.queue)", "error": "\(error)"]
                            )
                        }
                        try? await Task.sleep(for: delay)
                        continue
                    } catch is CancellationError {
                        break
                    } catch {
                        fatal = error
                        break
                    }
                    let fetchTime = Double((ContinuousClock.now - fetchStart).wholeNanoseconds)
                    let executions = jobs.map { InFlightJobs.Execution(job: $0) }
                    self.worker.inFlight.insert(executions)
                    self.state.withLock { state in
                        state.fetchNanoseconds = Self.average(state.fetchNanoseconds, fetchTime)
                        state.buffer.append(contentsOf: executions)
                        // Jobs still arriving are fetched by the next round trip; a fetch that finds nothing ends the
                        // run until a notification or poll tick.
                        // A nudge during the fetch may announce jobs committed after its snapshot: fetch again.
                        state.mayHaveMore = !jobs.isEmpty || state.nudges != nudgesBefore
                    }
                }
                // A lane per busy slot; also replaces lanes that ended because their handler was stopped.
                let newLanes = self.state.withLock { state -> Int in
                    let lanes = min(self.slots - state.lanes, state.buffer.count)
                    state.lanes += lanes
                    return lanes
                }
                for _ in 0..<newLanes {
                    group.addTask { await self.lane() }
                }
                guard await self.signal.wait() else { break }
            }
            await self.drain(group: &group)
        }
        if let fatal { throw fatal }
    }

    /// How many jobs to fetch now: 0 unless more work may wait and either a slot would idle or at least half the
    /// capacity is free.
    ///
    /// Finished jobs whose results the completer has not written yet still hold leases. Beyond an allowance of two
    /// completion batches they take capacity too, so a worker whose handlers finish faster than results can be
    /// written fetches only as fast as they are written, instead of holding ever more jobs (and memory).
    private func fetchLimit(_ state: State) -> Int {
        guard state.mayHaveMore, !state.shuttingDown, !self.worker.poolPaused.load(ordering: .relaxed) else {
            return 0
        }
        let capacity = self.slots + self.prefetch(state)
        let held = state.executing + state.buffer.count
        let unwritten = self.worker.inFlight.held(queue: self.queue) - held
        let free = capacity - held - max(0, unwritten - self.completionAllowance)
        guard free > 0 else { return 0 }
        if held < self.slots || free * 2 >= capacity { return free }
        return 0
    }

    /// The prefetch allowance: twice the jobs the slots finish during one fetch, within `0...maximumPrefetch`.
    /// Before anything was measured it is one job per slot.
    private func prefetch(_ state: State) -> Int {
        guard state.fetchNanoseconds > 0, state.jobNanoseconds > 0 else {
            return min(self.slots, self.maximumPrefetch)
        }
        let perFetch = 2 * Double(self.slots) * state.fetchNanoseconds / max(state.jobNanoseconds, 1000)
        return min(self.maximumPrefetch, Int(perFetch.rounded(.up)))
    }

    static func average(_ current: Double, _ sample: Double) -> Double {
        current == 0 ? sample : current * 0.9 + sample * 0.1
    }

    /// Runs buffered jobs one after another until the buffer is empty or shutdown began.
    private func lane() async {
        while true {
            let next = self.state.withLock { state -> InFlightJobs.Execution? in
                guard !state.shuttingDown, let next = state.buffer.takeFirst() else {
                    state.lanes -= 1
                    return nil
                }
                state.executing += 1
                return next
            }
            guard let execution = next else {
                self.signal.wake()
                return
            }
            let start = ContinuousClock.now
            await self.worker.execute(execution)
            let runTime = Double((ContinuousClock.now - start).wholeNanoseconds)
            // A stopped handler cancelled this lane's task, for good: the lane ends, and the fetch loop starts a
            // new one if jobs are waiting.
            let cancelled = Task.isCancelled
            let wake = self.state.withLock { state -> Bool in
                state.executing -= 1
                state.jobNanoseconds = Self.average(state.jobNanoseconds, runTime)
                if cancelled { state.lanes -= 1 }
                return cancelled || (state.mayHaveMore && self.fetchLimit(state) > 0) || state.shuttingDown
            }
            if wake { self.signal.wake() }
            if cancelled { return }
        }
    }

    private func fetch(limit: Int) async throws -> [FetchedJob] {
        let worker = self.worker
        let queue = self.queue
        return try await BoundedCall.run(
            timeout: worker.configuration.databaseTimeout,
            "fetching jobs of queue \(queue)",
            // A fetch that committed after this stopped waiting leased jobs nobody runs: give them back at once
            // rather than let their leases expire and count an attempt.
            onLateResult: { jobs in jobs.forEach(worker.release) }
        ) {
            try await worker.store.fetch(
                queue: queue,
                limit: limit,
                workerID: worker.workerID,
                leaseDuration: worker.configuration.leaseDuration,
                synchronousCommit: worker.configuration.synchronousLeases,
                logger: worker.logger
            )
        }
    }

    /// Releases buffered jobs, waits for running handlers up to the grace period, then cancels them (they release
    /// their jobs too).
    private func drain(group: inout DiscardingTaskGroup) async {
        let unstarted = self.state.withLock { state -> [InFlightJobs.Execution] in
            state.shuttingDown = true
            var unstarted: [InFlightJobs.Execution] = []
            while let execution = state.buffer.takeFirst() { unstarted.append(execution) }
            return unstarted
        }
        for execution in unstarted {
            _ = execution.markFinished()
            self.worker.release(execution.job)
        }
        if self.state.withLock({ $0.lanes }) > 0 {
            let grace = self.worker.configuration.shutdownGracePeriod
            group.addTask {
                try? await Task.sleep(for: grace)
                self.state.withLock { $0.graceExpired = true }
                self.signal.wake()
            }
            var cancelledStragglers = false
            while self.state.withLock({ $0.lanes }) > 0 {
                let graceExpired = self.state.withLock { $0.graceExpired }
                if graceExpired || Task.isCancelled, !cancelledStragglers {
                    cancelledStragglers = true
                    self.stopRunning()
                }
                if !(await self.signal.wait()) {
                    // Cancelled: ask the handlers to stop; the group's cancellation reaches them too.
                    if !cancelledStragglers { self.stopRunning() }
                    break
                }
            }
        }
        group.cancelAll()
    }

    private func stopRunning() {
        for execution in self.worker.inFlight.running(queue: self.queue) {
            execution.stop(.shutdown)
        }
    }
}
