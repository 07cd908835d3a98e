import Conveyor
import ConveyorCore
import Foundation
import HTTPTypes
import Prometheus

extension ConveyorAdminAPI {
    /// Every route, in the order `/openapi.json` lists them.
    static let routeTable: [Route] = [
        Route(
            method: .get,
            path: "/health",
            operationID: "health",
            summary: "Liveness: the server answers.",
            tag: "system",
            isPublic: true,
            handler: { _ in .ok(["status": "ok"]) }
        ),
        Route(
            method: .get,
            path: "/ready",
            operationID: "ready",
            summary: "Readiness: the database answers and its schema has exactly the migrations this build knows.",
            tag: "system",
            isPublic: true,
            handler: Self.ready
        ),
        Route(
            method: .get,
            path: "/openapi.json",
            operationID: "openapi",
            summary: "This API as an OpenAPI 3 document, built from the table its routes are registered from.",
            tag: "system",
            handler: { call in .ok(ConveyorAdminAPI.openAPIDocument(basePath: call.api.configuration.mountPath)) }
        ),
        Route(
            method: .get,
            path: "/jobs",
            operationID: "listJobs",
            summary: "Jobs newest first, filtered by state, queue, kind, namespace, tag and creation time.",
            tag: "jobs",
            handler: Self.listJobs
        ),
        Route(
            method: .post,
            path: "/jobs",
            operationID: "enqueueJob",
            summary: "Enqueue a job.",
            tag: "jobs",
            handler: Self.enqueue
        ),
        Route(
            method: .get,
            path: "/jobs/{id}",
            operationID: "getJob",
            summary: "A job with its attempts.",
            tag: "jobs",
            handler: { call in .ok(APIJSON.job(try await Self.job(call))) }
        ),
        Route(
            method: .get,
            path: "/jobs/{id}/timeline",
            operationID: "getJobTimeline",
            summary: "Every attempt, state change and operator action of a job, in order.",
            tag: "jobs",
            handler: { call in .ok(APIJSON.timeline(try await call.client.jobs.timeline(try call.jobID()))) }
        ),
        Route(
            method: .get,
            path: "/jobs/{id}/explain",
            operationID: "explainJob",
            summary: "Why the job is in its state and what happens next.",
            tag: "jobs",
            handler: { call in .ok(APIJSON.explanation(try await call.client.jobs.explain(try call.jobID()))) }
        ),
        Route(
            method: .post,
            path: "/jobs/{id}/cancel",
            operationID: "cancelJob",
            summary: "Cancel a job (a running one is asked to stop at its next heartbeat).",
            tag: "jobs",
            handler: { call in
                .ok(APIJSON.job(try await call.client.jobs.cancel(try call.jobID(), by: call.performer)))
            }
        ),
        Route(
            method: .post,
            path: "/jobs/{id}/retry",
            operationID: "retryJob",
            summary: "Make a dead-lettered or cancelled job available again, with one more attempt.",
            tag: "jobs",
            handler: { call in
                .ok(APIJSON.job(try await call.client.jobs.retry(try call.jobID(), by: call.performer)))
            }
        ),
        Route(
            method: .post,
            path: "/jobs/{id}/replay",
            operationID: "replayJob",
            summary: "Enqueue a copy of a finished job that points back at it.",
            tag: "jobs",
            handler: { call in
                let id = try call.jobID()
                let replay = try await call.client.jobs.replay(id, by: call.performer)
                return APIResponse(status: .created, body: ["id": replay.id.rawValue, "replay_of": id.rawValue])
            }
        ),
        Route(
            method: .get,
            path: "/dlq",
            operationID: "listDeadLetters",
            summary: "The dead-letter queue: counts per reason, and the jobs newest first.",
            tag: "jobs",
            handler: Self.deadLetters
        ),
        Route(
            method: .get,
            path: "/queues",
            operationID: "listQueues",
            summary: "Queues with their waiting, running and dead-lettered counts and pause records.",
            tag: "queues",
            handler: Self.queues
        ),
        Route(
            method: .post,
            path: "/queues/{name}/pause",
            operationID: "pauseQueue",
            summary: "Stop every worker from fetching from the queue.",
            tag: "queues",
            handler: { call in try await Self.setPaused(call, true) }
        ),
        Route(
            method: .post,
            path: "/queues/{name}/resume",
            operationID: "resumeQueue",
            summary: "Let workers fetch from the queue again.",
            tag: "queues",
            handler: { call in try await Self.setPaused(call, false) }
        ),
        Route(
            method: .put,
            path: "/queues/{name}/concurrency",
            operationID: "setQueueConcurrency",
            summary: "Let at most max_running jobs of the queue be leased at once across every worker.",
            tag: "queues",
            handler: { call in
                guard let maxRunning = try call.bodyObject().int("max_running") else {
                    throw ConveyorHTTPError.malformed("max_running is required")
                }
                return try await Self.setConcurrency(call, maxRunning)
            }
        ),
        Route(
            method: .delete,
            path: "/queues/{name}/concurrency",
            operationID: "removeQueueConcurrency",
            summary: "Remove the queue's concurrency limit.",
            tag: "queues",
            handler: { call in try await Self.setConcurrency(call, nil) }
        ),
        Route(
            method: .put,
            path: "/queues/{name}/fairness",
            operationID: "setQueueFairness",
            summary: "Share the queue's fetches among tenants by weight (fair: true), or serve it first-come.",
            tag: "queues",
            handler: Self.setFairness
        ),
        Route(
            method: .get,
            path: "/tenants",
            operationID: "listTenants",
            summary: "Tenants (namespaces with settings) with their weights.",
            tag: "tenants",
            handler: { call in .ok(["tenants": try await call.client.tenants.list().map(APIJSON.tenant)]) }
        ),
        Route(
            method: .put,
            path: "/tenants/{name}",
            operationID: "setTenant",
            summary: "Create or replace a tenant's settings.",
            tag: "tenants",
            handler: Self.setTenant
        ),
        Route(
            method: .put,
            path: "/tenants/{name}/concurrency",
            operationID: "setTenantConcurrency",
            summary: "Let at most max_running jobs of the tenant be leased at once across every queue and worker.",
            tag: "tenants",
            handler: { call in
                guard let maxRunning = try call.bodyObject().int("max_running") else {
                    throw ConveyorHTTPError.malformed("max_running is required")
                }
                return try await Self.setTenantConcurrency(call, maxRunning)
            }
        ),
        Route(
            method: .delete,
            path: "/tenants/{name}/concurrency",
            operationID: "removeTenantConcurrency",
            summary: "Remove the tenant's concurrency limit.",
            tag: "tenants",
            handler: { call in try await Self.setTenantConcurrency(call, nil) }
        ),
        Route(
            method: .delete,
            path: "/tenants/{name}",
            operationID: "removeTenant",
            summary: "Remove a tenant's settings: its namespace has the defaults again.",
            tag: "tenants",
            handler: Self.removeTenant
        ),
        Route(
            method: .get,
            path: "/workers",
            operationID: "listWorkers",
            summary: "Live worker processes with their queues, slots, kinds and last heartbeat.",
            tag: "system",
            handler: { call in .ok(["workers": try await call.client.workers.list().map(APIJSON.worker)]) }
        ),
        Route(
            method: .get,
            path: "/pools",
            operationID: "listPools",
            summary: "Worker pools with their live workers, slots, running jobs and pause records.",
            tag: "system",
            handler: { call in .ok(["pools": try await call.client.pools.list().map(APIJSON.pool)]) }
        ),
        Route(
            method: .post,
            path: "/pools/{name}/pause",
            operationID: "pausePool",
            summary: "Stop the pool's workers from fetching, from their next heartbeat on.",
            tag: "system",
            handler: { call in try await Self.setPoolPaused(call, true) }
        ),
        Route(
            method: .post,
            path: "/pools/{name}/resume",
            operationID: "resumePool",
            summary: "Let the pool's workers fetch again.",
            tag: "system",
            handler: { call in try await Self.setPoolPaused(call, false) }
        ),
        Route(
            method: .get,
            path: "/workflows",
            operationID: "listWorkflows",
            summary: "Workflow runs newest first, filtered by status, name and namespace.",
            tag: "workflows",
            handler: Self.listRuns
        ),
        Route(
            method: .get,
            path: "/workflows/{id}",
            operationID: "getWorkflow",
            summary: "A workflow run with its steps and events.",
            tag: "workflows",
            handler: Self.run
        ),
        Route(
            method: .get,
            path: "/workflows/{id}/explain",
            operationID: "explainWorkflow",
            summary: "Why the run is in its state: what it waits for, or how it ended.",
            tag: "workflows",
            handler: { call in
                .ok(
                    APIJSON.explanation(
                        try await call.client.workflows.explain(WorkflowRunID(try call.parameter("id")))
                    )
                )
            }
        ),
        Route(
            method: .post,
            path: "/workflows/{id}/signal",
            operationID: "signalWorkflow",
            summary: "Send a signal with a JSON payload to a run.",
            tag: "workflows",
            handler: Self.signal
        ),
        Route(
            method: .post,
            path: "/workflows/{id}/cancel",
            operationID: "cancelWorkflow",
            summary: "Cancel a run and its unfinished children.",
            tag: "workflows",
            handler: { call in
                let id = WorkflowRunID(try call.parameter("id"))
                return .ok(APIJSON.run(try await call.client.workflows.cancel(id, by: call.performer)))
            }
        ),
        Route(
            method: .post,
            path: "/workflows/{id}/fork",
            operationID: "forkWorkflow",
            summary: "Start a new run that reuses the stored steps before a named one.",
            tag: "workflows",
            handler: Self.fork
        ),
        Route(
            method: .post,
            path: "/dlq/retry",
            operationID: "retryDeadLetters",
            summary: "Retry the dead-lettered jobs that match a filter; dry_run counts them first.",
            tag: "jobs",
            handler: { call in try await Self.bulk(call, .retry) }
        ),
        Route(
            method: .post,
            path: "/dlq/discard",
            operationID: "discardDeadLetters",
            summary: "Delete the dead-lettered jobs that match a filter; dry_run counts them first.",
            tag: "jobs",
            handler: { call in try await Self.bulk(call, .discard) }
        ),
        Route(
            method: .get,
            path: "/metrics",
            operationID: "metrics",
            summary: "Per queue: depth, running, jobs/s, success and retry rates, start latency over the last minute.",
            tag: "system",
            handler: Self.metrics
        ),
        Route(
            method: .get,
            path: "/metrics/prom",
            operationID: "prometheusMetrics",
            summary: "Prometheus text: the swift-metrics registry and gauges from cheap queries.",
            tag: "system",
            handler: Self.prometheus
        ),
        Route(
            method: .get,
            path: "/ingest/decisions",
            operationID: "listIngestDecisions",
            summary: "Refused enqueues, newest first, with their code and reason.",
            tag: "guardrails",
            handler: Self.decisions
        ),
        Route(
            method: .get,
            path: "/limits",
            operationID: "listEnqueueLimits",
            summary: "Enqueue rate limits per queue and namespace.",
            tag: "guardrails",
            handler: { call in .ok(["limits": try await call.client.limits.list().map(APIJSON.limit)]) }
        ),
        Route(
            method: .put,
            path: "/limits/{scope}/{name}",
            operationID: "setEnqueueLimit",
            summary: "Create or replace the enqueue rate limit of a queue or namespace.",
            tag: "guardrails",
            handler: Self.setLimit
        ),
        Route(
            method: .delete,
            path: "/limits/{scope}/{name}",
            operationID: "removeEnqueueLimit",
            summary: "Remove the enqueue rate limit of a queue or namespace.",
            tag: "guardrails",
            handler: Self.removeLimit
        ),
        Route(
            method: .get,
            path: "/schedules",
            operationID: "listSchedules",
            summary: "Cron schedules by name, with their next and latest tick.",
            tag: "schedules",
            handler: { call in .ok(["schedules": try await call.client.schedules.list().map(APIJSON.schedule)]) }
        ),
        Route(
            method: .get,
            path: "/schedules/{name}",
            operationID: "getSchedule",
            summary: "A cron schedule with its events: definitions, pauses and resumptions.",
            tag: "schedules",
            handler: Self.getSchedule
        ),
        Route(
            method: .put,
            path: "/schedules/{name}",
            operationID: "defineSchedule",
            summary: "Create or replace a cron schedule; the same expression and time zone keep its next tick.",
            tag: "schedules",
            handler: Self.defineSchedule
        ),
        Route(
            method: .delete,
            path: "/schedules/{name}",
            operationID: "deleteSchedule",
            summary: "Remove a cron schedule; the jobs it enqueued stay.",
            tag: "schedules",
            handler: Self.deleteSchedule
        ),
        Route(
            method: .post,
            path: "/schedules/{name}/pause",
            operationID: "pauseSchedule",
            summary: "Stop enqueuing a schedule's ticks; those that pass while paused are skipped.",
            tag: "schedules",
            handler: { call in try await Self.setSchedulePaused(call, true) }
        ),
        Route(
            method: .post,
            path: "/schedules/{name}/resume",
            operationID: "resumeSchedule",
            summary: "Enqueue a schedule's ticks again, from its next tick after now.",
            tag: "schedules",
            handler: { call in try await Self.setSchedulePaused(call, false) }
        ),
    ]

    // MARK: Operations

    /// Queues with their counts and pause records, and what completed and failed in the last 60 s (from the
    /// metrics, read at most once per cache interval).
    private static func queues(_ call: Call) async throws -> APIResponse {
        async let metrics = call.api.metricsCache.queues(call.client)
        let queues = try await call.client.queues.list()
        let rates = Dictionary(try await metrics.map { ($0.queue, $0) }, uniquingKeysWith: { first, _ in first })
        return .ok([
            "queues": queues.map { queue -> [String: Any] in
                var body = APIJSON.queue(queue)
                body["completed_per_minute"] = Int(((rates[queue.name]?.completedPerSecond ?? 0) * 60).rounded())
                body["failed_per_minute"] = Int(((rates[queue.name]?.failedPerSecond ?? 0) * 60).rounded())
                return body
            }
        ])
    }

    private static func bulk(_ call: Call, _ action: DeadLetterAction) async throws -> APIResponse {
        let body = try call.bodyObject()
        var filter = JobFilter(
            queue: try body.string("queue"),
            kind: try body.string("kind"),
            namespace: try body.string("namespace"),
            tag: try body.string("tag"),
            createdAfter: try body.date("created_after"),
            createdBefore: try body.date("created_before")
        )
        if let reason = try body.string("reason") {
            filter.deadReason = try Self.filterValue(reason, "reason", as: DeadLetterReason.self)
        }
        let dryRun = try body.bool("dry_run") ?? false
        let limit = try body.int("limit") ?? 1000
        let matched = try await call.client.store.bulkDeadLetter(
            action,
            matching: filter,
            limit: limit,
            dryRun: dryRun,
            by: call.performer,
            logger: call.client.logger
        )
        return .ok(["action": action.rawValue, "dry_run": dryRun, "matched": matched])
    }

    private static func metrics(_ call: Call) async throws -> APIResponse {
        async let workers = call.client.workers.list()
        let queues = try await call.api.metricsCache.queues(call.client)
        return .ok([
            "queues": queues.map(APIJSON.metrics),
            "workers": try await workers.count,
            "generated_at": APIJSON.time(Date()),
        ])
    }

    private static func prometheus(_ call: Call) async throws -> APIResponse {
        async let workers = call.client.workers.list()
        async let deadLetters = call.api.metricsCache.value(call.client).deadLetters
        let queues = try await call.api.metricsCache.queues(call.client)
        var text: [UInt8] = []
        call.api.configuration.prometheus?.emit(into: &text)
        let reasons = try await deadLetters.sorted { $0.key.rawValue < $1.key.rawValue }.map {
            PrometheusText.DeadLetterReasonCount(reason: $0.key.rawValue, count: $0.value)
        }
        text += Array(
            PrometheusText.gauges(queues: queues, workers: try await workers.count, deadLetters: reasons).utf8
        )
        return .text(text, contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    private static func decisions(_ call: Call) async throws -> APIResponse {
        let filter = IngestDecisionFilter(
            code: try call.query.string("code"),
            queue: try call.query.string("queue"),
            namespace: try call.query.string("namespace"),
            limit: try call.query.limit(),
            cursor: try call.query.string("cursor")
        )
        let page = try await call.client.ingest.decisions(filter)
        return .ok([
            "decisions": page.decisions.map(APIJSON.decision), "next_cursor": APIJSON.optional(page.nextCursor),
        ])
    }

    private static func scope(_ call: Call) throws -> EnqueueLimit.Scope {
        let text = try call.parameter("scope")
        guard let scope = EnqueueLimit.Scope(rawValue: text) else {
            throw ConveyorHTTPError.parameter("a limit's scope is queue or namespace, got \(text.prefix(40))")
        }
        return scope
    }

    private static func setLimit(_ call: Call) async throws -> APIResponse {
        let body = try call.bodyObject()
        guard let perSecond = try body.double("per_second") else {
            throw ConveyorHTTPError.malformed("per_second is required")
        }
        guard let burst = try body.int("burst") else { throw ConveyorHTTPError.malformed("burst is required") }
        let limit = EnqueueLimit(
            scope: try Self.scope(call),
            name: try call.parameter("name"),
            perSecond: perSecond,
            burst: burst
        )
        try await call.client.limits.set(limit)
        return .ok(APIJSON.limit(limit))
    }

    private static func removeLimit(_ call: Call) async throws -> APIResponse {
        let scope = try Self.scope(call)
        let name = try call.parameter("name")
        guard try await call.client.limits.remove(scope: scope, name: name) else {
            throw ConveyorHTTPError(
                .notFound,
                code: ConveyorHTTPError.Code.notFound,
                "no enqueue limit on \(scope.rawValue) \(name.prefix(80))"
            )
        }
        return .ok(["removed": true, "scope": scope.rawValue, "name": name])
    }

    // MARK: Schedules

    private static func schedule(_ call: Call, _ name: String) async throws -> CronScheduleRecord {
        guard let record = try await call.client.schedules.get(name) else {
            throw ConveyorError(.scheduleNotFound, "no schedule is named \(name.prefix(128))")
        }
        return record
    }

    private static func getSchedule(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        async let events = call.client.schedules.events(name)
        var body = APIJSON.schedule(try await Self.schedule(call, name))
        body["events"] = try await events.map(APIJSON.event)
        return .ok(body)
    }

    private static func defineSchedule(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        let body = try call.bodyObject()
        var options = JobOptions()
        options.queue = try body.string("queue")
        options.namespace = try body.string("namespace")
        options.priority = try body.int("priority")
        options.maxAttempts = try body.int("max_attempts")
        if let timeout = try body.int("timeout_ms") { options.timeout = .milliseconds(timeout) }
        options.tags = try body.strings("tags")
        var catchUp = CronSchedule.CatchUp.latest
        if let text = try body.string("catch_up") {
            guard let value = CronSchedule.CatchUp(rawValue: text) else {
                throw ConveyorError(.invalidOption, "catch_up is none, latest or all, got \(text.prefix(40))")
            }
            catchUp = value
        }
        let schedule = try CronSchedule(
            name: name,
            cron: try body.requiredString("cron"),
            timeZone: try body.string("time_zone") ?? "UTC",
            kind: try body.requiredString("kind"),
            argumentsJSON: try body.json("args") ?? "{}",
            options: options,
            catchUp: catchUp
        )
        try await call.client.schedules.define(schedule, by: call.performer)
        return .ok(APIJSON.schedule(try await Self.schedule(call, name)))
    }

    private static func deleteSchedule(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        guard try await call.client.schedules.delete(name, by: call.performer) else {
            throw ConveyorError(.scheduleNotFound, "no schedule is named \(name.prefix(128))")
        }
        return .ok(["deleted": true, "name": name])
    }

    private static func setSchedulePaused(_ call: Call, _ paused: Bool) async throws -> APIResponse {
        let name = try call.parameter("name")
        if paused {
            try await call.client.schedules.pause(name, by: call.performer)
        } else {
            try await call.client.schedules.resume(name, by: call.performer)
        }
        return .ok(APIJSON.schedule(try await Self.schedule(call, name)))
    }

    // MARK: Handlers

    private static func ready(_ call: Call) async throws -> APIResponse {
        let status: SchemaStatus
        do {
            status = try await call.client.store.schemaStatus(logger: call.client.logger)
        } catch let error as ConveyorError {
            return APIResponse(
                status: .serviceUnavailable,
                body: ["ready": false, "reason": error.code.rawValue, "message": error.message]
            )
        }
        let schema: [String: Any] = [
            "applied": status.applied.max() ?? 0, "expected": status.latestKnown,
        ]
        if status.isNewer {
            return APIResponse(
                status: .serviceUnavailable,
                body: [
                    "ready": false, "reason": ConveyorError.Code.schemaTooNew.rawValue, "schema": schema,
                    "message": "the schema was migrated by a newer build (\(status.applied.max() ?? 0) > "
                        + "\(status.latestKnown)); upgrade this server",
                ]
            )
        }
        guard status.isCurrent else {
            return APIResponse(
                status: .serviceUnavailable,
                body: [
                    "ready": false, "reason": ConveyorError.Code.schemaMismatch.rawValue, "schema": schema,
                    "message": "migrations are pending: run conveyor migrate (or start a worker)",
                ]
            )
        }
        return .ok(["ready": true, "schema": schema])
    }

    private static func job(_ call: Call) async throws -> JobRecord {
        let id = try call.jobID()
        guard let job = try await call.client.jobs.get(id) else {
            throw ConveyorError(.jobNotFound, "no job has id \(id)")
        }
        return job
    }

    /// A filter value of a closed set (a state, a status, a reason); `INVALID_FILTER` names the set otherwise.
    private static func filterValue<Value: RawRepresentable & CaseIterable>(
        _ text: String,
        _ what: String,
        as type: Value.Type
    ) throws -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: text) else {
            throw ConveyorError(
                .invalidFilter,
                "unknown \(what) \(text.prefix(40)); use one of "
                    + Value.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        return value
    }

    private static func jobFilter(_ call: Call) throws -> JobFilter {
        let states = try call.query.list("state").map { try Self.filterValue($0, "state", as: JobState.self) }
        return JobFilter(
            states: states,
            queue: try call.query.string("queue"),
            kind: try call.query.string("kind"),
            namespace: try call.query.string("namespace"),
            tag: try call.query.string("tag"),
            createdAfter: try call.query.date("created_after"),
            createdBefore: try call.query.date("created_before"),
            limit: try call.query.limit(),
            cursor: try call.query.string("cursor")
        )
    }

    private static func listJobs(_ call: Call) async throws -> APIResponse {
        let page = try await call.client.jobs.list(try Self.jobFilter(call))
        return .ok(["jobs": page.jobs.map(APIJSON.job), "next_cursor": APIJSON.optional(page.nextCursor)])
    }

    private static func deadLetters(_ call: Call) async throws -> APIResponse {
        var filter = try Self.jobFilter(call)
        filter.states = [.discarded]
        async let counts = call.api.metricsCache.value(call.client).deadLetters
        let page = try await call.client.jobs.list(filter)
        let reasons = try await counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { reason, count in
            ["reason": reason.rawValue, "count": count] as [String: Any]
        }
        return .ok([
            "reasons": reasons, "jobs": page.jobs.map(APIJSON.job), "next_cursor": APIJSON.optional(page.nextCursor),
        ])
    }

    private static func enqueue(_ call: Call) async throws -> APIResponse {
        let body = try call.bodyObject()
        let kind = try body.requiredString("kind")
        let arguments = try body.json("args") ?? "{}"
        var options = JobOptions()
        options.queue = try body.string("queue")
        options.namespace = try body.string("namespace")
        options.priority = try body.int("priority")
        options.maxAttempts = try body.int("max_attempts")
        options.runAt = try body.date("run_at")
        if let delay = try body.int("delay_ms") { options.delay = .milliseconds(delay) }
        if let timeout = try body.int("timeout_ms") { options.timeout = .milliseconds(timeout) }
        options.tags = try body.strings("tags")
        options.uniqueKey = try body.string("unique_key")
        let job = try await call.client.jobs.enqueue(
            kind: kind,
            argumentsJSON: arguments,
            options: options,
            source: .api
        )
        return APIResponse(
            status: job.isDuplicate ? .ok : .created,
            body: ["id": job.id.rawValue, "duplicate": job.isDuplicate]
        )
    }

    private static func setPaused(_ call: Call, _ paused: Bool) async throws -> APIResponse {
        let name = try call.parameter("name")
        if paused {
            try await call.client.queues.pause(name, by: call.performer)
        } else {
            try await call.client.queues.resume(name, by: call.performer)
        }
        let info = try await call.client.queues.get(name) ?? QueueInfo(name: name, isPaused: paused, counts: [:])
        return .ok(APIJSON.queue(info))
    }

    private static func setConcurrency(_ call: Call, _ maxRunning: Int?) async throws -> APIResponse {
        let name = try call.parameter("name")
        try await call.client.queues.setConcurrencyLimit(name, maxRunning: maxRunning, by: call.performer)
        let info =
            try await call.client.queues.get(name)
            ?? QueueInfo(name: name, isPaused: false, maxRunning: maxRunning, counts: [:])
        return .ok(APIJSON.queue(info))
    }

    private static func setFairness(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        guard let fair = try call.bodyObject().bool("fair") else {
            throw ConveyorHTTPError.malformed("fair is required")
        }
        try await call.client.queues.setFairness(name, fair, by: call.performer)
        let info =
            try await call.client.queues.get(name) ?? QueueInfo(name: name, isPaused: false, isFair: fair, counts: [:])
        return .ok(APIJSON.queue(info))
    }

    private static func setTenant(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        guard let weight = try call.bodyObject().double("weight") else {
            throw ConveyorHTTPError.malformed("weight is required")
        }
        try await call.client.tenants.set(name, weight: weight, by: call.performer)
        guard let tenant = try await call.client.tenants.get(name) else {
            throw ConveyorHTTPError(.notFound, code: ConveyorHTTPError.Code.notFound, "tenant \(name) was removed")
        }
        return .ok(APIJSON.tenant(tenant))
    }

    private static func setTenantConcurrency(_ call: Call, _ maxRunning: Int?) async throws -> APIResponse {
        let name = try call.parameter("name")
        try await call.client.tenants.setConcurrencyLimit(name, maxRunning: maxRunning, by: call.performer)
        guard let tenant = try await call.client.tenants.get(name) else {
            throw ConveyorHTTPError(.notFound, code: ConveyorHTTPError.Code.notFound, "tenant \(name) was removed")
        }
        return .ok(APIJSON.tenant(tenant))
    }

    private static func removeTenant(_ call: Call) async throws -> APIResponse {
        let name = try call.parameter("name")
        guard try await call.client.tenants.remove(name, by: call.performer) else {
            throw ConveyorHTTPError(
                .notFound,
                code: ConveyorHTTPError.Code.notFound,
                "tenant \(name.prefix(80)) has no settings"
            )
        }
        return .ok(["removed": true, "name": name])
    }

    private static func setPoolPaused(_ call: Call, _ paused: Bool) async throws -> APIResponse {
        let name = try call.parameter("name")
        if paused {
            try await call.client.pools.pause(name, by: call.performer)
        } else {
            try await call.client.pools.resume(name, by: call.performer)
        }
        let pool = try await call.client.pools.list().first { $0.name == name } ?? PoolInfo(name: name)
        return .ok(APIJSON.pool(pool))
    }

    private static func listRuns(_ call: Call) async throws -> APIResponse {
        let statuses = try call.query.list("status").map {
            try Self.filterValue($0, "status", as: WorkflowRunStatus.self)
        }
        let filter = WorkflowRunFilter(
            statuses: statuses,
            name: try call.query.string("name"),
            namespace: try call.query.string("namespace"),
            limit: try call.query.limit(),
            cursor: try call.query.string("cursor")
        )
        let page = try await call.client.workflows.list(filter)
        return .ok(["runs": page.runs.map(APIJSON.run), "next_cursor": APIJSON.optional(page.nextCursor)])
    }

    private static func run(_ call: Call) async throws -> APIResponse {
        let id = WorkflowRunID(try call.parameter("id"))
        guard let run = try await call.client.workflows.get(id) else {
            throw ConveyorError(.workflowNotFound, "no workflow run has id \(id.rawValue.prefix(80))")
        }
        var body = APIJSON.run(run)
        body["events"] = try await call.client.workflows.events(id).map(APIJSON.event)
        return .ok(body)
    }

    private static func signal(_ call: Call) async throws -> APIResponse {
        let id = WorkflowRunID(try call.parameter("id"))
        let body = try call.bodyObject()
        let name = try body.requiredString("name")
        let payload = try body.json("payload") ?? "null"
        try await call.client.workflows.signal(id, name, payloadJSON: payload, by: call.performer)
        return APIResponse(status: .accepted, body: ["run": id.rawValue, "signal": name])
    }

    private static func fork(_ call: Call) async throws -> APIResponse {
        let id = WorkflowRunID(try call.parameter("id"))
        let body = try call.bodyObject()
        let step = try body.requiredString("from_step")
        let newID = try body.string("new_id").map { WorkflowRunID($0) }
        let started = try await call.client.workflows.fork(id, fromStep: step, newID: newID, by: call.performer)
        return APIResponse(
            status: .created,
            body: ["id": started.id.rawValue, "forked_from": id.rawValue, "from_step": step]
        )
    }
}
