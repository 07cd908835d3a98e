import Logging
import Synchronization

/// Buffers attempt results and writes them in batches.
///
/// Handlers hand their result over and move on; the completer writes everything buffered in one statement per
/// batch, after a short flush interval that lets a burst of results share the round trip. A failed write is retried
/// with backoff, so a database restart delays completions but loses none (and if the process dies first, the leases
/// expire and the reaper retries the jobs). Written leases leave the in-flight set, which ends their heartbeats.
final class Completer: Sendable {
    private let store: any JobStore
    private let inFlight: InFlightJobs
    private let batchSize: Int
    private let flushInterval: Duration
    private let logger: Logger
    private let signal = WakeSignal()
    private let buffer = Mutex<(pending: [JobCompletion], finishing: Bool)>(([], false))

    init(store: any JobStore, inFlight: InFlightJobs, batchSize: Int, flushInterval: Duration, logger: Logger) {
        self.store = store
        self.inFlight = inFlight
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.logger = logger
    }

    func add(_ completion: JobCompletion) {
        self.buffer.withLock { $0.pending.append(completion) }
        self.signal.wake()
    }

    /// Asks ``run()`` to write what is buffered and return.
    func finish() {
        self.buffer.withLock { $0.finishing = true }
        self.signal.wake()
    }

    /// Writes batches until ``finish()`` was called and the buffer is empty, or the task is cancelled.
    func run() async {
        var failures = 0
        while true {
            let (count, finishing) = self.buffer.withLock { ($0.pending.count, $0.finishing) }
            if count == 0 {
                if finishing { return }
                guard await self.signal.wait() else { return }
                continue
            }
            if count < self.batchSize, !finishing, self.flushInterval > .zero {
                try? await Task.sleep(for: self.flushInterval)
            }
            let batch = self.buffer.withLock { buffer -> [JobCompletion] in
                let batch = Array(buffer.pending.prefix(self.batchSize))
                buffer.pending.removeFirst(batch.count)
                return batch
            }
            do {
                let written = try await self.store.complete(batch, logger: self.logger)
                failures = 0
                if written.count < batch.count {
                    self.logger.debug(
                        "completions fenced: the lease was taken over",
                        metadata: ["fenced": "\(batch.count - written.count)"]
                    )
                }
                self.inFlight.remove(batch.map(\.lease))
            } catch {
                if Task.isCancelled { return }
                failures += 1
                self.logger.warning(
                    "writing completions failed; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "batch": "\(batch.count)"]
                )
                self.buffer.withLock { $0.pending.insert(contentsOf: batch, at: 0) }
                let backoff = Duration.milliseconds(min(5_000, 50 << min(failures, 7)))
                try? await Task.sleep(for: backoff)
                if Task.isCancelled { return }
            }
        }
    }
}
