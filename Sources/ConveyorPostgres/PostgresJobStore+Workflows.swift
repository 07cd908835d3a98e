import Conveyor
import ConveyorCore
import Foundation
import Logging
import PostgresNIO

/// The SQL of workflow runs, each statement beside its binds and its decoding.
///
/// Locking: every write about a run's execution first locks the rows of the jobs whose leases it presents (the
/// fence), and everything that makes a suspended run runnable (a signal, a child's end, a cancel) locks the run's
/// job row before it looks. A suspension checks for signals and ended children after it holds that lock, in a
/// statement of its own (a new snapshot): whichever of the two transactions locks first, the other sees what it
/// wrote, so a wake-up is never lost between a run's check and its suspension.
extension PostgresJobStore {
    // MARK: Start

    public func startWorkflowRuns(
        _ runs: [NewWorkflowRun],
        notify: Bool,
        logger: Logger
    ) async throws
        -> [StartedWorkflowRun]
    {
        guard !runs.isEmpty else { return [] }
        return try await self.run("starting \(runs.count) workflow run(s)") {
            try await self.withConnection { connection in
                try await self.startWorkflowRuns(runs, notify: notify, on: connection, logger: logger)
            }
        }
    }

    /// Inserts runs on `connection`, inside whatever transaction it has open (or in one statement of its own).
    public func startWorkflowRuns(
        _ runs: [NewWorkflowRun],
        notify: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [StartedWorkflowRun] {
        try await self.run("starting \(runs.count) workflow run(s)") {
            try await self.insertRuns(runs, notify: notify, on: connection, logger: logger).map(\.started)
        }
    }

    private struct InsertedRun {
        var started: StartedWorkflowRun
        var parentID: WorkflowRunID?
    }

    private func insertRuns(
        _ runs: [NewWorkflowRun],
        notify: Bool,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [InsertedRun] {
        let s = self.schema.quoted
        var binds = PostgresBindings(capacity: 12)
        binds.append(runs.map(\.id.rawValue))
        binds.append(runs.map(\.name))
        binds.append(runs.map { Int32(clamping: $0.version) })
        binds.append(runs.map(\.namespace))
        binds.append(runs.map(\.queue))
        binds.append(runs.map(\.inputJSON))
        binds.append(
            runs.map { run in run.deadline.map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) } ?? -1 }
        )
        binds.append(runs.map { $0.parentID?.rawValue ?? "" })
        binds.append(runs.map { $0.forkedFrom?.rawValue ?? "" })
        binds.append(runs.map { $0.forkedAtStep ?? "" })
        binds.append(self.schema.insertChannel)
        binds.append(notify)
        // The job's id is drawn first, so that the run and its job point at each other from one statement. A run
        // whose id exists is skipped by ON CONFLICT, and reported with the existing run's job.
        let sql = """
            WITH input AS (
                SELECT *
                FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                            $8::text[], $9::text[], $10::text[]) WITH ORDINALITY
                     AS i(id, name, version, namespace, queue, input, deadline_us, parent_id, forked_from,
                          forked_at_step, ord)
            ),
            fresh AS (
                INSERT INTO \(s).workflow_runs (id, name, version, namespace, queue, input, deadline, parent_id,
                                               forked_from, forked_at_step, job_id)
                SELECT i.id, i.name, i.version, i.namespace, i.queue, i.input::jsonb,
                       CASE WHEN i.deadline_us >= 0 THEN to_timestamp(i.deadline_us / 1000000.0) END,
                       nullif(i.parent_id, ''), nullif(i.forked_from, ''), nullif(i.forked_at_step, ''),
                       nextval(pg_get_serial_sequence('\(s).jobs', 'id'))
                FROM input i
                ORDER BY i.ord
                ON CONFLICT (id) DO NOTHING
                RETURNING id, job_id, queue, namespace
            ),
            jobs AS (
                -- A run's job is retried after every lost lease (that is how a crashed run resumes), so its
                -- attempts are not limited; suspensions do not count as attempts.
                INSERT INTO \(s).jobs (id, kind, queue, namespace, args, max_attempts)
                SELECT f.job_id, '\(WorkflowJob.kind)', f.queue, f.namespace, jsonb_build_object('run', f.id),
                       2147483647
                FROM fresh f
                RETURNING id
            ),
            woken AS (
                SELECT count(pg_notify($11, q.queue)) AS sent
                FROM (SELECT DISTINCT f.queue FROM fresh f WHERE $12) q
            )
            SELECT i.id, coalesce(f.job_id, r.job_id, -1), f.id IS NULL, coalesce(r.parent_id, i.parent_id),
                   (SELECT count(*) FROM jobs), (SELECT w.sent FROM woken w)
            FROM input i
            LEFT JOIN fresh f ON f.id = i.id
            LEFT JOIN \(s).workflow_runs r ON r.id = i.id AND f.id IS NULL
            ORDER BY i.ord
            """
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        var inserted: [InsertedRun] = []
        for try await (id, jobID, existing, parentID, _, _) in rows.decode(
            (String, Int64, Bool, String, Int64, Int64).self
        ) {
            guard jobID > 0 else {
                // Inserted by a transaction that committed while this one ran: not visible to this statement.
                throw ConveyorError(.databaseUnavailable, "workflow run \(id) was started concurrently; retry")
            }
            inserted.append(
                InsertedRun(
                    started: StartedWorkflowRun(id: WorkflowRunID(id), jobID: JobID(jobID), isExisting: existing),
                    parentID: parentID.isEmpty ? nil : WorkflowRunID(parentID)
                )
            )
        }
        return inserted
    }

    // MARK: Execution

    public func workflowExecutionStates(
        _ ids: [WorkflowRunID],
        logger: Logger
    ) async throws -> [WorkflowRunID: WorkflowExecutionState] {
        guard !ids.isEmpty else { return [:] }
        return try await self.run("loading \(ids.count) workflow run(s)") {
            let s = self.schema.quoted
            var binds = PostgresBindings()
            binds.append(ids.map(\.rawValue))
            // One round trip, through a function whose plan is made once per session (see migration 8).
            let sql = "SELECT * FROM \(s).workflow_load($1)"
            let rows = try await self.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            var states: [WorkflowRunID: WorkflowExecutionState] = [:]
            for try await row in rows {
                let c = row.makeRandomAccess()
                func text(_ i: Int) throws -> [String] { try c[i].decode([String]?.self) ?? [] }
                let names = try text(8)
                let positions = try c[9].decode([Int32]?.self) ?? []
                let kinds = try text(10)
                let statuses = try text(11)
                let outputs = try text(12)
                let codes = try text(13)
                let messages = try text(14)
                let attempts = try c[15].decode([Int32]?.self) ?? []
                let concurrent = try c[16].decode([Bool]?.self) ?? []
                let waitFor = try text(17)
                let due = try c[18].decode([Bool]?.self) ?? []
                var steps: [StoredWorkflowStep] = []
                for index in names.indices {
                    steps.append(
                        StoredWorkflowStep(
                            name: names[index],
                            position: Int(positions[index]),
                            kind: WorkflowStepKind(rawValue: kinds[index]) ?? .step,
                            status: WorkflowStepStatus(rawValue: statuses[index]) ?? .failed,
                            outputJSON: outputs[index].isEmpty ? nil : outputs[index],
                            errorCode: codes[index].isEmpty ? nil : codes[index],
                            errorMessage: messages[index].isEmpty ? nil : messages[index],
                            attempts: Int(attempts[index]),
                            concurrent: concurrent[index],
                            waitFor: waitFor[index].isEmpty ? nil : waitFor[index],
                            isDue: due[index]
                        )
                    )
                }
                let signalIDs = try c[19].decode([Int64]?.self) ?? []
                let signalNames = try text(20)
                let payloads = try text(21)
                let signals = signalIDs.indices.map {
                    PendingWorkflowSignal(id: signalIDs[$0], name: signalNames[$0], payloadJSON: payloads[$0])
                }
                let childIDs = try text(22)
                let childStatuses = try text(23)
                let childOutputs = try text(24)
                let childCodes = try text(25)
                let childMessages = try text(26)
                let children = childIDs.indices.map {
                    WorkflowChildState(
                        id: WorkflowRunID(childIDs[$0]),
                        status: WorkflowRunStatus(rawValue: childStatuses[$0]) ?? .running,
                        outputJSON: childOutputs[$0].isEmpty ? nil : childOutputs[$0],
                        errorCode: childCodes[$0].isEmpty ? nil : childCodes[$0],
                        errorMessage: childMessages[$0].isEmpty ? nil : childMessages[$0]
                    )
                }
                let id = WorkflowRunID(try c[0].decode(String.self))
                states[id] = WorkflowExecutionState(
                    id: id,
                    name: try c[1].decode(String.self),
                    version: Int(try c[2].decode(Int32.self)),
                    namespace: try c[3].decode(String.self),
                    status: WorkflowRunStatus(rawValue: try c[4].decode(String.self)) ?? .running,
                    inputJSON: try c[5].decode(String.self),
                    deadlinePassed: try c[6].decode(Bool.self),
                    cancelRequested: try c[7].decode(Bool.self),
                    steps: steps,
                    signals: signals,
                    children: children
                )
            }
            return states
        }
    }

    // MARK: Unit of work

    public func commit(_ work: WorkflowUnitOfWork, logger: Logger) async throws -> WorkflowCommitResult {
        guard !work.isEmpty else { return WorkflowCommitResult() }
        return try await self.run("writing workflow steps") {
            let s = self.schema.quoted
            if work.childStarts.isEmpty && work.suspensions.isEmpty {
                // The common cases, steps of running workflows and runs that ended: one call of a procedure that
                // commits before it answers (see migration 8).
                var binds = self.stepBinds(work)
                let sql: String
                if work.endings.isEmpty && work.completions.isEmpty {
                    sql = "CALL \(s).workflow_store_steps_committed(\(Self.placeholders(1...18)), NULL, NULL)"
                } else {
                    let endings = work.endings
                    binds.append(endings.map(\.runID.rawValue))
                    binds.append(endings.map(\.lease.id.rawValue))
                    binds.append(endings.map(\.lease.token))
                    binds.append(endings.map(\.status.rawValue))
                    binds.append(endings.map { $0.outputJSON ?? "" })
                    binds.append(endings.map { $0.errorCode ?? "" })
                    binds.append(endings.map { $0.errorMessage ?? "" })
                    Self.appendCompletionBinds(work.completions + endings.map(Self.completion), to: &binds)
                    binds.append(self.schema.insertChannel)
                    // The attempt deltas ($34) are bound as bigint[]; complete_jobs takes integer[].
                    sql = """
                        CALL \(s).workflow_end_committed(\(Self.placeholders(1...33)), $34::integer[], $35, $36, $37,
                                                         NULL, NULL)
                        """
                }
                return try await self.withConnection { [binds] connection in
                    let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                    let held = try await Self.decodeHeld(rows)
                    return WorkflowCommitResult(fenced: work.leases.subtracting(held))
                }
            }
            return try await self.committed(logger: logger) { connection in
                try await self.commitAll(work, on: connection, logger: logger)
            }
        }
    }

    /// `$a, $a+1, …, $b`.
    private static func placeholders(_ range: ClosedRange<Int>) -> String {
        range.map { "$\($0)" }.joined(separator: ", ")
    }

    /// The job's result for a run that ended.
    private static func completion(for ending: WorkflowRunEnding) -> JobCompletion {
        JobCompletion(
            lease: ending.lease,
            transition: .workflowEnded(cancelled: ending.status == .cancelled, message: ending.errorMessage),
            durationMicroseconds: ending.durationMicroseconds
        )
    }

    private static func decodeHeld(_ rows: PostgresRowSequence) async throws -> Set<JobLease> {
        var held = Set<JobLease>()
        for try await (ids, tokens) in rows.decode(([Int64]?, [Int64]?).self) {
            for (id, token) in zip(ids ?? [], tokens ?? []) {
                held.insert(JobLease(id: JobID(id), token: token))
            }
        }
        return held
    }

    private func commitAll(
        _ work: WorkflowUnitOfWork,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> WorkflowCommitResult {
        let held = try await self.lockAndStoreSteps(work, on: connection, logger: logger)
        let fenced = work.leases.subtracting(held)
        var conflicting = Set<WorkflowRunID>()
        let children = work.childStarts.filter { held.contains($0.lease) }
        if !children.isEmpty {
            let inserted = try await self.insertRuns(children.map(\.run), notify: true, on: connection, logger: logger)
            for (start, result) in zip(children, inserted) where result.started.isExisting {
                if result.parentID != start.run.parentID { conflicting.insert(start.run.id) }
            }
        }
        // Endings first: a parent suspending in this batch then sees its child's end (its check comes after, in
        // this transaction), and a child suspending below a parent cancelled in this batch sees the cancel.
        let endings = work.endings.filter { held.contains($0.lease) }
        var completions = work.completions.filter { held.contains($0.lease) }
        if !endings.isEmpty {
            try await self.end(endings, on: connection, logger: logger)
            completions += endings.map(Self.completion)
        }
        let suspensions = work.suspensions.filter { held.contains($0.lease) }
        var wakeAfter: [WorkflowRunID: Duration] = [:]
        if !suspensions.isEmpty {
            let decided = try await self.suspend(suspensions, on: connection, logger: logger)
            var cancelled: [WorkflowRunEnding] = []
            for suspension in suspensions {
                guard let decision = decided[suspension.runID] else { continue }
                if decision.cancelled {
                    cancelled.append(
                        WorkflowRunEnding(
                            lease: suspension.lease,
                            runID: suspension.runID,
                            status: .cancelled,
                            errorCode: "CANCELLED",
                            errorMessage: "cancelled by a client",
                            durationMicroseconds: suspension.durationMicroseconds
                        )
                    )
                } else {
                    if decision.hasTimer { wakeAfter[suspension.runID] = decision.runAfter }
                    completions.append(
                        JobCompletion(
                            lease: suspension.lease,
                            transition: .suspended(runAfter: decision.runAfter),
                            durationMicroseconds: suspension.durationMicroseconds
                        )
                    )
                }
            }
            if !cancelled.isEmpty {
                try await self.end(cancelled, on: connection, logger: logger)
                completions += cancelled.map(Self.completion)
            }
        }
        if !completions.isEmpty {
            _ = try await self.complete(completions, on: connection, logger: logger)
        }
        return WorkflowCommitResult(fenced: fenced, conflictingChildren: conflicting, wakeAfter: wakeAfter)
    }

    /// Locks the rows of the jobs whose leases `work` presents, stores the steps of those still held, and marks
    /// the signals they received; returns the leases held.
    private func lockAndStoreSteps(
        _ work: WorkflowUnitOfWork,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Set<JobLease> {
        let s = self.schema.quoted
        let binds = self.stepBinds(work)
        // The fence and the insert, in a function of migration 8 (its comment says how they lock).
        let sql = """
            SELECT * FROM \(s).workflow_store_steps(\(Self.placeholders(1...18)))
            """
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        return try await Self.decodeHeld(rows)
    }

    /// The 18 binds of workflow_store_steps: the leases `work` presents, then its steps as parallel arrays.
    private func stepBinds(_ work: WorkflowUnitOfWork) -> PostgresBindings {
        let leases = Array(work.leases)
        let steps = work.steps
        var binds = PostgresBindings(capacity: 35)
        binds.append(leases.map(\.id.rawValue))
        binds.append(leases.map(\.token))
        binds.append(steps.map(\.lease.id.rawValue))
        binds.append(steps.map(\.lease.token))
        binds.append(steps.map(\.runID.rawValue))
        binds.append(steps.map(\.name))
        binds.append(steps.map { Int32(clamping: $0.position) })
        binds.append(steps.map(\.kind.rawValue))
        binds.append(steps.map(\.status.rawValue))
        binds.append(steps.map { $0.outputJSON ?? "" })
        binds.append(steps.map { $0.errorCode ?? "" })
        binds.append(steps.map { $0.errorMessage ?? "" })
        binds.append(steps.map { Int32(clamping: $0.attempts) })
        binds.append(steps.map(\.concurrent))
        binds.append(steps.map { $0.waitFor ?? "" })
        binds.append(steps.map { $0.wakeAfter?.wholeMilliseconds ?? -1 })
        binds.append(steps.map(\.durationMicroseconds))
        binds.append(steps.map { $0.receivedSignal ?? 0 })
        return binds
    }

    private struct SuspensionDecision {
        var runAfter: Duration
        var cancelled: Bool
        /// The run wakes by a timer of its own (not only by a signal, a child or a version).
        var hasTimer: Bool
    }

    /// Marks runs as waiting and decides when each one's job runs again.
    private func suspend(
        _ suspensions: [WorkflowSuspension],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [WorkflowRunID: SuspensionDecision] {
        let s = self.schema.quoted
        var binds = PostgresBindings()
        binds.append(suspensions.map(\.runID.rawValue))
        binds.append(suspensions.map(\.waitsForVersion))
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    UPDATE \(s).workflow_runs r
                    SET status = 'waiting', waits_for_version = u.for_version, updated_at = now()
                    FROM unnest($1::text[], $2::boolean[]) AS u(run_id, for_version)
                    WHERE r.id = u.run_id AND r.status IN ('running', 'waiting')
                    """,
                binds: binds
            ),
            logger: logger
        )
        // A statement of its own, after the job rows were locked: it sees every signal and child end committed
        // before this transaction locked them, and those that commit later find the job scheduled and wake it.
        var check = PostgresBindings()
        check.append(suspensions.map(\.runID.rawValue))
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT r.id, r.queue, r.cancel_requested_at IS NOT NULL,
                           EXISTS (SELECT 1
                                   FROM \(s).workflow_steps w
                                   JOIN \(s).workflow_signals g
                                        ON g.run_id = w.run_id AND g.name = w.wait_for AND g.received_at IS NULL
                                   WHERE w.run_id = r.id AND w.kind = 'signal' AND w.status = 'waiting')
                           OR EXISTS (SELECT 1
                                      FROM \(s).workflow_steps w
                                      JOIN \(s).workflow_runs c ON c.id = w.wait_for
                                      WHERE w.run_id = r.id AND w.kind = 'child' AND w.status = 'waiting'
                                        AND c.status IN ('completed', 'failed', 'cancelled')),
                           ceil(extract(epoch FROM least(
                               (SELECT min(w.wake_at) FROM \(s).workflow_steps w
                                WHERE w.run_id = r.id AND w.status = 'waiting' AND w.wake_at IS NOT NULL),
                               r.deadline) - now()) * 1000)::bigint
                    FROM \(s).workflow_runs r
                    WHERE r.id = ANY($1::text[])
                    """,
                binds: check
            ),
            logger: logger
        )
        var decided: [WorkflowRunID: SuspensionDecision] = [:]
        let forVersion = Dictionary(
            suspensions.map { ($0.runID, $0.waitsForVersion) },
            uniquingKeysWith: { first, _ in first }
        )
        var runnableQueues: Set<String> = []
        for try await (id, queue, cancelled, ready, wakeMilliseconds) in rows.decode(
            (String, String, Bool, Bool, Int64?).self
        ) {
            let runID = WorkflowRunID(id)
            let runAfter: Duration
            let waitsForVersion = forVersion[runID] == true
            // A run waiting for its version is woken by a worker that has it, never by a signal.
            let ready = ready && !waitsForVersion
            let hasTimer = ready || (!waitsForVersion && wakeMilliseconds != nil)
            if ready {
                runAfter = .zero
            } else if !hasTimer {
                // Nothing but a signal, a child or a worker with the version wakes it.
                runAfter = .seconds(Int64(RetryPolicy.longestDelaySeconds))
            } else {
                runAfter = .milliseconds(max(0, wakeMilliseconds ?? 0))
            }
            decided[runID] = SuspensionDecision(runAfter: runAfter, cancelled: cancelled, hasTimer: hasTimer)
            if runAfter == .zero, !cancelled { runnableQueues.insert(queue) }
        }
        // A run that is runnable at once (a signal or child end came first, or its timer is due) wakes the workers
        // of its queue when this commits; without that it would wait for a poll.
        if !runnableQueues.isEmpty {
            try await self.notify(queues: runnableQueues.sorted(), on: connection, logger: logger)
        }
        return decided
    }

    /// Records the end of runs and wakes their waiting parents; a cancelled run's unfinished children are
    /// cancelled with it.
    private func end(_ endings: [WorkflowRunEnding], on connection: PostgresConnection, logger: Logger) async throws {
        let s = self.schema.quoted
        var binds = PostgresBindings()
        binds.append(endings.map(\.runID.rawValue))
        binds.append(endings.map(\.status.rawValue))
        binds.append(endings.map { $0.outputJSON ?? "" })
        binds.append(endings.map { $0.errorCode ?? "" })
        binds.append(endings.map { $0.errorMessage ?? "" })
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT * FROM \(s).workflow_end_runs($1, $2, $3, $4, $5)", binds: binds),
            logger: logger
        )
        var parents: [String] = []
        var cancelled: [String] = []
        for try await (parent, id, status) in rows.decode((String?, String, String).self) {
            if let parent { parents.append(parent) }
            if status == WorkflowRunStatus.cancelled.rawValue { cancelled.append(id) }
        }
        if !cancelled.isEmpty {
            try await self.cancelTree(below: cancelled, on: connection, logger: logger)
        }
        if !parents.isEmpty {
            try await self.wake(runs: parents, on: connection, logger: logger)
        }
    }

    /// Makes the jobs of suspended runs runnable (workflow_wake, migration 8: it locks them first).
    private func wake(runs: [String], on connection: PostgresConnection, logger: Logger) async throws {
        var binds = PostgresBindings()
        binds.append(runs)
        binds.append(self.schema.insertChannel)
        try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(self.schema.quoted).workflow_wake($1, $2)", binds: binds),
            logger: logger
        )
    }

    /// Cancels the unfinished runs below `roots` (workflow_cancel_below, migration 8).
    private func cancelTree(below roots: [String], on connection: PostgresConnection, logger: Logger) async throws {
        var binds = PostgresBindings()
        binds.append(roots)
        try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(self.schema.quoted).workflow_cancel_below($1)", binds: binds),
            logger: logger
        )
    }

    /// The completion statement, inside the connection's transaction.
    func complete(
        _ completions: [JobCompletion],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [JobID] {
        // complete_jobs itself (the statement of the completer is a procedure that commits on its own).
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT array_agg(id) FROM \(self.schema.quoted).complete_jobs(
                        $1, $2, $3, $4, $5, $6, $7, $8, $9::integer[], $10, $11) AS id
                    """,
                binds: Self.completionBinds(completions)
            ),
            logger: logger
        )
        var written: [JobID] = []
        for try await ids in rows.decode([Int64]?.self) {
            written += (ids ?? []).map { JobID($0) }
        }
        return written
    }

    // MARK: Signals, cancel, versions

    public func signal(
        _ id: WorkflowRunID,
        name: String,
        payloadJSON: String,
        by performer: String?,
        logger: Logger
    ) async throws {
        try await self.run("signalling workflow run \(id)") {
            let s = self.schema.quoted
            try await self.committed(logger: logger) { connection in
                var binds = PostgresBindings()
                binds.append(id.rawValue)
                // The run's job row is locked before the signal is stored (see the locking note above).
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT r.status
                            FROM \(s).workflow_runs r
                            JOIN \(s).jobs j ON j.id = r.job_id
                            WHERE r.id = $1
                            FOR NO KEY UPDATE OF j
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                var status: String?
                for try await value in rows.decode(String.self) { status = value }
                guard let status else {
                    throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)")
                }
                guard let parsed = WorkflowRunStatus(rawValue: status), !parsed.isFinished else {
                    throw ConveyorError(
                        .invalidWorkflowState,
                        "workflow run \(id) is \(status); signals reach only runs that have not ended"
                    )
                }
                var insert = PostgresBindings()
                insert.append(id.rawValue)
                insert.append(name)
                insert.append(payloadJSON)
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).workflow_signals (run_id, name, payload) VALUES ($1, $2, $3::jsonb)
                            """,
                        binds: insert
                    ),
                    logger: logger
                )
                try await self.wake(runs: [id.rawValue], on: connection, logger: logger)
                try await self.recordEvent(
                    .workflow(id),
                    .signalled,
                    from: status,
                    to: nil,
                    by: performer,
                    details: ["name": name],
                    on: connection,
                    logger: logger
                )
            }
        }
    }

    public func cancelWorkflowRun(
        _ id: WorkflowRunID,
        by performer: String?,
        logger: Logger
    ) async throws
        -> WorkflowRunRecord
    {
        try await self.run("cancelling workflow run \(id)") {
            let s = self.schema.quoted
            return try await self.committed(logger: logger) { connection in
                var binds = PostgresBindings()
                binds.append(id.rawValue)
                // The job row is locked first (see the locking note above), then the run and job are read again
                // in a statement of their own: one that just ended while this waited for the lock is seen ended.
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT j.id FROM \(s).jobs j
                            WHERE j.id = (SELECT r.job_id FROM \(s).workflow_runs r WHERE r.id = $1)
                            FOR NO KEY UPDATE
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                let rows = try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT r.status, j.state, r.parent_id
                            FROM \(s).workflow_runs r
                            JOIN \(s).jobs j ON j.id = r.job_id
                            WHERE r.id = $1
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                var found: (status: String, jobState: String, parent: String?)?
                for try await row in rows.decode((String, String, String?).self) { found = row }
                guard let found else { throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)") }
                if let status = WorkflowRunStatus(rawValue: found.status), !status.isFinished {
                    let running = found.jobState == JobState.running.rawValue
                    try await connection.query(
                        PostgresQuery(
                            unsafeSQL: """
                                WITH run AS (
                                    UPDATE \(s).workflow_runs r
                                    SET cancel_requested_at = coalesce(r.cancel_requested_at, now()),
                                        updated_at = now(),
                                        status = CASE WHEN $2 THEN r.status ELSE 'cancelled' END,
                                        finished_at = CASE WHEN $2 THEN NULL ELSE now() END,
                                        error_code = CASE WHEN $2 THEN NULL ELSE 'CANCELLED' END,
                                        error_message = CASE WHEN $2 THEN NULL ELSE 'cancelled by a client' END
                                    WHERE r.id = $1 AND r.status IN ('running', 'waiting')
                                    RETURNING r.job_id
                                )
                                UPDATE \(s).jobs j
                                SET cancel_requested_at = coalesce(j.cancel_requested_at, now()),
                                    state = CASE WHEN $2 THEN j.state ELSE 'cancelled' END,
                                    finished_at = CASE WHEN $2 THEN j.finished_at ELSE now() END
                                FROM run
                                WHERE j.id = run.job_id
                                """,
                            binds: {
                                var b = PostgresBindings()
                                b.append(id.rawValue)
                                b.append(running)
                                return b
                            }()
                        ),
                        logger: logger
                    )
                    try await self.recordEvent(
                        .workflow(id),
                        running ? .cancelRequested : .cancelled,
                        from: found.status,
                        to: running ? found.status : WorkflowRunStatus.cancelled.rawValue,
                        by: performer,
                        on: connection,
                        logger: logger
                    )
                    if !running {
                        try await self.cancelTree(below: [id.rawValue], on: connection, logger: logger)
                        if let parent = found.parent {
                            try await self.wake(runs: [parent], on: connection, logger: logger)
                        }
                    }
                }
                guard let record = try await self.workflowRun(id, on: connection, logger: logger) else {
                    throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)")
                }
                return record
            }
        }
    }

    public func forkWorkflowRun(
        _ id: WorkflowRunID,
        fromStep step: String,
        newID: WorkflowRunID,
        by performer: String?,
        logger: Logger
    ) async throws -> StartedWorkflowRun {
        try await self.run("forking workflow run \(id)") {
            let s = self.schema.quoted
            return try await self.committed(logger: logger) { connection in
                guard let origin = try await self.workflowRun(id, on: connection, logger: logger) else {
                    throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)")
                }
                guard let from = origin.steps.first(where: { $0.name == step }) else {
                    throw ConveyorError(.stepNotFound, "workflow run \(id) has no stored step \(step)")
                }
                let run = NewWorkflowRun(
                    id: newID,
                    name: origin.name,
                    version: origin.version,
                    namespace: origin.namespace,
                    queue: origin.queue,
                    inputJSON: origin.inputJSON,
                    deadline: origin.deadline,
                    forkedFrom: id,
                    forkedAtStep: step
                )
                guard let started = try await self.insertRuns([run], notify: true, on: connection, logger: logger).first
                else {
                    throw ConveyorError(.databaseError, "the fork was not inserted")
                }
                if started.started.isExisting {
                    throw ConveyorError(.duplicateJob, "a workflow run with id \(newID) exists")
                }
                // The copied steps are the ended ones before the step (markers of `patched` included), so the new
                // run replays them and runs the step and everything after it again.
                var binds = PostgresBindings()
                binds.append(id.rawValue)
                binds.append(newID.rawValue)
                binds.append(Int32(clamping: from.position))
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \(s).workflow_steps (run_id, name, position, kind, status, output, error_code,
                                                            error_message, attempts, concurrent, wait_for, wake_at,
                                                            started_at, finished_at)
                            SELECT $2, w.name, w.position, w.kind, w.status, w.output, w.error_code, w.error_message,
                                   w.attempts, w.concurrent, w.wait_for, w.wake_at, w.started_at, w.finished_at
                            FROM \(s).workflow_steps w
                            WHERE w.run_id = $1 AND w.position < $3 AND w.status <> 'waiting'
                            """,
                        binds: binds
                    ),
                    logger: logger
                )
                try await self.recordEvent(
                    .workflow(id),
                    .forked,
                    from: nil,
                    to: nil,
                    by: performer,
                    details: ["fork": newID.rawValue, "step": step],
                    on: connection,
                    logger: logger
                )
                return started.started
            }
        }
    }

    public func resumeWorkflowRuns(waitingFor versions: [WorkflowVersion], logger: Logger) async throws -> Int {
        guard !versions.isEmpty else { return 0 }
        return try await self.run("resuming workflow runs waiting for their version") {
            let s = self.schema.quoted
            var binds = PostgresBindings()
            binds.append(versions.map(\.name))
            binds.append(versions.map { Int32(clamping: $0.version) })
            binds.append(self.schema.insertChannel)
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        WITH runs AS (
                            UPDATE \(s).workflow_runs r
                            SET waits_for_version = false, updated_at = now()
                            FROM unnest($1::text[], $2::integer[]) AS v(name, version)
                            WHERE r.waits_for_version AND r.name = v.name AND r.version = v.version
                            RETURNING r.job_id
                        ),
                        woken AS (
                            UPDATE \(s).jobs j
                            SET state = 'available', run_at = now()
                            FROM runs
                            WHERE j.id = runs.job_id AND j.state = 'scheduled'
                            RETURNING j.queue
                        )
                        SELECT (SELECT count(*) FROM woken),
                               (SELECT count(pg_notify($3, q.queue)) FROM (SELECT DISTINCT w.queue FROM woken w) q)
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var woken = 0
            for try await (count, _) in rows.decode((Int64, Int64).self) { woken = Int(count) }
            return woken
        }
    }

    // MARK: Inspection

    public func workflowRun(_ id: WorkflowRunID, logger: Logger) async throws -> WorkflowRunRecord? {
        try await self.run("reading workflow run \(id)") {
            try await self.withConnection { connection in
                try await self.workflowRun(id, on: connection, logger: logger)
            }
        }
    }

    /// The columns of a run record; a waiting run whose job is runnable again is reported as running.
    private var runColumns: String {
        """
        r.id, r.name, r.version, r.namespace, r.queue,
        CASE WHEN r.status = 'waiting' AND NOT r.waits_for_version AND j.state IN ('available', 'running')
             THEN 'running' ELSE r.status END,
        r.input::text, r.output::text, r.error_code, r.error_message, r.job_id, r.parent_id, r.forked_from,
        r.forked_at_step, r.deadline, r.waits_for_version, r.cancel_requested_at, r.created_at, r.updated_at,
        r.finished_at, r.seq
        """
    }

    private func workflowRun(
        _ id: WorkflowRunID,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> WorkflowRunRecord? {
        let s = self.schema.quoted
        var binds = PostgresBindings()
        binds.append(id.rawValue)
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT \(self.runColumns)
                    FROM \(s).workflow_runs r LEFT JOIN \(s).jobs j ON j.id = r.job_id
                    WHERE r.id = $1
                    """,
                binds: binds
            ),
            logger: logger
        )
        guard var run = try await Self.decodeRuns(rows).first?.record else { return nil }
        let steps = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT name, position, kind, status, attempts, output::text,
                           coalesce(octet_length(output::text), 0), error_code, error_message, wait_for, wake_at,
                           started_at, finished_at
                    FROM \(s).workflow_steps
                    WHERE run_id = $1
                    ORDER BY position, started_at
                    """,
                binds: binds
            ),
            logger: logger
        )
        for try await row in steps {
            let c = row.makeRandomAccess()
            run.steps.append(
                WorkflowStepRecord(
                    name: try c[0].decode(String.self),
                    position: Int(try c[1].decode(Int32.self)),
                    kind: WorkflowStepKind(rawValue: try c[2].decode(String.self)) ?? .step,
                    status: WorkflowStepStatus(rawValue: try c[3].decode(String.self)) ?? .failed,
                    attempts: Int(try c[4].decode(Int32.self)),
                    outputJSON: try c[5].decode(String?.self),
                    outputBytes: Int(try c[6].decode(Int32.self)),
                    errorCode: try c[7].decode(String?.self),
                    errorMessage: try c[8].decode(String?.self),
                    waitFor: try c[9].decode(String?.self),
                    wakeAt: try c[10].decode(Date?.self),
                    startedAt: try c[11].decode(Date.self),
                    finishedAt: try c[12].decode(Date?.self)
                )
            )
        }
        return run
    }

    public func workflowRuns(matching filter: WorkflowRunFilter, logger: Logger) async throws -> WorkflowRunPage {
        guard (1...1000).contains(filter.limit) else {
            throw ConveyorError(.invalidFilter, "limit must be between 1 and 1000, got \(filter.limit)")
        }
        var before: Int64?
        if let cursor = filter.cursor {
            guard cursor.hasPrefix("w"), let value = Int64(cursor.dropFirst()), value > 0 else {
                throw ConveyorError(.invalidFilter, "cursor is not one returned by a previous page")
            }
            before = value
        }
        return try await self.run("listing workflow runs") {
            let s = self.schema.quoted
            var binds = PostgresBindings()
            binds.append(filter.statuses.map(\.rawValue))
            binds.append(filter.name)
            binds.append(filter.namespace)
            binds.append(filter.parentID?.rawValue)
            binds.append(before)
            binds.append(filter.limit + 1)
            let rows = try await self.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT \(self.runColumns)
                        FROM \(s).workflow_runs r LEFT JOIN \(s).jobs j ON j.id = r.job_id
                        WHERE (cardinality($1::text[]) = 0 OR r.status = ANY($1::text[]))
                          AND ($2::text IS NULL OR r.name = $2)
                          AND ($3::text IS NULL OR r.namespace = $3)
                          AND ($4::text IS NULL OR r.parent_id = $4)
                          AND ($5::bigint IS NULL OR r.seq < $5)
                        ORDER BY r.seq DESC
                        LIMIT $6
                        """,
                    binds: binds
                ),
                logger: logger
            )
            var runs = try await Self.decodeRuns(rows)
            var next: String?
            if runs.count > filter.limit {
                runs.removeLast()
                next = runs.last.map { "w\($0.seq)" }
            }
            return WorkflowRunPage(runs: runs.map(\.record), nextCursor: next)
        }
    }

    private static func decodeRuns(
        _ rows: PostgresRowSequence
    ) async throws -> [(record: WorkflowRunRecord, seq: Int64)] {
        var runs: [(record: WorkflowRunRecord, seq: Int64)] = []
        for try await row in rows {
            let c = row.makeRandomAccess()
            let id = try c[0].decode(String.self)
            let status = try c[5].decode(String.self)
            let parent = try c[11].decode(String?.self)
            let forkedFrom = try c[12].decode(String?.self)
            let record = WorkflowRunRecord(
                id: WorkflowRunID(id),
                name: try c[1].decode(String.self),
                version: Int(try c[2].decode(Int32.self)),
                namespace: try c[3].decode(String.self),
                queue: try c[4].decode(String.self),
                status: WorkflowRunStatus(rawValue: status) ?? .running,
                inputJSON: try c[6].decode(String.self),
                outputJSON: try c[7].decode(String?.self),
                errorCode: try c[8].decode(String?.self),
                errorMessage: try c[9].decode(String?.self),
                jobID: JobID(try c[10].decode(Int64.self)),
                parentID: parent.map { WorkflowRunID($0) },
                forkedFrom: forkedFrom.map { WorkflowRunID($0) },
                forkedAtStep: try c[13].decode(String?.self),
                deadline: try c[14].decode(Date?.self),
                waitsForVersion: try c[15].decode(Bool.self),
                cancelRequestedAt: try c[16].decode(Date?.self),
                createdAt: try c[17].decode(Date.self),
                updatedAt: try c[18].decode(Date.self),
                finishedAt: try c[19].decode(Date?.self),
                steps: []
            )
            runs.append((record, try c[20].decode(Int64.self)))
        }
        return runs
    }
}
