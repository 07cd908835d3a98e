import Synchronization

/// Runs database calls so that their caller never waits for one longer than a bound.
///
/// A worker's loops must not hang on a call that never returns: after a PostgreSQL restart, a query in flight on a
/// connection that died was seen to neither return nor throw, even when its task was cancelled (it waits on a
/// driver promise that nothing completes), and the loop behind it stopped for good. So a bounded call runs in a task
/// of its own. At the deadline, or when the caller is cancelled, that task is cancelled and the caller goes on at
/// once with `DATABASE_TIMEOUT` (or `CancellationError`); a call that ignores its cancellation is abandoned, and its
/// result, should one ever come, is dropped. Every write the engine makes is fenced by its lease token or
/// idempotent, so a late write of an abandoned call changes nothing that a retry did not.
package enum BoundedCall {
    /// Runs `operation` and returns its result, or throws `DATABASE_TIMEOUT` once `timeout` has passed.
    ///
    /// - Throws: What `operation` threw; ``ConveyorError`` `DATABASE_TIMEOUT` after `timeout`; `CancellationError`
    ///   at once when the calling task is cancelled.
    package static func run<Value: Sendable>(
        timeout: Duration,
        _ what: @autoclosure () -> String,
        onLateResult: (@Sendable (Value) -> Void)? = nil,
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        try await Self.run(
            timeout: timeout,
            what(),
            onLateResult: onLateResult,
            startedBy: { _ in try await operation() }
        )
    }

    /// As ``run(timeout:_:onLateResult:_:)`` for a call that runs for as long as it is needed once it has started
    /// (a LISTEN, a call that got its connection): the bound applies until `operation` calls the `started` closure
    /// it is given, and after that only cancellation ends the wait. `started()` returns `false` when the bound has
    /// passed already: the caller was told `DATABASE_TIMEOUT`, and the operation must not go on (throw, or return
    /// without doing anything).
    ///
    /// `onLateResult` receives a value the operation returned after its caller stopped waiting (a fetch whose jobs
    /// nobody will run, say), so that it can be undone.
    package static func run<Value: Sendable>(
        timeout: Duration,
        _ what: @autoclosure () -> String,
        onLateResult: (@Sendable (Value) -> Void)? = nil,
        startedBy operation: @escaping @Sendable (_ started: @escaping @Sendable () -> Bool) async throws -> Value
    ) async throws -> Value {
        let outcome = Outcome<Value>()
        let description = what()
        let timer = Task {
            do {
                try await Task.sleep(for: timeout)
            } catch {
                return
            }
            outcome.resolve(
                with: .failure(ConveyorError(.databaseTimeout, "\(description) took longer than \(timeout)")),
                unlessStarted: true
            )
        }
        let call = Task {
            let result = await Result(catching: {
                try await operation({
                    guard outcome.markStarted() else { return false }
                    timer.cancel()
                    return true
                })
            })
            if !outcome.resolve(with: result), case .success(let value) = result {
                onLateResult?(value)
            }
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            do {
                return try await outcome.value()
            } catch {
                // At the deadline the call is told to stop; whether it does, nobody waits for it.
                call.cancel()
                throw error
            }
        } onCancel: {
            call.cancel()
            outcome.resolve(with: .failure(CancellationError()))
        }
    }

    /// The first result of a bounded call, handed to its one waiter.
    private final class Outcome<Value: Sendable>: Sendable {
        private struct State {
            var waiter: CheckedContinuation<Value, any Error>?
            var result: Result<Value, any Error>?
            var delivered = false
            /// The operation said it started: the deadline no longer applies.
            var started = false
        }

        private let state = Mutex(State())

        /// Records `result` unless one came first (or, with `unlessStarted`, the operation started), and resumes
        /// the waiter if it waits already. Returns whether `result` was the one recorded.
        @discardableResult
        func resolve(with result: Result<Value, any Error>, unlessStarted: Bool = false) -> Bool {
            let (recorded, waiter) = self.state.withLock { state -> (Bool, CheckedContinuation<Value, any Error>?) in
                guard state.result == nil, !state.delivered, !(unlessStarted && state.started) else {
                    return (false, nil)
                }
                if let waiter = state.waiter {
                    state.waiter = nil
                    state.delivered = true
                    return (true, waiter)
                }
                state.result = result
                return (true, nil)
            }
            waiter?.resume(with: result)
            return recorded
        }

        /// Marks the operation started, unless a result (the timeout) was recorded first.
        func markStarted() -> Bool {
            self.state.withLock { state in
                guard state.result == nil, !state.delivered else { return false }
                state.started = true
                return true
            }
        }

        func value() async throws -> Value {
            try await withCheckedThrowingContinuation { continuation in
                let ready = self.state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result {
                        state.result = nil
                        state.delivered = true
                        return result
                    }
                    if state.delivered { return .failure(CancellationError()) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
