import ConveyorCore
import Foundation

extension ConveyorClient {
    /// Workflow operations: start, signal, inspect and cancel runs.
    public var workflows: Workflows { Workflows(client: self) }

    /// Workflow operations (`client.workflows`).
    public struct Workflows: Sendable {
        public let client: ConveyorClient

        /// Starts a run of `type` with `input`, and returns once it is stored: a worker that has the workflow
        /// registered picks it up at once. Starting an id that exists returns that run with `isExisting` and
        /// changes nothing.
        ///
        /// - Throws: `INVALID_OPTION`, `INVALID_QUEUE_NAME`, `INVALID_NAMESPACE` or `OUTPUT_TOO_LARGE` before anything
        ///   is written.
        @discardableResult
        public func start<W: Workflow>(
            _ type: W.Type,
            input: W.Input,
            options: WorkflowOptions = WorkflowOptions()
        ) async throws -> StartedWorkflowRun {
            let run = try self.makeNewRun(type, input: input, options: options)
            return try await self.client.store.startWorkflowRuns(
                [run],
                notify: self.client.configuration.notifyOnInsert,
                logger: self.client.logger
            )[0]
        }

        /// Starts a run of the workflow called `name` with JSON input, for callers without its Swift type (the CLI,
        /// another service).
        @discardableResult
        public func start(
            name: String,
            inputJSON: String,
            options: WorkflowOptions = WorkflowOptions()
        ) async throws -> StartedWorkflowRun {
            try Self.checkNames(name: name, options: options)
            try Self.checkJSON(inputJSON, limit: self.client.configuration.maximumArgumentBytes)
            let run = NewWorkflowRun(
                id: try (options.id ?? .generate()).validated(),
                name: name,
                version: options.version ?? 1,
                namespace: options.namespace,
                queue: options.queue,
                inputJSON: inputJSON,
                deadline: options.deadline
            )
            return try await self.client.store.startWorkflowRuns(
                [run],
                notify: self.client.configuration.notifyOnInsert,
                logger: self.client.logger
            )[0]
        }

        private static func checkNames(name: String, options: WorkflowOptions) throws {
            if let violation = NameValidation.checkLabel(name) {
                throw ConveyorError(.invalidKind, "workflow name \(violation.explanation)")
            }
            if let violation = NameValidation.checkLabel(options.queue) {
                throw ConveyorError(.invalidQueueName, "queue name \(violation.explanation)")
            }
            if let violation = NameValidation.checkLabel(options.namespace) {
                throw ConveyorError(.invalidNamespace, "namespace \(violation.explanation)")
            }
            if let version = options.version, version < 1 {
                throw ConveyorError(.invalidOption, "a workflow version must be 1 or more, got \(version)")
            }
        }

        /// Checks JSON text a caller hands over: its size, that it parses, and the NUL rule.
        private static func checkJSON(_ json: String, limit: Int) throws {
            guard json.utf8.count <= limit else {
                throw ConveyorError(.outputTooLarge, "the value is \(json.utf8.count) bytes; the limit is \(limit)")
            }
            guard (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) != nil else {
                throw ConveyorError(.malformedArguments, "the value is not JSON")
            }
            try JSONValidation.checkNoNUL(json)
        }

        /// Builds a validated run (used by drivers for a start inside the caller's transaction).
        public func makeNewRun<W: Workflow>(
            _ type: W.Type,
            input: W.Input,
            options: WorkflowOptions
        ) throws -> NewWorkflowRun {
            try Self.checkNames(name: W.name, options: options)
            let inputJSON = try WorkflowCoding.encode(
                input,
                limit: self.client.configuration.maximumArgumentBytes,
                what: "the input of \(W.name)"
            )
            return NewWorkflowRun(
                id: try (options.id ?? .generate()).validated(),
                name: W.name,
                version: options.version ?? W.version,
                namespace: options.namespace,
                queue: options.queue,
                inputJSON: inputJSON,
                deadline: options.deadline
            )
        }

        /// Sends the signal `name` with `payload` to a run. A signal sent before the run waits for it is kept, and
        /// a run suspended on it resumes at once.
        ///
        /// - Throws: `WORKFLOW_NOT_FOUND`; `INVALID_WORKFLOW_STATE` when the run has ended.
        public func signal<Payload: Encodable>(
            _ id: WorkflowRunID,
            _ name: String,
            _ payload: Payload,
            by performer: String? = nil
        ) async throws {
            let json = try WorkflowCoding.encode(
                payload,
                limit: self.client.configuration.maximumArgumentBytes,
                what: "the payload of signal \(name)"
            )
            try await self.signal(id, name, payloadJSON: json, by: performer)
        }

        /// Sends a signal whose payload is JSON text (checked before it is sent).
        public func signal(
            _ id: WorkflowRunID,
            _ name: String,
            payloadJSON: String,
            by performer: String? = nil
        ) async throws {
            if let violation = NameValidation.checkLabel(name) {
                throw ConveyorError(.invalidOption, "signal name \(violation.explanation)")
            }
            try Self.checkJSON(payloadJSON, limit: self.client.configuration.maximumArgumentBytes)
            try await self.client.store.signal(
                id,
                name: name,
                payloadJSON: payloadJSON,
                by: performer,
                logger: self.client.logger
            )
        }

        /// Reads a run with its steps; `nil` when no run has the id.
        public func get(_ id: WorkflowRunID) async throws -> WorkflowRunRecord? {
            try await self.client.store.workflowRun(id, logger: self.client.logger)
        }

        /// Lists runs newest first, one page at a time.
        public func list(_ filter: WorkflowRunFilter = WorkflowRunFilter()) async throws -> WorkflowRunPage {
            try await self.client.store.workflowRuns(matching: filter, logger: self.client.logger)
        }

        /// Cancels a run and its unfinished children: a waiting run at once, a running one when its worker sees the
        /// request at its next heartbeat (the workflow's task is cancelled). An ended run is returned as it is.
        ///
        /// - Throws: `WORKFLOW_NOT_FOUND`.
        @discardableResult
        public func cancel(_ id: WorkflowRunID, by performer: String? = nil) async throws -> WorkflowRunRecord {
            try await self.client.store.cancelWorkflowRun(id, by: performer, logger: self.client.logger)
        }

        /// Starts a new run that reuses the stored outputs of `id`'s steps before `step` and runs from there on
        /// (with the code the workers have now): the way to recover runs that failed on a bug once it is fixed. The
        /// new run records `forkedFrom` and `forkedAtStep`.
        ///
        /// - Throws: `WORKFLOW_NOT_FOUND`; `STEP_NOT_FOUND`.
        @discardableResult
        public func fork(
            _ id: WorkflowRunID,
            fromStep step: String,
            newID: WorkflowRunID? = nil,
            by performer: String? = nil
        ) async throws -> StartedWorkflowRun {
            try await self.client.store.forkWorkflowRun(
                id,
                fromStep: step,
                newID: try (newID ?? .generate()).validated(),
                by: performer,
                logger: self.client.logger
            )
        }
    }
}
