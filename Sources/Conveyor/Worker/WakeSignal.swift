/// A coalescing wake-up: any number of `wake()` calls before the waiter runs count as one.
///
/// Used so that a burst of notifications, freed slots or poll ticks becomes a single fetch.
final class WakeSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (self.stream, self.continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func wake() {
        self.continuation.yield()
    }

    /// Waits for the next wake-up; `false` when the signal finished or the task was cancelled.
    func wait() async -> Bool {
        var iterator = self.stream.makeAsyncIterator()
        return await iterator.next() != nil
    }
}
