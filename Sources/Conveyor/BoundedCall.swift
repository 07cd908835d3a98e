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
        _ operation: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        try await Self.run(timeout: timeout, what(), startedBy: { _ in try await operation() })
    }

    /// As ``run(timeout:_:_:)`` for a call that runs for as long as it is needed once it has started (a LISTEN): the
    /// bound applies until `operation` calls the `started` closure it is given, and after that only cancellation
    /// ends the wait.
    package static func run<Value: Sendable>(
        timeout: Duration,
        _ what: @autoclosure () -> String,
        startedBy operation: @escaping @Sendable (_ started: @escaping @Sendable () -> Void) async throws -> Value
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
                with: .failure(ConveyorError(.databaseTimeout, "\(description) took longer than \(timeout)"))
            )
        }
        let call = Task {
            outcome.resolve(with: await Result(catching: { try await operation({ timer.cancel() }) }))
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
        private enum State {
            case pending(CheckedContinuation<Value, any Error>?)
            case resolved(Result<Value, any Error>)
            case delivered
        }

        private let state = Mutex(State.pending(nil))

        /// Records `result` unless one came first, and resumes the waiter if it waits already.
        func resolve(with result: Result<Value, any Error>) {
            let waiter = self.state.withLock { state -> CheckedContinuation<Value, any Error>? in
                guard case .pending(let waiter) = state else { return nil }
                if let waiter {
                    state = .delivered
                    return waiter
                }
                state = .resolved(result)
                return nil
            }
            waiter?.resume(with: result)
        }

        func value() async throws -> Value {
            try await withCheckedThrowingContinuation { continuation in
                let ready = self.state.withLock { state -> Result<Value, any Error>? in
                    switch state {
                    case .pending:
                        state = .pending(continuation)
                        return nil
                    case .resolved(let result):
                        state = .delivered
                        return result
                    case .delivered:
                        return .failure(CancellationError())
                    }
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
