import ConveyorCore
import Foundation
import Logging
import Synchronization

/// One execution of a run on a worker: its lease, its replay state, and the writes it makes.
final class WorkflowExecution: Sendable {
    let lease: JobLease
    let runID: WorkflowRunID
    let queue: String
    let replay: WorkflowReplay
    let writer: WorkflowWriter
    let maximumOutputBytes: Int
    private let waits = Mutex<[WorkflowStepWrite]>([])

    init(
        lease: JobLease,
        run: WorkflowExecutionState,
        queue: String,
        writer: WorkflowWriter,
        maximumOutputBytes: Int
    ) {
        self.lease = lease
        self.runID = run.id
        self.queue = queue
        self.replay = WorkflowReplay(run)
        self.writer = writer
        self.maximumOutputBytes = maximumOutputBytes
    }

    /// Marks the run as suspending and returns the error that ends the execution.
    func suspend() -> WorkflowSuspended {
        self.replay.suspend()
        return WorkflowSuspended()
    }

    /// Encodes a value a run stores, within the output cap (see ``WorkflowCoding/encode(_:limit:what:)``).
    func encode<Value: Encodable>(_ value: Value, what: String) throws -> String {
        try WorkflowCoding.encode(value, limit: self.maximumOutputBytes, what: what)
    }

    /// Runs a new step's attempts and stores the outcome.
    func runStep<Output: Codable & Sendable>(
        _ name: String,
        position: Int,
        maxAttempts: Int,
        retryPolicy: RetryPolicy,
        timeout: Duration?,
        _ body: @escaping @Sendable () async throws -> Output
    ) async throws -> Output {
        let clock = ContinuousClock()
        let start = clock.now
        var attempt = 0
        /// Stores the step as failed after `attempt` attempts, and throws the failure into the workflow.
        func fail(_ failure: WorkflowStepFailure) async throws -> Never {
            try await self.store(
                name,
                position: position,
                kind: .step,
                status: .failed,
                failure: failure,
                attempts: attempt,
                elapsed: clock.now - start
            )
            throw failure
        }
        while true {
            attempt += 1
            try Task.checkCancellation()
            let failure: WorkflowStepFailure
            var retryable = true
            do {
                let value = try await Self.attempt(body, timeout: timeout)
                let json: String
                do {
                    json = try self.encode(value, what: "the output of step \(name)")
                } catch let error as ConveyorError {
                    try await fail(WorkflowStepFailure(step: name, code: error.code.rawValue, message: error.message))
                }
                // Outside the attempt's error handling: a write the database refuses fails the run with its code
                // instead of running the body again.
                try await self.storeOutput(
                    json,
                    of: name,
                    position: position,
                    attempts: attempt,
                    elapsed: clock.now - start
                )
                return value
            } catch let stored as StepOutcomeStored {
                throw stored.error
            } catch let failed as WorkflowStepFailure where failed.step == name {
                throw failed
            } catch is StepTimedOut {
                failure = WorkflowStepFailure(step: name, code: "TIMEOUT", message: "attempt \(attempt) timed out")
            } catch {
                // The run is stopping (cancelled, shut down, lease lost): the step runs again when it resumes.
                if Task.isCancelled || error is CancellationError || error is WorkflowLeaseLost { throw error }
                retryable = !(error is any NonRetryableError)
                failure = WorkflowStepFailure(
                    step: name,
                    code: "STEP_FAILED",
                    message: ErrorText.sanitized(String(describing: error))
                )
            }
            guard retryable, attempt < maxAttempts else { try await fail(failure) }
            try await Task.sleep(for: retryPolicy.delay(afterAttempt: attempt, unitRandom: Double.random(in: 0..<1)))
        }
    }

    /// Stores a step's output; what the write throws comes out wrapped in ``StepOutcomeStored``, so that the
    /// attempt's error handling passes it on instead of retrying the body.
    private func storeOutput(
        _ json: String,
        of name: String,
        position: Int,
        attempts: Int,
        elapsed: Duration
    ) async throws {
        do {
            try await self.store(
                name,
                position: position,
                kind: .step,
                status: .completed,
                outputJSON: json,
                attempts: attempts,
                elapsed: elapsed
            )
        } catch {
            throw StepOutcomeStored(error: error)
        }
    }

    /// One attempt of a step body, within `timeout`.
    private static func attempt<Output: Sendable>(
        _ body: @escaping @Sendable () async throws -> Output,
        timeout: Duration?
    ) async throws -> Output {
        guard let timeout else { return try await body() }
        return try await withThrowingTaskGroup(of: Output?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw StepTimedOut() }
            return value
        }
    }

    /// Stores a durable call's outcome and returns once it is committed.
    ///
    /// - Throws: ``WorkflowLeaseLost`` when the run's lease was taken over; a ``ConveyorError`` when the write was
    ///   refused.
    func store(
        _ name: String,
        position: Int,
        kind: WorkflowStepKind,
        status: WorkflowStepStatus,
        outputJSON: String? = nil,
        failure: WorkflowStepFailure? = nil,
        waitFor: String? = nil,
        receivedSignal: Int64? = nil,
        attempts: Int = 1,
        elapsed: Duration = .zero
    ) async throws {
        var unit = WorkflowUnitOfWork()
        unit.steps.append(
            WorkflowStepWrite(
                lease: self.lease,
                runID: self.runID,
                name: name,
                position: position,
                kind: kind,
                status: status,
                outputJSON: outputJSON ?? (status == .completed ? "null" : nil),
                errorCode: failure?.code,
                errorMessage: failure.map { ErrorText.sanitized($0.message) },
                attempts: attempts,
                concurrent: self.replay.isConcurrent(name),
                waitFor: waitFor,
                durationMicroseconds: elapsed.wholeNanoseconds / 1000,
                receivedSignal: receivedSignal
            )
        )
        _ = try await self.writer.write(unit)
    }

    /// Keeps a wait that has not ended, to be stored with the suspension that follows, in its transaction.
    func storeWaiting(_ name: String, position: Int, kind: WorkflowStepKind, waitFor: String?, wakeAfter: Duration?) {
        let step = WorkflowStepWrite(
            lease: self.lease,
            runID: self.runID,
            name: name,
            position: position,
            kind: kind,
            status: .waiting,
            concurrent: self.replay.isConcurrent(name),
            waitFor: waitFor,
            wakeAfter: wakeAfter
        )
        self.waits.withLock { $0.append(step) }
    }

    /// The waits kept by ``storeWaiting(_:position:kind:waitFor:wakeAfter:)``, once.
    func takeWaits() -> [WorkflowStepWrite] {
        self.waits.withLock { waits in
            defer { waits = [] }
            return waits
        }
    }

    /// Starts a child run and stores the parent's wait for it, in one transaction.
    func startChild(_ run: NewWorkflowRun, position: Int) async throws {
        var unit = WorkflowUnitOfWork()
        unit.steps.append(
            WorkflowStepWrite(
                lease: self.lease,
                runID: self.runID,
                name: run.id.rawValue,
                position: position,
                kind: .child,
                status: .waiting,
                concurrent: self.replay.isConcurrent(run.id.rawValue),
                waitFor: run.id.rawValue
            )
        )
        unit.childStarts.append((self.lease, run))
        let result = try await self.writer.write(unit)
        if result.conflictingChildren.contains(run.id) {
            let failure = WorkflowStepFailure(
                step: run.id.rawValue,
                code: ConveyorError.Code.workflowIDInUse.rawValue,
                message: "a run with id \(run.id) exists and is not a child of \(self.runID)"
            )
            try await self.store(
                run.id.rawValue,
                position: position,
                kind: .child,
                status: .failed,
                failure: failure,
                waitFor: run.id.rawValue
            )
            throw failure
        }
    }
}

/// The run's lease was taken over by another worker: this execution stops without writing anything more.
struct WorkflowLeaseLost: Error {}

/// A step attempt ran past its timeout.
struct StepTimedOut: Error {}

/// Carries the error of a step's own write past the retry handling of its attempts.
struct StepOutcomeStored: Error {
    var error: any Error
}
