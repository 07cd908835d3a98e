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
    @discardableResult
    public func enqueue(_ requests: [JobRequest], on connection: PostgresConnection) async throws -> [EnqueuedJob] {
        guard let store = self.client.store as? PostgresJobStore else {
            throw ConveyorError(.invalidConfiguration, "transactional enqueue needs a PostgresJobStore")
        }
        let jobs = try requests.map { try $0.makeNewJob(for: self.client) }
        let enqueued = try await store.insert(
            jobs,
            notify: self.client.configuration.notifyOnInsert,
            on: connection,
            logger: self.client.logger
        )
        // Counted when the insert ran; if the caller's transaction later rolls back, the count overstates.
        ConveyorMetrics.recordEnqueued(NewJobBatch(jobs))
        return enqueued
    }
}
