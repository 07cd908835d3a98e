import ConveyorCore
import Foundation
import Logging

/// What a workflow uses to make durable calls: steps, sleeps, signal waits and children.
///
/// Every durable call has a name of its own within the run. When a run resumes, each call that ended before returns
/// what it returned then (a step's output, a signal's payload, a child's output) without running again.
///
/// A call that has to wait (a sleep, a signal not yet sent, a child not yet finished) suspends the run: it throws
/// ``WorkflowSuspended``, the execution ends and gives up its slot and lease, and the run resumes on any worker
/// when what it waits for happens. Let that error pass (if a workflow catches it, the run suspends anyway).
///
/// Cancelling the run cancels the task that runs the workflow: a step's body sees it as Swift task cancellation.
public final class WorkflowContext: Sendable {
    /// The run's id.
    public let runID: WorkflowRunID
    /// The workflow's name.
    public let workflowName: String
    /// The version the run was started with.
    public let version: Int
    /// The run's tenant.
    public let namespace: String
    /// A logger with `workflow_run_id` and `workflow` metadata.
    public let logger: Logger

    let execution: WorkflowExecution

    init(execution: WorkflowExecution, run: WorkflowExecutionState, logger: Logger) {
        self.execution = execution
        self.runID = run.id
        self.workflowName = run.name
        self.version = run.version
        self.namespace = run.namespace
        var logger = logger
        logger[metadataKey: "workflow_run_id"] = "\(run.id)"
        logger[metadataKey: "workflow"] = "\(run.name)"
        self.logger = logger
    }

    /// The default attempts of a step (3).
    public static let defaultStepAttempts = 3

    /// The default backoff between a step's attempts: 100 ms doubling to 10 s, in the worker.
    public static let defaultStepRetryPolicy = RetryPolicy(
        base: .milliseconds(100),
        multiplier: 2,
        maximum: .seconds(10),
        jitter: 0.1
    )

    /// Runs `body` once for this run and stores its output; a resumed run gets the stored output back.
    ///
    /// The output is stored (in a batch with other runs' steps, one round trip for all of them) before this returns,
    /// so a step that returned is never run again for this run. A step whose body is running when its worker dies
    /// runs again, on the worker that resumes the run: make bodies idempotent, or key their side effects by run
    /// and step name.
    ///
    /// - Parameters:
    ///   - name: The step's name, unique within the run.
    ///   - maxAttempts: Attempts before the step fails (default 3). Attempts are retried in the worker, with
    ///     `retryPolicy` between them.
    ///   - timeout: How long one attempt may run before it is cancelled and counted as failed (`TIMEOUT`).
    ///   - body: The side effect. Throw a ``NonRetryableError`` to fail the step at once.
    /// - Throws: ``WorkflowStepFailure`` when the last attempt failed (stored, so a resumed run throws it again);
    ///   `NON_DETERMINISTIC` or `DUPLICATE_STEP` when the run took another path than the stored one.
    public func step<Output: Codable & Sendable>(
        _ name: String,
        maxAttempts: Int = WorkflowContext.defaultStepAttempts,
        retryPolicy: RetryPolicy = WorkflowContext.defaultStepRetryPolicy,
        timeout: Duration? = nil,
        _ body: @escaping @Sendable () async throws -> Output
    ) async throws -> Output {
        let begun = try self.execution.replay.begin(name, kind: .step)
        defer { self.execution.replay.end(name) }
        switch begun {
        case .stored(let stored):
            return try self.replayed(stored, as: Output.self)
        case .new(let position):
            return try await self.execution.runStep(
                name,
                position: position,
                maxAttempts: max(1, maxAttempts),
                retryPolicy: retryPolicy,
                timeout: timeout,
                body
            )
        }
    }

    /// Runs a step whose body returns nothing.
    public func step(
        _ name: String,
        maxAttempts: Int = WorkflowContext.defaultStepAttempts,
        retryPolicy: RetryPolicy = WorkflowContext.defaultStepRetryPolicy,
        timeout: Duration? = nil,
        _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        let _: StepNothing = try await self.step(
            name,
            maxAttempts: maxAttempts,
            retryPolicy: retryPolicy,
            timeout: timeout
        ) {
            try await body()
            return StepNothing()
        }
    }

    /// Sleeps durably: the run suspends, gives up its slot and lease, and resumes on any worker once `duration`
    /// has passed (by the database's clock, counted from the first time the run reached this sleep).
    public func sleep(_ name: String, for duration: Duration) async throws {
        let begun = try self.execution.replay.begin(name, kind: .sleep)
        defer { self.execution.replay.end(name) }
        switch begun {
        case .stored(let stored) where stored.status == .completed:
            return
        case .stored(let stored):
            guard stored.isDue else { throw self.execution.suspend() }
            try await self.execution.store(
                name,
                position: stored.position,
                kind: .sleep,
                status: .completed,
                outputJSON: "null"
            )
        case .new(let position):
            guard duration > .zero else {
                try await self.execution.store(name, position: position, kind: .sleep, status: .completed)
                return
            }
            self.execution.storeWaiting(name, position: position, kind: .sleep, waitFor: nil, wakeAfter: duration)
            throw self.execution.suspend()
        }
    }

    /// Waits for the signal `signal` and returns its payload. Signals sent before the wait are kept, oldest first,
    /// and each is received by one wait.
    ///
    /// - Parameters:
    ///   - signal: The signal's name.
    ///   - type: The payload's type.
    ///   - timeout: How long to wait, counted from the first time the run reached this wait; `nil` waits for ever.
    ///   - step: The durable call's name (default: the signal's name); give one when a run waits for the same
    ///     signal more than once.
    /// - Throws: ``WorkflowStepFailure`` with code `SIGNAL_TIMEOUT` when the timeout passed first.
    public func waitForSignal<Payload: Codable & Sendable>(
        _ signal: String,
        as type: Payload.Type = Payload.self,
        timeout: Duration? = nil,
        step: String? = nil
    ) async throws -> Payload {
        let name = step ?? signal
        let begun = try self.execution.replay.begin(name, kind: .signal)
        defer { self.execution.replay.end(name) }
        let position: Int
        switch begun {
        case .stored(let stored) where stored.status != .waiting:
            return try self.replayed(stored, as: Payload.self)
        case .stored(let stored):
            position = stored.position
        case .new(let newPosition):
            position = newPosition
        }
        guard let received = self.execution.replay.takeSignal(named: signal) else {
            switch begun {
            case .new:
                self.execution.storeWaiting(
                    name,
                    position: position,
                    kind: .signal,
                    waitFor: signal,
                    wakeAfter: timeout
                )
            case .stored(let stored) where stored.isDue:
                let failure = WorkflowStepFailure(
                    step: name,
                    code: "SIGNAL_TIMEOUT",
                    message: "no signal \(signal) arrived within the timeout"
                )
                try await self.execution.store(
                    name,
                    position: position,
                    kind: .signal,
                    status: .failed,
                    failure: failure,
                    waitFor: signal
                )
                throw failure
            case .stored:
                break
            }
            throw self.execution.suspend()
        }
        let payload = try self.decode(Payload.self, received.payloadJSON, step: name)
        try await self.execution.store(
            name,
            position: position,
            kind: .signal,
            status: .completed,
            outputJSON: received.payloadJSON,
            waitFor: signal,
            receivedSignal: received.id
        )
        return payload
    }

    /// Starts the workflow `type` as a child of this run, waits for it to end, and returns its output.
    ///
    /// The child is started once (under `id`, which also names this durable call); the parent suspends until the
    /// child ends, and resumes on any worker. Cancelling the parent cancels the child.
    ///
    /// - Throws: ``WorkflowStepFailure`` with the child's error code when the child failed or was cancelled;
    ///   `WORKFLOW_ID_IN_USE` when a run that is not this run's child has the id.
    public func child<Child: Workflow>(
        _ type: Child.Type,
        input: Child.Input,
        id: WorkflowRunID,
        queue: String? = nil
    ) async throws -> Child.Output {
        let name = id.rawValue
        let begun = try self.execution.replay.begin(name, kind: .child)
        defer { self.execution.replay.end(name) }
        switch begun {
        case .stored(let stored) where stored.status != .waiting:
            return try self.replayed(stored, as: Child.Output.self)
        case .stored(let stored):
            guard let child = self.execution.replay.child(id), child.status.isFinished else {
                throw self.execution.suspend()
            }
            let failure =
                child.status == .completed
                ? nil
                : WorkflowStepFailure(
                    step: name,
                    code: child.errorCode ?? "CHILD_\(child.status.rawValue.uppercased())",
                    message: child.errorMessage ?? "the child run \(child.status.rawValue)"
                )
            try await self.execution.store(
                name,
                position: stored.position,
                kind: .child,
                status: failure == nil ? .completed : .failed,
                outputJSON: child.outputJSON,
                failure: failure,
                waitFor: id.rawValue
            )
            if let failure { throw failure }
            return try self.decode(Child.Output.self, child.outputJSON ?? "null", step: name)
        case .new(let position):
            let inputJSON = try self.execution.encode(input, what: "the input of child \(id)")
            let run = NewWorkflowRun(
                id: try id.validated(),
                name: Child.name,
                version: Child.version,
                namespace: self.namespace,
                queue: queue ?? self.execution.queue,
                inputJSON: inputJSON,
                parentID: self.runID
            )
            try await self.execution.startChild(run, position: position)
            throw self.execution.suspend()
        }
    }

    /// Sends the signal `name` with `payload` to the run `target`, once: the send is a step of this run (named
    /// `step`, by default `signal:<target>/<name>`), so a resumed run does not send it again.
    ///
    /// - Throws: ``WorkflowStepFailure`` when the target does not exist or has ended (`WORKFLOW_NOT_FOUND`,
    ///   `INVALID_WORKFLOW_STATE`).
    public func signal<Payload: Encodable & Sendable>(
        _ target: WorkflowRunID,
        _ name: String,
        _ payload: Payload,
        step: String? = nil
    ) async throws {
        let json = try self.execution.encode(payload, what: "the payload of signal \(name)")
        let store = self.execution.writer.store
        let logger = self.logger
        let sender = "workflow:\(self.runID.rawValue)"
        try await self.step(step ?? "signal:\(target)/\(name)", maxAttempts: 3) {
            do {
                try await store.signal(target, name: name, payloadJSON: json, by: sender, logger: logger)
            } catch let error as ConveyorError
                where error.code == .workflowNotFound || error.code == .invalidWorkflowState
            {
                throw NonRetryable(error)
            }
        }
    }

    /// Whether the run takes the branch of a code change called `name`: `true` for runs that reach this point
    /// under the new code (new runs, and runs whose stored steps all lie before it), `false` for runs that stored
    /// steps beyond it under older code. The answer is stored, so a run keeps its branch.
    ///
    /// ```swift
    /// if try await context.patched("send-sms") {
    ///     try await context.step("sms") { try await sms.send(order) }
    /// }
    /// ```
    public func patched(_ name: String) async throws -> Bool {
        if self.execution.replay.isSuspending { throw WorkflowSuspended() }
        let (applies, isNew) = self.execution.replay.patch(name)
        if isNew {
            try await self.execution.store(name, position: -1, kind: .patch, status: .completed, outputJSON: "true")
        }
        return applies
    }

    private func replayed<Output: Decodable>(_ stored: StoredWorkflowStep, as type: Output.Type) throws -> Output {
        if stored.status == .failed {
            throw WorkflowStepFailure(
                step: stored.name,
                code: stored.errorCode ?? "STEP_FAILED",
                message: stored.errorMessage ?? ""
            )
        }
        return try self.decode(Output.self, stored.outputJSON ?? "null", step: stored.name)
    }

    private func decode<Output: Decodable>(_ type: Output.Type, _ json: String, step: String) throws -> Output {
        do {
            return try WorkflowCoding.decoder.decode(Output.self, from: Data(json.utf8))
        } catch {
            throw ConveyorError(
                .malformedArguments,
                "the stored output of \(step) does not decode as \(Output.self)",
                underlying: error
            )
        }
    }
}

/// What a step without an output stores.
struct StepNothing: Codable, Sendable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

/// The encoder and decoder of workflow values.
enum WorkflowCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    static let decoder = JSONDecoder()

    /// Encodes a value a run stores (an input, an output, a payload), within `limit` bytes.
    ///
    /// - Throws: `OUTPUT_TOO_LARGE` over the limit; `MALFORMED_ARGUMENTS` when it does not encode, or contains the
    ///   NUL character (which PostgreSQL's jsonb refuses).
    static func encode<Value: Encodable>(_ value: Value, limit: Int, what: String) throws -> String {
        let json: String
        do {
            json = String(decoding: try Self.encoder.encode(value), as: UTF8.self)
        } catch {
            throw ConveyorError(.malformedArguments, "cannot encode \(what)", underlying: error)
        }
        guard json.utf8.count <= limit else {
            throw ConveyorError(.outputTooLarge, "\(what) is \(json.utf8.count) bytes; the limit is \(limit)")
        }
        if JSONValidation.containsEscapedNUL(json) {
            throw ConveyorError(.malformedArguments, "\(what) must not contain the NUL character (\\u0000)")
        }
        return json
    }
}
