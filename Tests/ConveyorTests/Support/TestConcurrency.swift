import Foundation

/// Bounds how many database tests run at once (default 12; `CONVEYOR_TEST_CONCURRENCY` overrides it).
///
/// Swift Testing starts every test of the process at once. On a two-core machine two hundred tests, each migrating
/// a schema, running workers or driving Chromium, starved one another for a minute, long enough for tests that wait
/// for an event to time out. A test waits here for a permit before its schema is made, so its own timeouts start
/// only once it runs.
actor TestConcurrency {
    static let shared = TestConcurrency(
        width: ProcessInfo.processInfo.environment["CONVEYOR_TEST_CONCURRENCY"].flatMap(Int.init) ?? 12
    )

    private let width: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(width: Int) {
        self.width = max(1, width)
    }

    /// Runs `body` once fewer than `width` others run.
    nonisolated func run<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        await self.acquire()
        do {
            let result = try await body()
            await self.release()
            return result
        } catch {
            await self.release()
            throw error
        }
    }

    private func acquire() async {
        if self.running < self.width {
            self.running += 1
            return
        }
        await withCheckedContinuation { self.waiting.append($0) }
    }

    private func release() {
        if self.waiting.isEmpty {
            self.running -= 1
        } else {
            // The permit passes straight to the next waiter.
            self.waiting.removeFirst().resume()
        }
    }
}
