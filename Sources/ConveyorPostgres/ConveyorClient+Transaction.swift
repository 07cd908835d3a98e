import Conveyor
import PostgresNIO

extension ConveyorClient.Jobs {
    /// Enqueues a job on `connection`, inside the transaction the caller has open there: the job exists if and only
    /// if that transaction commits, and listening workers are woken when it commits.
    ///
    /// ```swift
    /// try await postgres.withTransaction(logger: logger) { connection in
    ///     let orderID = try await orders.insert(order, on: connection)
    ///     try await conveyor.jobs.enqueue(SendReceipt(orderID: orderID), on: connection)
    /// }
    /// ```
    ///
    /// - Throws: A validation ``ConveyorError`` before anything is written; `INVALID_CONFIGURATION` when the client's
    ///   store is not a ``PostgresJobStore``.
    @discardableResult
    public func enqueue<Arguments: JobArguments>(
        _ arguments: Arguments,
        options: JobOptions = JobOptions(),
        on connection: PostgresConnection
    ) async throws -> EnqueuedJob {
        try await self.enqueue([JobRequest(arguments, options: options)], on: connection)[0]
    }

    /// Enqueues a batch on `connection`, inside the transaction the caller has open there.
    ///
    /// Enqueue limits apply as to every enqueue, with two differences that keep the caller's transaction short and
    /// free of other sessions' locks: the client refreshes its copy of the limits on `connection` (so an enqueue
    /// that no limit covers needs no second connection), while the tokens of a limited queue or namespace are taken
    /// in a transaction of the store's own, which commits at once. Tokens are therefore not given back when the
    /// caller's transaction rolls back. Refusals are recorded in `ingest_decisions` outside the caller's
    /// transaction, so they are kept whatever it does.
    ///
    /// - Throws: A validation ``ConveyorError`` before anything is written; `RATE_LIMITED` when an enqueue limit
    ///   refused the batch (nothing is written on `connection`); `INVALID_CONFIGURATION` when the client's store is
    ///   not a ``PostgresJobStore``.
    @discardableResult
    public func enqueue(_ requests: [JobRequest], on connection: PostgresConnection) async throws -> [EnqueuedJob] {
        guard let store = self.client.store as? PostgresJobStore else {
            throw ConveyorError(.invalidConfiguration, "transactional enqueue needs a PostgresJobStore")
        }
        let client = self.client
        return try await client.recordingRefusals(.transaction, of: requests) {
            let jobs = try requests.map { try $0.makeNewJob(for: client) }
            try await client.checkEnqueueLimits(jobs, source: .transaction) {
                try await store.enqueueLimits(on: connection, logger: client.logger)
            }
            let enqueued = try await store.insert(
                jobs,
                notify: client.configuration.notifyOnInsert,
                on: connection,
                logger: client.logger
            )
            // Counted when the insert ran; if the caller's transaction later rolls back, the count overstates.
            ConveyorMetrics.recordEnqueued(NewJobBatch(jobs))
            return enqueued
        }
    }
}

extension ConveyorClient {
    /// Runs `body` in one transaction of the store's `PostgresClient` and returns once it committed: your own
    /// writes and the jobs you enqueue `on:` the connection commit together, or none of them does.
    ///
    /// Unlike `PostgresClient.withTransaction`, which wraps every error in a `PostgresTransactionError`, what `body`
    /// throws reaches you as it was thrown (a ``ConveyorError`` from an enqueue stays one, with its code), and a
    /// failed `BEGIN` or `COMMIT` arrives as a ``ConveyorError`` (`DATABASE_UNAVAILABLE`, `DATABASE_ERROR`, …).
    ///
    /// ```swift
    /// try await conveyor.withTransaction { connection in
    ///     let orderID = try await orders.insert(order, on: connection)
    ///     try await conveyor.jobs.enqueue(SendReceipt(orderID: orderID), on: connection)
    /// }
    /// ```
    ///
    /// - Throws: What `body` threw, after the rollback; a ``ConveyorError`` when the transaction itself failed;
    ///   `INVALID_CONFIGURATION` when the store is not a ``PostgresJobStore``.
    public func withTransaction<Result: Sendable>(
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        guard let store = self.store as? PostgresJobStore else {
            throw ConveyorError(.invalidConfiguration, "withTransaction needs a PostgresJobStore")
        }
        do {
            return try await store.client.withTransaction(logger: self.logger) { connection in
                try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            if let thrown = error.closureError { throw thrown }
            throw PostgresJobStore.mapped(error, "running a transaction")
        }
    }
}

extension ConveyorClient.Workflows {
    /// Starts a run on `connection`, inside the transaction the caller has open there: the run exists if and only
    /// if that transaction commits, and workers are woken when it does.
    ///
    /// - Throws: A validation ``ConveyorError`` before anything is written; `INVALID_CONFIGURATION` when the client's
    ///   store is not a ``PostgresJobStore``.
    @discardableResult
    public func start<W: Workflow>(
        _ type: W.Type,
        input: W.Input,
        options: WorkflowOptions = WorkflowOptions(),
        on connection: PostgresConnection
    ) async throws -> StartedWorkflowRun {
        guard let store = self.client.store as? PostgresJobStore else {
            throw ConveyorError(.invalidConfiguration, "a transactional start needs a PostgresJobStore")
        }
        let run = try self.makeNewRun(type, input: input, options: options)
        return try await store.startWorkflowRuns(
            [run],
            notify: self.client.configuration.notifyOnInsert,
            on: connection,
            logger: self.client.logger
        )[0]
    }
}
