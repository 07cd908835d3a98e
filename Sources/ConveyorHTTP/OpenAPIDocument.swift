import Conveyor
import ConveyorCore
import Foundation

extension ConveyorAdminAPI {
    /// The API as an OpenAPI 3.0.3 document, as JSON values (`[String: Any]`, arrays, strings, numbers, booleans and
    /// `NSNull`) that `JSONSerialization` writes.
    ///
    /// Paths, methods, operation ids, summaries, tags and which routes need no token come from ``routeDescriptions``,
    /// so every registered route is in the document; parameters, request bodies and responses come from a table
    /// kept next to it, keyed by operation id. A route missing from that table is still listed, with a free-form
    /// response and `x-conveyor-undocumented: true`, and the tests fail on it.
    ///
    /// - Parameter basePath: Where the routes are mounted (``routes(context:)`` with `atPath:`); it becomes the
    ///   document's one server URL, and paths are relative to it.
    public static func openAPIDocument(basePath: String = "/api") -> [String: Any] {
        let operations = OpenAPISpec.operations()
        var paths: [String: [String: Any]] = [:]
        var tags: [String] = []
        for route in Self.routeDescriptions {
            let path = OpenAPISpec.template(route.path)
            let documented = operations[route.operationID]
            var operation: [String: Any] = [
                "operationId": route.operationID,
                "summary": route.summary,
                "tags": [route.tag],
            ]
            if route.isPublic { operation["security"] = [Any]() }
            if !tags.contains(route.tag) { tags.append(route.tag) }

            var parameters: [[String: Any]] = OpenAPISpec.pathParameterNames(path).map { name in
                var parameter: [String: Any] = [
                    "name": name, "in": "path", "required": true,
                    "schema": documented?.pathParameters[name]?.schema ?? OpenAPISpec.string(),
                ]
                if let description = documented?.pathParameters[name]?.description {
                    parameter["description"] = description
                }
                return parameter
            }
            parameters += documented?.query ?? []
            if !parameters.isEmpty { operation["parameters"] = parameters }

            if let body = documented?.requestBody {
                operation["requestBody"] = [
                    "required": documented?.requestBodyIsRequired ?? true,
                    "content": ["application/json": ["schema": body]],
                ]
            }

            var responses: [String: Any] = [:]
            for response in documented?.responses ?? [] {
                responses[String(response.status)] = [
                    "description": response.description,
                    "content": [response.contentType: ["schema": response.schema]],
                ]
            }
            if documented == nil {
                operation["x-conveyor-undocumented"] = true
                responses["200"] = [
                    "description": "Not documented yet.",
                    "content": ["application/json": ["schema": OpenAPISpec.freeObject()]],
                ]
            }
            var errors = documented?.errors ?? []
            if !route.isPublic { errors.append(401) }
            // The methods whose body `respond` reads, capped at `maximumBodyBytes`.
            if ["POST", "PUT"].contains(route.method.uppercased()) { errors.append(413) }
            errors.append(500)
            for status in Set(errors) {
                var response = OpenAPISpec.errorResponse(status)
                if status == 401 {
                    response["headers"] = [
                        "WWW-Authenticate": [
                            "description": "`Bearer realm=\"conveyor\"`", "schema": OpenAPISpec.string(),
                        ]
                    ]
                }
                responses[String(status)] = response
            }
            operation["responses"] = responses
            paths[path, default: [:]][route.method.lowercased()] = operation
        }

        var server = basePath
        while server.count > 1, server.hasSuffix("/") { server.removeLast() }
        if server.isEmpty { server = "/" }
        return [
            "openapi": "3.0.3",
            "info": [
                "title": "Conveyor admin API",
                "version": "1",
                "description": "Jobs, queues, workers and workflow runs of a Conveyor database. Every route but "
                    + "the public ones needs a token: `Authorization: Bearer <token>` or `x-api-key: <token>`. "
                    + "Errors are `{\"error\": {\"code\", \"message\"}}` with a stable code.",
            ],
            "servers": [["url": server]],
            "tags": tags.map { ["name": $0] },
            "security": [["bearerAuth": [Any]()], ["apiKey": [Any]()]],
            "paths": paths,
            "components": [
                "securitySchemes": [
                    "bearerAuth": ["type": "http", "scheme": "bearer"],
                    "apiKey": ["type": "apiKey", "in": "header", "name": "x-api-key"],
                ],
                "schemas": OpenAPISpec.schemas(),
            ],
        ]
    }
}

/// What the document says about one operation beyond the route table.
private struct OpenAPIOperation {
    struct Response {
        var status: Int
        var description: String
        var schema: [String: Any]
        var contentType = "application/json"
    }

    /// Schemas (and descriptions) of the `{name}` parameters of the path; any other is a string.
    var pathParameters: [String: (description: String, schema: [String: Any])] = [:]
    var query: [[String: Any]] = []
    var requestBody: [String: Any]?
    /// Whether a call without a body is refused (an empty body reads as `{}`).
    var requestBodyIsRequired = true
    var responses: [Response]
    /// Statuses answered with the `Error` schema, besides 401 (every route with a token), 413 (every route that reads
    /// a body) and 500 (every route).
    var errors: [Int] = []
}

/// The document's parts: schema builders, the component schemas and the per-operation table.
private enum OpenAPISpec {
    // MARK: Paths

    /// `/jobs/:id` as `/jobs/{id}`; `{id}` stays.
    static func template(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
        }
        let joined = segments.joined(separator: "/")
        return joined.hasPrefix("/") ? joined : "/" + joined
    }

    static func pathParameterNames(_ path: String) -> [String] {
        path.split(separator: "/").compactMap { segment in
            guard segment.hasPrefix("{"), segment.hasSuffix("}"), segment.count > 2 else { return nil }
            return String(segment.dropFirst().dropLast())
        }
    }

    // MARK: Schema builders

    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }

    static func string(
        _ description: String? = nil,
        format: String? = nil,
        nullable: Bool = false,
        minLength: Int? = nil,
        maxLength: Int? = nil
    ) -> [String: Any] {
        var schema: [String: Any] = ["type": "string"]
        if let description { schema["description"] = description }
        if let format { schema["format"] = format }
        if nullable { schema["nullable"] = true }
        if let minLength { schema["minLength"] = minLength }
        if let maxLength { schema["maxLength"] = maxLength }
        return schema
    }

    static func dateTime(_ description: String? = nil, nullable: Bool = false) -> [String: Any] {
        Self.string(description, format: "date-time", nullable: nullable)
    }

    /// Strings from a fixed list; a nullable one lists `null` too, as OpenAPI 3.0.3 asks.
    static func enumeration(_ values: [String], _ description: String? = nil, nullable: Bool = false) -> [String: Any] {
        var schema = Self.string(description, nullable: nullable)
        schema["enum"] = nullable ? values + [NSNull()] : values
        return schema
    }

    static func integer(
        _ description: String? = nil,
        int64: Bool = false,
        minimum: Int? = nil,
        maximum: Int? = nil,
        nullable: Bool = false
    ) -> [String: Any] {
        var schema: [String: Any] = ["type": "integer"]
        if let description { schema["description"] = description }
        if int64 { schema["format"] = "int64" }
        if let minimum { schema["minimum"] = minimum }
        if let maximum { schema["maximum"] = maximum }
        if nullable { schema["nullable"] = true }
        return schema
    }

    static func boolean(_ description: String? = nil, nullable: Bool = false) -> [String: Any] {
        var schema: [String: Any] = ["type": "boolean"]
        if let description { schema["description"] = description }
        if nullable { schema["nullable"] = true }
        return schema
    }

    static func number(
        _ description: String? = nil,
        minimum: Double? = nil,
        exclusiveMinimum: Bool = false,
        maximum: Double? = nil
    ) -> [String: Any] {
        var schema: [String: Any] = ["type": "number", "format": "double"]
        if let description { schema["description"] = description }
        if let minimum { schema["minimum"] = minimum }
        if exclusiveMinimum { schema["exclusiveMinimum"] = true }
        if let maximum { schema["maximum"] = maximum }
        return schema
    }

    static func array(
        _ items: [String: Any],
        _ description: String? = nil,
        maxItems: Int? = nil,
        nullable: Bool = false
    ) -> [String: Any] {
        var schema: [String: Any] = ["type": "array", "items": items]
        if let description { schema["description"] = description }
        if let maxItems { schema["maxItems"] = maxItems }
        if nullable { schema["nullable"] = true }
        return schema
    }

    /// An object whose members are all of one schema (`{"queue": slots}`).
    static func map(_ values: [String: Any], _ description: String? = nil) -> [String: Any] {
        var schema: [String: Any] = ["type": "object", "additionalProperties": values]
        if let description { schema["description"] = description }
        return schema
    }

    /// Any JSON object.
    static func freeObject(_ description: String? = nil) -> [String: Any] {
        var schema: [String: Any] = ["type": "object"]
        if let description { schema["description"] = description }
        return schema
    }

    /// Any JSON value.
    static func anyValue(_ description: String, nullable: Bool = true) -> [String: Any] {
        var schema: [String: Any] = ["description": description]
        if nullable { schema["nullable"] = true }
        return schema
    }

    /// An object with exactly these members; every member is always present unless `required` says otherwise
    /// (the API writes `null`, not nothing, for a missing value).
    static func object(
        _ properties: KeyValuePairs<String, [String: Any]>,
        required: [String]? = nil,
        description: String? = nil,
        nullable: Bool = false
    ) -> [String: Any] {
        var members: [String: Any] = [:]
        for (name, schema) in properties { members[name] = schema }
        var schema: [String: Any] = [
            "type": "object",
            "properties": members,
            "required": required ?? properties.map(\.key),
            "additionalProperties": false,
        ]
        if let description { schema["description"] = description }
        if nullable { schema["nullable"] = true }
        return schema
    }

    /// `object` (made by ``object(_:required:description:nullable:)``) with more members, all required.
    static func extending(
        _ object: [String: Any],
        _ members: KeyValuePairs<String, [String: Any]>,
        description: String
    ) -> [String: Any] {
        var extended = object
        var properties = object["properties"] as? [String: Any] ?? [:]
        for (name, schema) in members { properties[name] = schema }
        extended["properties"] = properties
        extended["required"] = (object["required"] as? [String] ?? []) + members.map(\.key)
        extended["description"] = description
        return extended
    }

    static func jobID(_ description: String? = nil, nullable: Bool = false) -> [String: Any] {
        Self.integer(description, int64: true, minimum: 1, nullable: nullable)
    }

    static func errorResponse(_ status: Int) -> [String: Any] {
        let description: String
        switch status {
        case 400: description = "Bad input: INVALID_PARAMETER, MALFORMED_JSON, INVALID_FILTER, INVALID_OPTION, …"
        case 401: description = "No token, or one that matches none: UNAUTHORIZED."
        case 404: description = "Not found: JOB_NOT_FOUND, WORKFLOW_NOT_FOUND or STEP_NOT_FOUND."
        case 409: description = "Not allowed in the current state: INVALID_JOB_STATE, INVALID_WORKFLOW_STATE, …"
        case 413: description = "Too large: BODY_TOO_LARGE, ARGUMENTS_TOO_LARGE or OUTPUT_TOO_LARGE."
        case 429: description = "An enqueue rate limit of the queue or namespace is exhausted: RATE_LIMITED."
        case 503: description = "The database is unavailable or its schema does not match this build."
        default: description = "The call failed; the server's log has the detail: INTERNAL_ERROR, …"
        }
        return [
            "description": description,
            "content": ["application/json": ["schema": Self.ref("Error")]],
        ]
    }

    // MARK: Component schemas

    static func schemas() -> [String: Any] {
        let jobStates = JobState.allCases.map(\.rawValue)
        let attempt = Self.object([
            "attempt": Self.integer("The attempt number, 1-based.", minimum: 0),
            "worker": Self.string("The worker process that ran it."),
            "started_at": Self.dateTime(),
            "finished_at": Self.dateTime(),
            "outcome": Self.enumeration(AttemptOutcome.allCases.map(\.rawValue)),
            "error_code": Self.enumeration(AttemptErrorCode.allCases.map(\.rawValue), nullable: true),
            "error": Self.string(nullable: true),
            "duration_us": Self.integer("Run time in microseconds.", int64: true),
        ])
        let job = Self.object([
            "id": Self.jobID(),
            "namespace": Self.string(),
            "queue": Self.string(),
            "kind": Self.string(),
            "args": Self.freeObject("The job's arguments as stored."),
            "state": Self.enumeration(jobStates),
            "priority": Self.integer("0 runs first, 9 last.", minimum: 0, maximum: 9),
            "attempt": Self.integer("Attempts started that count towards max_attempts.", minimum: 0),
            "max_attempts": Self.integer(minimum: 1),
            "run_at": Self.dateTime(),
            "created_at": Self.dateTime(),
            "finished_at": Self.dateTime(nullable: true),
            "lease_owner": Self.string("The worker holding the lease while running.", nullable: true),
            "lease_expires_at": Self.dateTime(nullable: true),
            "unique_key": Self.string(nullable: true),
            "tags": Self.array(Self.string()),
            "timeout_ms": Self.integer(int64: true, nullable: true),
            "replay_of": Self.jobID("The job this one replays.", nullable: true),
            "dead_reason": Self.enumeration(
                DeadLetterReason.allCases.map(\.rawValue),
                "Why a discarded job was dead-lettered.",
                nullable: true
            ),
            "cancel_requested_at": Self.dateTime(nullable: true),
            "last_error": Self.string(nullable: true),
            "attempts": Self.array(Self.ref("Attempt"), "Finished attempts, oldest first."),
        ])
        let explanation = Self.object([
            "job_id": Self.jobID("The job explained (for a run, the job that executes it)."),
            "state": Self.enumeration(jobStates),
            "reason": Self.enumeration(JobExplanation.Reason.allCases.map(\.rawValue), "A stable reason code."),
            "sentence": Self.string("One sentence for a person."),
            "facts": Self.map(Self.string(), "The facts the sentence names, for scripts."),
            "next_at": Self.dateTime("When the next thing happens on its own.", nullable: true),
            "suggested_action": Self.string(nullable: true),
        ])
        let timelineEntry = Self.object([
            "kind": Self.enumeration(["enqueued", "attempt", "running", "event"]),
            "at": Self.dateTime(),
            "from_state": Self.string(nullable: true),
            "to_state": Self.string(nullable: true),
            "attempt": Self.integer(nullable: true),
            "worker": Self.string(nullable: true),
            "started_at": Self.dateTime(nullable: true),
            "outcome": Self.enumeration(AttemptOutcome.allCases.map(\.rawValue), nullable: true),
            "error_code": Self.string(nullable: true),
            "error": Self.string(nullable: true),
            "duration_us": Self.integer(int64: true, nullable: true),
            "action": Self.enumeration(EventRecord.Action.allCases.map(\.rawValue), nullable: true),
            "performed_by": Self.string(nullable: true),
            "details": Self.map(Self.string()),
            "summary": Self.string("The entry in one line."),
        ])
        let timeline = Self.object([
            "job_id": Self.jobID(),
            "entries": Self.array(Self.ref("TimelineEntry")),
        ])
        let event = Self.object([
            "id": Self.integer(int64: true),
            "at": Self.dateTime(),
            "subject": Self.enumeration(["job", "queue", "workflow", "schedule", "pool", "tenant"]),
            "subject_id": Self.string("A job id in decimal, a run id, or a queue, schedule, pool or tenant name."),
            "action": Self.enumeration(EventRecord.Action.allCases.map(\.rawValue)),
            "from_state": Self.string(nullable: true),
            "to_state": Self.string(nullable: true),
            "performed_by": Self.string("`token:<name>` for this API.", nullable: true),
            "details": Self.map(Self.string()),
        ])
        let counts = Self.object(
            [
                "available": Self.integer(minimum: 0),
                "scheduled": Self.integer(minimum: 0),
                "retryable": Self.integer(minimum: 0),
                "running": Self.integer(minimum: 0),
                "discarded": Self.integer(minimum: 0),
            ],
            description: "Jobs of the queue per state, each counted up to 1,000."
        )
        let queue = Self.object([
            "name": Self.string(),
            "paused": Self.boolean(),
            "paused_at": Self.dateTime(nullable: true),
            "paused_by": Self.string(nullable: true),
            "max_running": Self.integer(
                "The most jobs leased at once across every worker; null: no limit.",
                minimum: 1,
                nullable: true
            ),
            "fair": Self.boolean("Whether fetches share the queue's jobs among tenants by weight."),
            "counts": counts,
            "capped": Self.array(
                Self.enumeration(["available", "scheduled", "retryable", "running", "discarded"]),
                "The states whose counts reached 1,000, where counting stops: there are at least that many."
            ),
        ])
        let worker = Self.object([
            "id": Self.string(),
            "pool": Self.string(),
            "queues": Self.map(Self.integer(minimum: 0), "Queue names and their execution slots."),
            "running": Self.map(Self.integer(minimum: 0), "Jobs running per queue as of the last heartbeat."),
            "kinds": Self.array(Self.string()),
            "workflows": Self.array(Self.string(), "As name@version."),
            "started_at": Self.dateTime(),
            "heartbeat_at": Self.dateTime(),
        ])
        let step = Self.object([
            "name": Self.string(),
            "position": Self.integer("The index among the run's durable calls (-1 for patch markers).", minimum: -1),
            "kind": Self.enumeration(WorkflowStepKind.allCases.map(\.rawValue)),
            "status": Self.enumeration(WorkflowStepStatus.allCases.map(\.rawValue)),
            "attempts": Self.integer(minimum: 0),
            "output_bytes": Self.integer(minimum: 0),
            "error_code": Self.string(nullable: true),
            "error_message": Self.string(nullable: true),
            "wait_for": Self.string("A signal's name or a child's run id.", nullable: true),
            "wake_at": Self.dateTime(nullable: true),
            "started_at": Self.dateTime(),
            "finished_at": Self.dateTime(nullable: true),
        ])
        let runMembers: KeyValuePairs<String, [String: Any]> = [
            "id": Self.string(),
            "name": Self.string(),
            "version": Self.integer(minimum: 1),
            "namespace": Self.string(),
            "queue": Self.string(),
            "status": Self.enumeration(WorkflowRunStatus.allCases.map(\.rawValue)),
            "input": Self.anyValue("The run's input, any JSON value."),
            "output": Self.anyValue("The output of a completed run, any JSON value; null before."),
            "error_code": Self.string(nullable: true),
            "error_message": Self.string(nullable: true),
            "job_id": Self.jobID("The job that executes the run."),
            "parent_id": Self.string(nullable: true),
            "forked_from": Self.string(nullable: true),
            "forked_at_step": Self.string(nullable: true),
            "deadline": Self.dateTime(nullable: true),
            "waits_for_version": Self.boolean("Whether no worker that fetched it has its version."),
            "cancel_requested_at": Self.dateTime(nullable: true),
            "created_at": Self.dateTime(),
            "updated_at": Self.dateTime(),
            "finished_at": Self.dateTime(nullable: true),
            "steps": Self.array(Self.ref("WorkflowStep"), "Stored steps in position order (empty in lists)."),
        ]
        let run = Self.object(runMembers, description: "A workflow run.")
        let runWithEvents = Self.extending(
            run,
            ["events": Self.array(Self.ref("Event"), "The run's events, oldest first.")],
            description: "A run with its steps and events."
        )
        let schemaVersions = Self.object([
            "applied": Self.integer("The newest migration applied to the database.", minimum: 0),
            "expected": Self.integer("The newest migration this build knows.", minimum: 0),
        ])
        return [
            "Error": Self.object([
                "error": Self.object([
                    "code": Self.string("A stable code such as JOB_NOT_FOUND."),
                    "message": Self.string("For a person."),
                ])
            ]),
            "Job": job,
            "Attempt": attempt,
            "Explanation": explanation,
            "Timeline": timeline,
            "TimelineEntry": timelineEntry,
            "Event": event,
            "Queue": queue,
            "Worker": worker,
            "Pool": Self.object([
                "name": Self.string(),
                "workers": Self.array(Self.string(), "Ids of the pool's live workers."),
                "slots": Self.map(Self.integer(minimum: 0), "Execution slots per queue, summed over the workers."),
                "running": Self.map(Self.integer(minimum: 0), "Jobs running per queue as of the last heartbeats."),
                "paused": Self.boolean(),
                "paused_at": Self.dateTime(nullable: true),
                "paused_by": Self.string(nullable: true),
            ]),
            "PoolList": Self.object(["pools": Self.array(Self.ref("Pool"))]),
            "Tenant": Self.object([
                "name": Self.string("The namespace."),
                "weight": Self.number("Its share of a fair queue's fetches against the tenants competing."),
                "max_running": Self.integer(
                    "The most of its jobs leased at once across every queue; null: no limit.",
                    minimum: 1,
                    nullable: true
                ),
                "running": Self.integer("Its jobs leased now; null without a limit.", minimum: 0, nullable: true),
                "updated_at": Self.dateTime(),
                "updated_by": Self.string(nullable: true),
            ]),
            "TenantList": Self.object(["tenants": Self.array(Self.ref("Tenant"))]),
            "TenantRequest": Self.object([
                "weight": Self.number(
                    "Above 0, at most 10000 (default 1).",
                    minimum: 0,
                    exclusiveMinimum: true,
                    maximum: ConveyorClient.Tenants.maximumWeight
                )
            ]),
            "TenantRemoved": Self.object([
                "removed": Self.boolean("Always true."),
                "name": Self.string(),
            ]),
            "WorkflowRun": run,
            "WorkflowRunWithEvents": runWithEvents,
            "WorkflowStep": step,
            "JobList": Self.object([
                "jobs": Self.array(Self.ref("Job")),
                "next_cursor": Self.string("Pass as cursor for the next page; null on the last.", nullable: true),
            ]),
            "DeadLetters": Self.object([
                "reasons": Self.array(
                    Self.object([
                        "reason": Self.enumeration(DeadLetterReason.allCases.map(\.rawValue)),
                        "count": Self.integer(minimum: 0),
                    ]),
                    "Dead-lettered jobs per reason, by reason."
                ),
                "jobs": Self.array(Self.ref("Job")),
                "next_cursor": Self.string(nullable: true),
            ]),
            "QueueList": Self.object(["queues": Self.array(Self.ref("QueueWithRates"))]),
            "QueueWithRates": Self.extending(
                queue,
                [
                    "completed_per_minute": Self.integer("Completions in the last 60 s.", minimum: 0),
                    "failed_per_minute": Self.integer("Failed attempts in the last 60 s.", minimum: 0),
                ],
                description: "A queue with what completed and failed in the last minute."
            ),
            "WorkerList": Self.object(["workers": Self.array(Self.ref("Worker"))]),
            "WorkflowRunList": Self.object([
                "runs": Self.array(Self.ref("WorkflowRun")),
                "next_cursor": Self.string(nullable: true),
            ]),
            "Health": Self.object(["status": Self.enumeration(["ok"])]),
            "Ready": Self.object(["ready": Self.boolean("Always true."), "schema": schemaVersions]),
            "NotReady": Self.object(
                [
                    "ready": Self.boolean("Always false."),
                    "reason": Self.string("A stable code: SCHEMA_MISMATCH, SCHEMA_TOO_NEW, DATABASE_UNAVAILABLE, …"),
                    "message": Self.string(),
                    "schema": schemaVersions,
                ],
                required: ["ready", "reason", "message"],
                description: "Not ready; schema is there when the database answered."
            ),
            "EnqueueRequest": Self.enqueueRequest(),
            "QueueMetrics": Self.queueMetrics(),
            "Metrics": Self.object([
                "queues": Self.array(Self.ref("QueueMetrics")),
                "workers": Self.integer("Live workers.", minimum: 0),
                "generated_at": Self.dateTime(),
            ]),
            "DeadLetterBulkRequest": Self.deadLetterBulkRequest(),
            "DeadLetterBulkResult": Self.object([
                "action": Self.enumeration(DeadLetterAction.allCases.map(\.rawValue)),
                "dry_run": Self.boolean("Whether the jobs were only counted."),
                "matched": Self.integer("The jobs retried or deleted (or that would be).", minimum: 0),
            ]),
            "IngestDecision": Self.object([
                "id": Self.integer(int64: true, nullable: true),
                "at": Self.dateTime(nullable: true),
                "code": Self.string("The refusal's stable code (ARGUMENTS_TOO_LARGE, RATE_LIMITED, …)."),
                "reason": Self.string(),
                "queue": Self.string(nullable: true),
                "namespace": Self.string(nullable: true),
                "kind": Self.string(nullable: true),
                "jobs": Self.integer("How many jobs the refused call held.", minimum: 0),
                "source": Self.string("Where the enqueue came from (api, client, transaction).", nullable: true),
            ]),
            "IngestDecisionList": Self.object([
                "decisions": Self.array(Self.ref("IngestDecision")),
                "next_cursor": Self.string(nullable: true),
            ]),
            "EnqueueLimit": Self.object([
                "scope": Self.enumeration(EnqueueLimit.Scope.allCases.map(\.rawValue)),
                "name": Self.string("The queue or namespace."),
                "per_second": Self.number("Tokens added per second."),
                "burst": Self.integer("The bucket's size.", minimum: 1),
            ]),
            "EnqueueLimitList": Self.object(["limits": Self.array(Self.ref("EnqueueLimit"))]),
            "EnqueueLimitRequest": Self.object([
                "per_second": Self.number(
                    "Tokens added per second: above 0, at most 1000000.",
                    minimum: 0,
                    exclusiveMinimum: true,
                    maximum: EnqueueLimit.maximumPerSecond
                ),
                "burst": Self.integer("The bucket's size.", minimum: 1, maximum: EnqueueLimit.maximumBurst),
            ]),
            "ScheduleDetail": Self.extending(
                Self.schedule,
                ["events": Self.array(Self.ref("Event"), "Its definitions, pauses and resumptions, oldest first.")],
                description: "A cron schedule with its events."
            ),
            "Schedule": Self.schedule,
            "ScheduleList": Self.object(["schedules": Self.array(Self.ref("Schedule"))]),
            "ScheduleRequest": Self.object(
                [
                    "cron": Self.string("Five fields (minute hour day month weekday), or six with seconds first."),
                    "kind": Self.string("The job kind each tick enqueues."),
                    "args": Self.freeObject("The job's arguments (default {})."),
                    "time_zone": Self.string("An IANA time zone (default UTC).", nullable: true),
                    "catch_up": Self.enumeration(
                        CronSchedule.CatchUp.allCases.map(\.rawValue),
                        "Missed ticks: none, latest (default) or all.",
                        nullable: true
                    ),
                    "queue": Self.string("Default `default`.", nullable: true),
                    "namespace": Self.string("Default `default`.", nullable: true),
                    "priority": Self.integer(minimum: 0, maximum: 9, nullable: true),
                    "max_attempts": Self.integer(minimum: 1, maximum: 1000, nullable: true),
                    "timeout_ms": Self.integer(minimum: 1, nullable: true),
                    "tags": Self.array(Self.string(), maxItems: 32, nullable: true),
                ],
                required: ["cron", "kind"]
            ),
            "ScheduleDeleted": Self.object([
                "deleted": Self.boolean("Always true."),
                "name": Self.string(),
            ]),
            "EnqueueLimitRemoved": Self.object([
                "removed": Self.boolean("Always true."),
                "scope": Self.enumeration(EnqueueLimit.Scope.allCases.map(\.rawValue)),
                "name": Self.string(),
            ]),
            "EnqueueResult": Self.object([
                "id": Self.jobID(),
                "duplicate": Self.boolean("Whether a job with the unique key existed and was returned instead."),
            ]),
            "ReplayResult": Self.object([
                "id": Self.jobID("The new job."),
                "replay_of": Self.jobID("The job it copies."),
            ]),
            "SignalRequest": Self.object(
                [
                    "name": Self.string("The signal's name."),
                    "payload": Self.anyValue("Any JSON value (null when left out)."),
                ],
                required: ["name"]
            ),
            "SignalResult": Self.object(["run": Self.string(), "signal": Self.string()]),
            "ForkRequest": Self.object(
                [
                    "from_step": Self.string("The stored step from which the new run runs again."),
                    "new_id": Self.string("The new run's id (default: a generated one).", nullable: true),
                ],
                required: ["from_step"]
            ),
            "ForkResult": Self.object([
                "id": Self.string("The new run."),
                "forked_from": Self.string(),
                "from_step": Self.string(),
            ]),
        ]
    }

    static func queueMetrics() -> [String: Any] {
        Self.object(
            [
                "queue": Self.string(),
                "paused": Self.boolean(),
                "available": Self.integer("Runnable now, waiting for a worker.", minimum: 0),
                "waiting": Self.integer("Scheduled and retryable.", minimum: 0),
                "running": Self.integer(minimum: 0),
                "dead_lettered": Self.integer(minimum: 0),
                "capped": Self.array(
                    Self.enumeration(["available", "waiting", "running", "dead_lettered"]),
                    "The figures above that are lower bounds: a count they add up reached 1,000, where counting stops."
                ),
                "completed_per_second": Self.number("Over the last 60 s.", minimum: 0),
                "failed_per_second": Self.number("Over the last 60 s.", minimum: 0),
                "success_rate": Self.number(
                    "Completed over ended attempts (1 when none ended).",
                    minimum: 0,
                    maximum: 1
                ),
                "retry_rate": Self.number(
                    "Failed attempts that scheduled a retry, over ended ones.",
                    minimum: 0,
                    maximum: 1
                ),
                "completed_per_minute": Self.array(Self.integer(minimum: 0), "The last 30 minutes, oldest first."),
                "start_latency_ms": Self.object(
                    [
                        "samples": Self.integer(minimum: 0),
                        "p50": Self.number(),
                        "p95": Self.number(),
                        "p99": Self.number(),
                    ],
                    description: "From when a job could run to when it started; null when none started.",
                    nullable: true
                ),
            ],
            description: "One queue over the last minute."
        )
    }

    static func deadLetterBulkRequest() -> [String: Any] {
        var limit = Self.integer("At most this many jobs (default 1000).", minimum: 1, maximum: 100_000, nullable: true)
        limit["default"] = 1000
        return Self.object(
            [
                "queue": Self.string(nullable: true),
                "kind": Self.string(nullable: true),
                "namespace": Self.string(nullable: true),
                "tag": Self.string(nullable: true),
                "created_after": Self.dateTime(nullable: true),
                "created_before": Self.dateTime(nullable: true),
                "reason": Self.enumeration(DeadLetterReason.allCases.map(\.rawValue), nullable: true),
                "dry_run": Self.boolean("Only count the jobs (default false).", nullable: true),
                "limit": limit,
            ],
            required: [],
            description: "Which dead-lettered jobs; every member is optional, and no body means all of them."
        )
    }

    /// A cron schedule as the API answers it.
    static var schedule: [String: Any] {
        Self.object([
            "name": Self.string(),
            "cron": Self.string("Five fields, or six with seconds first."),
            "time_zone": Self.string("An IANA time zone."),
            "catch_up": Self.enumeration(CronSchedule.CatchUp.allCases.map(\.rawValue)),
            "kind": Self.string(),
            "args": Self.freeObject("The arguments of each tick's job."),
            "queue": Self.string(),
            "namespace": Self.string(),
            "priority": Self.integer(minimum: 0, maximum: 9),
            "max_attempts": Self.integer(minimum: 1, maximum: 1000),
            "timeout_ms": Self.integer(minimum: 1, nullable: true),
            "tags": Self.array(Self.string()),
            "next_tick_at": Self.dateTime("Null when no tick comes within ten years.", nullable: true),
            "last_tick_at": Self.dateTime(nullable: true),
            "last_job_id": Self.jobID("The job of the latest tick.", nullable: true),
            "paused": Self.boolean(),
            "paused_at": Self.dateTime(nullable: true),
            "paused_by": Self.string(nullable: true),
            "created_at": Self.dateTime(),
            "updated_at": Self.dateTime(),
        ])
    }

    static func enqueueRequest() -> [String: Any] {
        Self.object(
            [
                "kind": Self.string("The job kind a worker has a handler for."),
                "args": Self.freeObject("The job's arguments (default {})."),
                "queue": Self.string("Default `default`.", nullable: true),
                "namespace": Self.string("Default `default`.", nullable: true),
                "priority": Self.integer("0 runs first, 9 last (default 0).", minimum: 0, maximum: 9, nullable: true),
                "max_attempts": Self.integer("Default 20.", minimum: 1, maximum: 1000, nullable: true),
                "run_at": Self.dateTime(
                    "Run no earlier than this (within 1000 years of 1970); wins over delay_ms.",
                    nullable: true
                ),
                "delay_ms": Self.integer(
                    "Run no earlier than this long after the enqueue.",
                    minimum: 0,
                    nullable: true
                ),
                "timeout_ms": Self.integer("The attempt timeout.", minimum: 1, nullable: true),
                "tags": Self.array(Self.string(), "Labels for filtering.", maxItems: 32, nullable: true),
                "unique_key": Self.string(
                    "While a job with this key exists in its namespace and is not cancelled or dead-lettered, the "
                        + "enqueue returns it instead (200, duplicate true).",
                    nullable: true,
                    minLength: 1,
                    maxLength: 255
                ),
            ],
            required: ["kind"]
        )
    }

    // MARK: Operations

    static func jobQuery(withState: Bool) -> [[String: Any]] {
        var parameters: [[String: Any]] = []
        if withState {
            parameters.append([
                "name": "state", "in": "query", "style": "form", "explode": true,
                "description": "Only jobs in these states; repeat it or separate values with commas.",
                "schema": Self.array(Self.enumeration(JobState.allCases.map(\.rawValue))),
            ])
        }
        parameters += [
            Self.query("queue", Self.string()),
            Self.query("kind", Self.string()),
            Self.query("namespace", Self.string()),
            Self.query("tag", Self.string(), "Only jobs with this tag."),
            Self.query("created_after", Self.dateTime(), "ISO 8601, e.g. 2026-12-02T10:00:00Z."),
            Self.query("created_before", Self.dateTime(), "ISO 8601, e.g. 2026-12-02T10:00:00Z."),
        ]
        return parameters + Self.pageQuery()
    }

    static func pageQuery() -> [[String: Any]] {
        var limit = Self.integer(minimum: 1, maximum: 1000)
        limit["default"] = 50
        return [
            Self.query("limit", limit, "The page size; values outside 1…1000 are clamped."),
            Self.query("cursor", Self.string(), "The next_cursor of the previous page."),
        ]
    }

    static func query(_ name: String, _ schema: [String: Any], _ description: String? = nil) -> [String: Any] {
        var parameter: [String: Any] = ["name": name, "in": "query", "schema": schema]
        if let description { parameter["description"] = description }
        return parameter
    }

    static func ok(_ schema: String, _ description: String) -> OpenAPIOperation.Response {
        .init(status: 200, description: description, schema: Self.ref(schema))
    }

    /// Every operation of the route table, by operation id.
    static func operations() -> [String: OpenAPIOperation] {
        let jobID = (description: "A job id.", schema: Self.jobID())
        let runID = (description: "A workflow run id.", schema: Self.string())
        let queueName = (description: "A queue name.", schema: Self.string())
        let poolName = (description: "A worker pool name.", schema: Self.string())
        let tenantName = (description: "A tenant's namespace.", schema: Self.string())
        let job: [String: (description: String, schema: [String: Any])] = ["id": jobID]
        let run: [String: (description: String, schema: [String: Any])] = ["id": runID]
        let limit: [String: (description: String, schema: [String: Any])] = [
            "scope": (
                description: "What the limit is on.",
                schema: Self.enumeration(EnqueueLimit.Scope.allCases.map(\.rawValue))
            ),
            "name": (description: "The queue or namespace.", schema: Self.string()),
        ]
        let schedule: [String: (description: String, schema: [String: Any])] = [
            "name": (description: "A schedule's name.", schema: Self.string())
        ]
        return [
            "health": .init(responses: [Self.ok("Health", "The server answers.")]),
            "ready": .init(
                responses: [
                    Self.ok("Ready", "Ready."),
                    .init(status: 503, description: "Not ready.", schema: Self.ref("NotReady")),
                ]
            ),
            "openapi": .init(
                responses: [
                    .init(status: 200, description: "This document.", schema: Self.freeObject("OpenAPI 3.0.3."))
                ]
            ),
            "listJobs": .init(
                query: Self.jobQuery(withState: true),
                responses: [Self.ok("JobList", "A page of jobs, newest first.")],
                errors: [400, 503]
            ),
            "enqueueJob": .init(
                requestBody: Self.ref("EnqueueRequest"),
                responses: [
                    .init(status: 201, description: "Enqueued.", schema: Self.ref("EnqueueResult")),
                    .init(
                        status: 200,
                        description: "A job with the unique key exists; it is returned.",
                        schema: Self.ref("EnqueueResult")
                    ),
                ],
                errors: [400, 409, 429, 503]
            ),
            "getJob": .init(
                pathParameters: job,
                responses: [Self.ok("Job", "The job with its attempts.")],
                errors: [400, 404, 503]
            ),
            "getJobTimeline": .init(
                pathParameters: job,
                responses: [Self.ok("Timeline", "The job's timeline.")],
                errors: [400, 404, 503]
            ),
            "explainJob": .init(
                pathParameters: job,
                responses: [Self.ok("Explanation", "Why the job is in its state.")],
                errors: [400, 404, 503]
            ),
            "cancelJob": .init(
                pathParameters: job,
                responses: [Self.ok("Job", "The job after the cancel.")],
                errors: [400, 404, 503]
            ),
            "retryJob": .init(
                pathParameters: job,
                responses: [Self.ok("Job", "The job, available again.")],
                errors: [400, 404, 409, 503]
            ),
            "replayJob": .init(
                pathParameters: job,
                responses: [.init(status: 201, description: "The copy.", schema: Self.ref("ReplayResult"))],
                errors: [400, 404, 409, 503]
            ),
            "listDeadLetters": .init(
                query: Self.jobQuery(withState: false),
                responses: [Self.ok("DeadLetters", "Counts per reason and a page of dead-lettered jobs.")],
                errors: [400, 503]
            ),
            "listQueues": .init(responses: [Self.ok("QueueList", "Every queue.")], errors: [503]),
            "pauseQueue": .init(
                pathParameters: ["name": queueName],
                responses: [Self.ok("Queue", "The queue, paused.")],
                errors: [400, 503]
            ),
            "resumeQueue": .init(
                pathParameters: ["name": queueName],
                responses: [Self.ok("Queue", "The queue, resumed.")],
                errors: [400, 503]
            ),
            "listWorkers": .init(responses: [Self.ok("WorkerList", "Live workers.")], errors: [503]),
            "setQueueConcurrency": .init(
                pathParameters: ["name": queueName],
                requestBody: Self.object([
                    "max_running": Self.integer("The most jobs leased at once.", minimum: 1, maximum: 10_000)
                ]),
                responses: [Self.ok("Queue", "The queue with its limit.")],
                errors: [400, 503]
            ),
            "removeQueueConcurrency": .init(
                pathParameters: ["name": queueName],
                responses: [Self.ok("Queue", "The queue without a limit.")],
                errors: [400, 503]
            ),
            "setQueueFairness": .init(
                pathParameters: ["name": queueName],
                requestBody: Self.object([
                    "fair": Self.boolean("true: share fetches among tenants by weight; false: first-come.")
                ]),
                responses: [Self.ok("Queue", "The queue.")],
                errors: [400, 503]
            ),
            "listTenants": .init(responses: [Self.ok("TenantList", "Every tenant with settings.")], errors: [503]),
            "setTenant": .init(
                pathParameters: ["name": tenantName],
                requestBody: Self.ref("TenantRequest"),
                responses: [Self.ok("Tenant", "The tenant's settings.")],
                errors: [400, 404, 503]
            ),
            "setTenantConcurrency": .init(
                pathParameters: ["name": tenantName],
                requestBody: Self.object([
                    "max_running": Self.integer("The most jobs leased at once.", minimum: 1, maximum: 10_000)
                ]),
                responses: [Self.ok("Tenant", "The tenant with its limit.")],
                errors: [400, 404, 503]
            ),
            "removeTenantConcurrency": .init(
                pathParameters: ["name": tenantName],
                responses: [Self.ok("Tenant", "The tenant without a limit.")],
                errors: [400, 404, 503]
            ),
            "removeTenant": .init(
                pathParameters: ["name": tenantName],
                responses: [Self.ok("TenantRemoved", "The settings are gone.")],
                errors: [400, 404, 503]
            ),
            "listPools": .init(responses: [Self.ok("PoolList", "Every pool.")], errors: [503]),
            "pausePool": .init(
                pathParameters: ["name": poolName],
                responses: [Self.ok("Pool", "The pool, paused.")],
                errors: [400, 503]
            ),
            "resumePool": .init(
                pathParameters: ["name": poolName],
                responses: [Self.ok("Pool", "The pool, resumed.")],
                errors: [400, 503]
            ),
            "listWorkflows": .init(
                query: [
                    [
                        "name": "status", "in": "query", "style": "form", "explode": true,
                        "description": "Only runs with these statuses; repeat it or separate values with commas.",
                        "schema": Self.array(Self.enumeration(WorkflowRunStatus.allCases.map(\.rawValue))),
                    ],
                    Self.query("name", Self.string(), "The workflow's name."),
                    Self.query("namespace", Self.string()),
                ] + Self.pageQuery(),
                responses: [Self.ok("WorkflowRunList", "A page of runs, newest first (steps are empty).")],
                errors: [400, 503]
            ),
            "getWorkflow": .init(
                pathParameters: run,
                responses: [Self.ok("WorkflowRunWithEvents", "The run with its steps and events.")],
                errors: [404, 503]
            ),
            "explainWorkflow": .init(
                pathParameters: run,
                responses: [Self.ok("Explanation", "Why the run is in its state.")],
                errors: [404, 503]
            ),
            "signalWorkflow": .init(
                pathParameters: run,
                requestBody: Self.ref("SignalRequest"),
                responses: [.init(status: 202, description: "The signal is stored.", schema: Self.ref("SignalResult"))],
                errors: [400, 404, 409, 503]
            ),
            "cancelWorkflow": .init(
                pathParameters: run,
                responses: [Self.ok("WorkflowRun", "The run after the cancel.")],
                errors: [404, 503]
            ),
            "retryDeadLetters": .init(
                requestBody: Self.ref("DeadLetterBulkRequest"),
                requestBodyIsRequired: false,
                responses: [Self.ok("DeadLetterBulkResult", "The jobs retried (or counted).")],
                errors: [400, 503]
            ),
            "discardDeadLetters": .init(
                requestBody: Self.ref("DeadLetterBulkRequest"),
                requestBodyIsRequired: false,
                responses: [Self.ok("DeadLetterBulkResult", "The jobs deleted (or counted).")],
                errors: [400, 503]
            ),
            "metrics": .init(responses: [Self.ok("Metrics", "Per-queue figures.")], errors: [503]),
            "prometheusMetrics": .init(
                responses: [
                    .init(
                        status: 200,
                        description: "Prometheus text exposition format 0.0.4.",
                        schema: Self.string(),
                        contentType: "text/plain"
                    )
                ],
                errors: [503]
            ),
            "listIngestDecisions": .init(
                query: [
                    Self.query("code", Self.string(), "Only refusals with this code."),
                    Self.query("queue", Self.string()),
                    Self.query("namespace", Self.string()),
                ] + Self.pageQuery(),
                responses: [Self.ok("IngestDecisionList", "A page of refused enqueues, newest first.")],
                errors: [400, 503]
            ),
            "listEnqueueLimits": .init(
                responses: [Self.ok("EnqueueLimitList", "Every limit, by scope and name.")],
                errors: [503]
            ),
            "setEnqueueLimit": .init(
                pathParameters: limit,
                requestBody: Self.ref("EnqueueLimitRequest"),
                responses: [Self.ok("EnqueueLimit", "The limit as stored.")],
                errors: [400, 503]
            ),
            "removeEnqueueLimit": .init(
                pathParameters: limit,
                responses: [Self.ok("EnqueueLimitRemoved", "The limit is gone.")],
                errors: [400, 404, 503]
            ),
            "listSchedules": .init(
                responses: [Self.ok("ScheduleList", "Every schedule, by name.")],
                errors: [503]
            ),
            "getSchedule": .init(
                pathParameters: schedule,
                responses: [Self.ok("ScheduleDetail", "The schedule with its events.")],
                errors: [404, 503]
            ),
            "defineSchedule": .init(
                pathParameters: schedule,
                requestBody: Self.ref("ScheduleRequest"),
                responses: [Self.ok("Schedule", "The schedule as stored.")],
                errors: [400, 413, 503]
            ),
            "deleteSchedule": .init(
                pathParameters: schedule,
                responses: [Self.ok("ScheduleDeleted", "The schedule is gone.")],
                errors: [404, 503]
            ),
            "pauseSchedule": .init(
                pathParameters: schedule,
                responses: [Self.ok("Schedule", "The paused schedule.")],
                errors: [404, 503]
            ),
            "resumeSchedule": .init(
                pathParameters: schedule,
                responses: [Self.ok("Schedule", "The resumed schedule.")],
                errors: [404, 503]
            ),
            "forkWorkflow": .init(
                pathParameters: run,
                requestBody: Self.ref("ForkRequest"),
                responses: [.init(status: 201, description: "The new run.", schema: Self.ref("ForkResult"))],
                errors: [400, 404, 409, 503]
            ),
        ]
    }
}
