import ConveyorCore
import Logging
import Synchronization

/// Fetches and runs the jobs of one queue with a fixed number of execution slots.
///
/// The fetch loop sleeps on a coalescing ``WakeSignal`` and fetches as many jobs as there are free slots when it
/// wakes: on a notification, a poll tick, or a freed slot while the last fetch suggested more work is waiting.
/// On shutdown it stops fetching, waits up to the grace period for running handlers, then cancels the rest; their
/// jobs are released back to `available`.
final class QueueRunner: Sendable {
    struct State {
        var running = 0
        /// The last fetch filled every free slot, or a wake-up said new work arrived.
        var mayHaveMore = true
        var shuttingDown = false
        var graceExpired = false
    }

    let queue: String
    private let slots: Int
    private let worker: WorkerRuntime
    private let signal = WakeSignal()
    private let state = Mutex(State())

    init(queue: String, slots: Int, worker: WorkerRuntime) {
        self.queue = queue
        self.slots = slots
        self.worker = worker
    }

    /// New work may be waiting (a notification or a poll tick).
    func nudge() {
        self.state.withLock { $0.mayHaveMore = true }
        self.signal.wake()
    }

    func beginShutdown() {
        self.state.withLock { $0.shuttingDown = true }
        self.signal.wake()
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            while true {
                let (free, shuttingDown, mayHaveMore) = self.state.withLock {
                    (self.slots - $0.running, $0.shuttingDown, $0.mayHaveMore)
                }
                if shuttingDown || Task.isCancelled { break }
                if free > 0, mayHaveMore {
                    let jobs = await self.fetch(limit: free)
                    self.state.withLock {
                        $0.running += jobs.count
                        $0.mayHaveMore = jobs.count == free && !jobs.isEmpty
                    }
                    for job in jobs {
                        group.addTask {
                            await self.worker.execute(job)
                            let wake = self.state.withLock { state -> Bool in
                                state.running -= 1
                                return state.mayHaveMore || state.shuttingDown
                            }
                            if wake { self.signal.wake() }
                        }
                    }
                }
                guard await self.signal.wait() else { break }
            }
            await self.drain(group: &group)
        }
    }

    private func fetch(limit: Int) async -> [FetchedJob] {
        do {
            return try await self.worker.store.fetch(
                queue: self.queue,
                limit: limit,
                workerID: self.worker.workerID,
                leaseDuration: self.worker.configuration.leaseDuration,
                logger: self.worker.logger
            )
        } catch {
            if !Task.isCancelled {
                self.worker.logger.warning(
                    "fetch failed; waiting for the next poll",
                    metadata: ["queue": "\(self.queue)", "error": "\(String(reflecting: error))"]
                )
            }
            self.state.withLock { $0.mayHaveMore = false }
            return []
        }
    }

    /// Waits for running handlers up to the grace period, then cancels them (they release their jobs).
    private func drain(group: inout DiscardingTaskGroup) async {
        if self.state.withLock({ $0.running }) > 0 {
            let grace = self.worker.configuration.shutdownGracePeriod
            group.addTask {
                try? await Task.sleep(for: grace)
                self.state.withLock { $0.graceExpired = true }
                self.signal.wake()
            }
            var cancelledStragglers = false
            while true {
                let (running, graceExpired) = self.state.withLock { ($0.running, $0.graceExpired) }
                if running == 0 { break }
                if (graceExpired || Task.isCancelled), !cancelledStragglers {
                    cancelledStragglers = true
                    for execution in self.worker.inFlight.running(queue: self.queue) {
                        execution.stop(.shutdown)
                    }
                }
                if !(await self.signal.wait()) {
                    // Cancelled: handlers were asked to stop above or will be by the group's cancellation.
                    if !cancelledStragglers {
                        for execution in self.worker.inFlight.running(queue: self.queue) {
                            execution.stop(.shutdown)
                        }
                    }
                    break
                }
            }
        }
        group.cancelAll()
    }
}
