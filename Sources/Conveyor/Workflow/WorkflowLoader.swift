import Logging
import Synchronization

/// Loads the runs that executions start, in batches: every load asked for while the previous batch was in flight
/// goes into the next one, one round trip for all of them (see ``JobStore/workflowExecutionStates(_:logger:)``).
final class WorkflowLoader: Sendable {
    private struct Request: Sendable {
        var id: WorkflowRunID
        var done: @Sendable (Result<WorkflowExecutionState?, any Error>) -> Void
    }

    private struct Buffer {
        var pending: [Request] = []
        var stopped = false
    }

    private let store: any JobStore
    private let batchSize: Int
    private let callTimeout: Duration
    private let logger: Logger
    private let signal = WakeSignal()
    private let buffer = Mutex(Buffer())

    init(store: any JobStore, batchSize: Int, callTimeout: Duration, logger: Logger) {
        self.store = store
        self.batchSize = max(1, batchSize)
        self.callTimeout = callTimeout
        self.logger = logger
    }

    /// Loads run `id`; `nil` when it does not exist.
    ///
    /// - Throws: What the load threw (the caller releases the run's job); `CancellationError` once the worker
    ///   stopped.
    func load(_ id: WorkflowRunID) async throws -> WorkflowExecutionState? {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = self.buffer.withLock { buffer -> Bool in
                guard !buffer.stopped else { return false }
                buffer.pending.append(Request(id: id, done: { continuation.resume(with: $0) }))
                return true
            }
            if accepted {
                self.signal.wake()
            } else {
                continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Loads batches until the task is cancelled; loads still asked for then fail with `CancellationError`.
    func run() async {
        defer {
            let left = self.buffer.withLock { buffer -> [Request] in
                buffer.stopped = true
                defer { buffer.pending = [] }
                return buffer.pending
            }
            for request in left { request.done(.failure(CancellationError())) }
        }
        while !Task.isCancelled {
            let batch = self.buffer.withLock { buffer -> [Request] in
                let batch = Array(buffer.pending.prefix(self.batchSize))
                buffer.pending.removeFirst(batch.count)
                return batch
            }
            if batch.isEmpty {
                guard await self.signal.wait() else { return }
                continue
            }
            let ids = Array(Set(batch.map(\.id)))
            do {
                let states = try await BoundedCall.run(timeout: self.callTimeout, "loading \(ids.count) run(s)") {
                    [store, logger] in try await store.workflowExecutionStates(ids, logger: logger)
                }
                for request in batch { request.done(.success(states[request.id])) }
            } catch {
                for request in batch { request.done(.failure(error)) }
            }
        }
    }
}
