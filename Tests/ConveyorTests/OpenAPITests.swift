import Conveyor
import ConveyorCore
import ConveyorHTTP
import Foundation
import HTTPTypes
import Testing

/// The OpenAPI document against the code: it lists exactly the route table, and every route's real responses, over
/// a real schema with real jobs, queues, workers and runs, validate against the schema documented for their status.
@Suite(.database) struct OpenAPITests {
    @Test("the document lists every route of the table with its method, operation id, tag and security, and no other")
    func everyRouteIsDocumented() throws {
        let document = try APIDocument()
        let routes = ConveyorAdminAPI.routeDescriptions
        #expect(document.root["openapi"] as? String == "3.0.3")

        var documented: Set<String> = []
        for (path, item) in document.paths {
            let item = try #require(item as? [String: Any], "\(path) is not a path item")
            for method in item.keys { documented.insert("\(method.uppercased()) \(path)") }
        }
        let table = routes.map { "\($0.method.uppercased()) \(APIDocument.template($0.path))" }
        #expect(Set(table).count == table.count, "the table has a method and path twice")
        #expect(
            documented.subtracting(table).isEmpty,
            "documented but not in the table: \(documented.subtracting(table))"
        )
        #expect(Set(table).subtracting(documented).isEmpty, "in the table but not documented")
        #expect(Set(routes.map(\.operationID)).count == routes.count, "operation ids are not unique")

        for route in routes {
            let name = "\(route.method) \(route.path)"
            let operation = try #require(document.operation(route), "\(name) is not documented")
            #expect(operation["operationId"] as? String == route.operationID, "\(name)")
            #expect(operation["summary"] as? String == route.summary, "\(name)")
            #expect(operation["tags"] as? [String] == [route.tag], "\(name)")
            #expect(operation["x-conveyor-undocumented"] == nil, "\(name) has no entry in the operation table")
            if route.isPublic {
                #expect((operation["security"] as? [Any])?.isEmpty == true, "\(name) is public")
            } else {
                #expect(operation["security"] == nil, "\(name) needs the document's global security")
            }

            let responses = try #require(operation["responses"] as? [String: Any], "\(name) has no responses")
            #expect(responses.keys.contains { $0.hasPrefix("2") }, "\(name) has no success response")
            if !route.isPublic { #expect(responses["401"] != nil, "\(name) does not document 401") }
            for status in responses.keys {
                let types = document.responseMediaTypes(operation, status: Int(status) ?? 0)
                #expect(!types.isEmpty, "\(name) \(status) has no content")
                for type in types {
                    let schema = document.responseSchema(operation, status: Int(status) ?? 0, mediaType: type)
                    #expect(schema != nil, "\(name) \(status) \(type) has no schema")
                }
            }
            for status in ["400", "401", "404", "409", "413", "500"] {
                guard let schema = document.responseSchema(operation, status: Int(status) ?? 0) else { continue }
                #expect(schema["$ref"] as? String == "#/components/schemas/Error", "\(name) \(status)")
            }

            let parameters = operation["parameters"] as? [[String: Any]] ?? []
            let declared = parameters.filter { $0["in"] as? String == "path" }
            let inPath = APIDocument.template(route.path).split(separator: "/").filter { $0.hasPrefix("{") }.map {
                String($0.dropFirst().dropLast())
            }
            #expect(declared.compactMap { $0["name"] as? String } == inPath, "\(name): path parameters")
            #expect(declared.allSatisfy { $0["required"] as? Bool == true }, "\(name): a path parameter is required")
            for parameter in parameters {
                #expect(parameter["schema"] is [String: Any], "\(name): parameter \(parameter["name"] ?? "?")")
            }
            let readsBody = ["POST", "PUT", "PATCH"].contains(route.method.uppercased())
            #expect(readsBody == (responses["413"] != nil), "\(name): every body is capped")
        }
    }

    @Test("paths are relative to the base path, which is the document's one server")
    func basePath() throws {
        let routes = Set(ConveyorAdminAPI.routeDescriptions.map { APIDocument.template($0.path) })
        for (basePath, server) in [("/api", "/api"), ("/conveyor/api/", "/conveyor/api"), ("", "/"), ("/", "/")] {
            let document = try APIDocument(basePath: basePath)
            let servers = try #require(document.root["servers"] as? [[String: Any]])
            #expect(servers.map { $0["url"] as? String } == [server], "base path \(basePath)")
            #expect(Set(document.paths.keys) == routes, "base path \(basePath)")
        }
        #expect(Set(try APIDocument().paths.keys) == routes)
    }

    @Test("security schemes, references and the schema keywords are what the validator and clients expect")
    func structure() throws {
        let document = try APIDocument()
        let components = try #require(document.root["components"] as? [String: Any])
        let schemes = try #require(components["securitySchemes"] as? [String: [String: String]])
        #expect(schemes["bearerAuth"] == ["type": "http", "scheme": "bearer"])
        #expect(schemes["apiKey"] == ["type": "apiKey", "in": "header", "name": "x-api-key"])
        let security = try #require(document.root["security"] as? [[String: [String]]])
        #expect(security == [["bearerAuth": []], ["apiKey": []]])

        // Every $ref names a component schema, and every schema uses only keywords the validator checks.
        var references: [String] = []
        Self.collectReferences(document.root, into: &references)
        #expect(!references.isEmpty)
        for reference in references {
            #expect(document.validator.resolve(reference) != nil, "\(reference) does not resolve")
        }
        for (name, schema) in document.validator.schemas {
            let schema = try #require(schema as? [String: Any], "\(name)")
            let unsupported = SchemaValidator.unsupportedKeywords(in: schema, at: name)
            #expect(unsupported.isEmpty, "\(unsupported)")
        }
        for route in ConveyorAdminAPI.routeDescriptions {
            let operation = try #require(document.operation(route))
            var schemas: [[String: Any]] = []
            if let request = document.requestSchema(operation) { schemas.append(request) }
            for parameter in operation["parameters"] as? [[String: Any]] ?? [] {
                if let schema = parameter["schema"] as? [String: Any] { schemas.append(schema) }
            }
            for status in (operation["responses"] as? [String: Any] ?? [:]).keys.compactMap({ Int($0) }) {
                for type in document.responseMediaTypes(operation, status: status) {
                    if let schema = document.responseSchema(operation, status: status, mediaType: type) {
                        schemas.append(schema)
                    }
                }
            }
            for schema in schemas {
                let unsupported = SchemaValidator.unsupportedKeywords(in: schema, at: route.operationID)
                #expect(unsupported.isEmpty, "\(unsupported)")
            }
        }
    }

    static func collectReferences(_ value: Any, into references: inout [String]) {
        if let object = value as? [String: Any] {
            if let reference = object["$ref"] as? String { references.append(reference) }
            for member in object.values { Self.collectReferences(member, into: &references) }
        } else if let array = value as? [Any] {
            for element in array { Self.collectReferences(element, into: &references) }
        }
    }

    @Test("the validator refuses a missing member, an extra one, a wrong type, a null, a bad time and an unknown value")
    func validatorCatchesDrift() throws {
        let validator = try APIDocument().validator
        let cases: [(String, String, Bool)] = [
            ("Error", #"{"error": {"code": "JOB_NOT_FOUND", "message": "no job"}}"#, true),
            ("Error", #"{"error": {"code": "JOB_NOT_FOUND"}}"#, false),
            ("Error", #"{"error": {"code": "JOB_NOT_FOUND", "message": "m", "hint": "h"}}"#, false),
            ("Error", #"{"error": {"code": null, "message": "m"}}"#, false),
            ("Error", #"{"error": {"code": 5, "message": "m"}}"#, false),
            ("Error", #"[]"#, false),
            ("Error", #"null"#, false),
            (
                "Queue",
                #"{"name": "q", "paused": false, "paused_at": null, "paused_by": null, "max_running": 5, "fair": false, "counts": {"available": 1000, "scheduled": 0, "retryable": 0, "running": 0, "discarded": 0}, "capped": ["available"]}"#,
                true
            ),
            (
                "Queue",
                #"{"name": "q", "paused": 0, "paused_at": null, "paused_by": null, "max_running": null, "counts": {"available": 1, "scheduled": 0, "retryable": 0, "running": 0, "discarded": 0}, "capped": []}"#,
                false
            ),
            (
                "Queue",
                #"{"name": "q", "paused": true, "paused_at": "yesterday", "paused_by": "x", "max_running": null, "counts": {"available": 1, "scheduled": 0, "retryable": 0, "running": 0, "discarded": 0}, "capped": []}"#,
                false
            ),
            (
                "Queue",
                #"{"name": "q", "paused": true, "paused_at": "2026-12-02T10:00:00.123Z", "paused_by": "x", "counts": {"available": 1.5, "scheduled": 0, "retryable": 0, "running": 0, "discarded": 0}, "capped": []}"#,
                false
            ),
            (
                "Queue",
                #"{"name": "q", "paused": false, "paused_at": null, "paused_by": null, "counts": {"available": 1, "scheduled": 0, "retryable": 0, "running": 0, "discarded": 0}, "capped": ["completed"]}"#,
                false
            ),
            (
                "Attempt",
                #"{"attempt": 1, "worker": "w", "started_at": "2026-12-02T10:00:00Z", "finished_at": "2026-12-02T10:00:01Z", "outcome": "failed", "error_code": "HANDLER_ERROR", "error": "boom", "duration_us": 12}"#,
                true
            ),
            (
                "Attempt",
                #"{"attempt": 1, "worker": "w", "started_at": "2026-12-02T10:00:00Z", "finished_at": "2026-12-02T10:00:01Z", "outcome": "exploded", "error_code": null, "error": null, "duration_us": 12}"#,
                false
            ),
            (
                "Attempt",
                #"{"attempt": true, "worker": "w", "started_at": "2026-12-02T10:00:00Z", "finished_at": "2026-12-02T10:00:01Z", "outcome": "completed", "error_code": null, "error": null, "duration_us": 12}"#,
                false
            ),
            (
                "Attempt",
                #"{"attempt": 1, "worker": "w", "started_at": "2026-12-02T10:00:00Z", "finished_at": null, "outcome": "completed", "error_code": null, "error": null, "duration_us": 12}"#,
                false
            ),
            (
                "Worker",
                #"{"id": "w", "pool": "p", "queues": {"a": 2}, "running": {"a": 1}, "kinds": ["k"], "workflows": [], "started_at": "2026-12-02T10:00:00Z", "heartbeat_at": "2026-12-02T10:00:00Z"}"#,
                true
            ),
            (
                "Worker",
                #"{"id": "w", "pool": "p", "running": {}, "queues": {"a": "2"}, "kinds": ["k"], "workflows": [], "started_at": "2026-12-02T10:00:00Z", "heartbeat_at": "2026-12-02T10:00:00Z"}"#,
                false
            ),
            (
                "Worker",
                #"{"id": "w", "pool": "p", "running": {}, "queues": {}, "kinds": [1], "workflows": [], "started_at": "2026-12-02T10:00:00Z", "heartbeat_at": "2026-12-02T10:00:00Z"}"#,
                false
            ),
        ]
        for (schema, json, valid) in cases {
            let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
            let errors = validator.validate(value, against: ["$ref": "#/components/schemas/\(schema)"])
            #expect(errors.isEmpty == valid, "\(schema) \(json): \(errors)")
        }
        #expect(!validator.validate([String: Any](), against: ["$ref": "#/components/schemas/Nothing"]).isEmpty)
    }

    @Test("every route's responses, over real jobs, dead letters, queues, workers and runs, match the document")
    func responsesMatchTheDocument() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            if args.value < 0 { throw NonRetryable(TestFailure("refused")) }
        }
        registry.register(workflow: StepThenSignal(counter: StepCounter()))
        registry.register(workflow: WaitsForever())
        try await db.client.queues.pause("held", by: "test")
        try await db.client.tenants.set("oa-tenant", weight: 2)
        try await db.client.limits.set(EnqueueLimit(scope: .queue, name: "limited", perSecond: 0.001, burst: 1))
        try await db.client.schedules.define(
            try CronSchedule("oa-nightly", cron: "0 3 * * *", timeZone: "Europe/Berlin", job: Echo(value: 3))
        )
        let done = try await db.client.jobs.enqueue(Echo(value: 1)).id
        let dead = try await db.client.jobs.enqueue(Echo(value: -1), options: .init(maxAttempts: 1)).id
        let held = try await db.client.jobs.enqueue(
            Echo(value: 2),
            options: .init(queue: "held", timeout: .seconds(5), tags: ["oa"], uniqueKey: "held-1")
        ).id
        try await db.withWorker(registry) { _ in
            _ = try await db.client.workflows.start(StepThenSignal.self, input: "x", options: .init(id: "oa-run"))
            _ = try await db.client.workflows.start(WaitsForever.self, input: 1, options: .init(id: "oa-waiter"))
            _ = try await db.client.workflows.start(WaitsForever.self, input: 2, options: .init(id: "oa-doomed"))
            try await db.waitUntil("oa-run waits for its signal") {
                try await db.client.workflows.get("oa-run")?.status == .waiting
            }
            try await db.client.workflows.signal("oa-run", "approved", "ann")
            try await db.waitUntil("the jobs and runs settled and the worker registered") {
                let client = db.client
                let jobs = [try await client.jobs.get(done)?.state, try await client.jobs.get(dead)?.state]
                var runs: [WorkflowRunStatus?] = []
                for id: WorkflowRunID in ["oa-run", "oa-waiter", "oa-doomed"] {
                    runs.append(try await client.workflows.get(id)?.status)
                }
                let workers = try await client.workers.list()
                return jobs == [.completed, .discarded] && runs == [.completed, .waiting, .waiting] && !workers.isEmpty
            }
            let forkStep = try #require(try await db.client.workflows.get("oa-run")?.steps.last?.name)

            try await AdminServer.with(db) { server in
                let checker = try ResponseChecker(server: server)
                let routes = ConveyorAdminAPI.routeDescriptions
                var created: Int?
                var replay: Int?
                for route in routes {
                    switch route.operationID {
                    case "health", "ready":
                        try await checker.probe(route, route.path, auth: .none, expect: .ok)
                    case "openapi":
                        let document = try await checker.probe(route, route.path, expect: .ok)
                        #expect((document as? [String: Any])?["openapi"] as? String == "3.0.3")
                    case "listJobs":
                        for query in [
                            "", "?state=completed&state=discarded", "?state=available,cancelled",
                            "?queue=held&kind=test.echo&namespace=default&tag=oa",
                            "?created_after=2000-01-01T00:00:00Z&created_before=2999-01-01T00:00:00.000Z",
                        ] {
                            try await checker.probe(route, "/jobs" + query, expect: .ok)
                        }
                        let first = try await checker.probe(route, "/jobs?limit=1", expect: .ok)
                        let cursor = try #require((first as? [String: Any])?["next_cursor"] as? String)
                        let encoded = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor
                        try await checker.probe(route, "/jobs?limit=1&cursor=\(encoded)", expect: .ok)
                    case "enqueueJob":
                        let body = #"""
                            {"kind": "send-mail", "args": {"to": "a@example.com"}, "queue": "held", \#
                            "namespace": "default", "priority": 3, "max_attempts": 4, "run_at": null, \#
                            "delay_ms": 60000, "timeout_ms": 2000, "tags": ["vip"], "unique_key": "mail-1"}
                            """#
                        let first = try await checker.probe(route, "/jobs", body: body, expect: .created)
                        created = (first as? [String: Any])?["id"] as? Int
                        let again = try await checker.probe(route, "/jobs", body: body, expect: .ok)
                        #expect((again as? [String: Any])?["duplicate"] as? Bool == true)
                        try await checker.probe(
                            route,
                            "/jobs",
                            body: #"{"kind": "k", "run_at": "2100-01-01T00:00:00Z"}"#,
                            expect: .created
                        )
                        try await checker.probe(
                            route,
                            "/jobs",
                            body: #"{"kind": "bad kind\u0000"}"#,
                            expect: .badRequest
                        )
                        let limited = #"{"kind": "k", "queue": "limited"}"#
                        try await checker.probe(route, "/jobs", body: limited, expect: .created)
                        try await checker.probe(route, "/jobs", body: limited, expect: .tooManyRequests)
                    case "getJob", "getJobTimeline", "explainJob":
                        let suffix = ["getJob": "", "getJobTimeline": "/timeline", "explainJob": "/explain"]
                        for id in [done.rawValue, dead.rawValue, held.rawValue] + (created.map { [Int64($0)] } ?? []) {
                            try await checker.probe(route, "/jobs/\(id)" + (suffix[route.operationID] ?? ""))
                        }
                    case "cancelJob":
                        try await checker.probe(route, "/jobs/\(held.rawValue)/cancel")
                    case "retryJob":
                        try await checker.probe(route, "/jobs/\(held.rawValue)/retry")
                    case "replayJob":
                        let copy = try await checker.probe(route, "/jobs/\(dead.rawValue)/replay", expect: .created)
                        replay = (copy as? [String: Any])?["id"] as? Int
                    case "listDeadLetters":
                        try await checker.probe(route, "/dlq")
                        try await checker.probe(route, "/dlq?kind=test.echo&limit=1")
                    case "listQueues":
                        try await checker.probe(route, "/queues")
                    case "pauseQueue":
                        try await checker.probe(route, "/queues/spare/pause")
                    case "resumeQueue":
                        try await checker.probe(route, "/queues/spare/resume")
                    case "listWorkers":
                        let workers = try await checker.probe(route, "/workers")
                        #expect(((workers as? [String: Any])?["workers"] as? [Any])?.isEmpty == false)
                    case "setQueueConcurrency":
                        let limited = try await checker.probe(
                            route,
                            "/queues/spare/concurrency",
                            body: #"{"max_running": 3}"#
                        )
                        #expect((limited as? [String: Any])?["max_running"] as? Int == 3)
                        try await checker.probe(
                            route,
                            "/queues/spare/concurrency",
                            body: #"{"max_running": 0}"#,
                            validateRequest: false,
                            expect: .badRequest
                        )
                    case "removeQueueConcurrency":
                        try await checker.probe(route, "/queues/spare/concurrency")
                    case "setQueueFairness":
                        let fair = try await checker.probe(route, "/queues/spare/fairness", body: #"{"fair": true}"#)
                        #expect((fair as? [String: Any])?["fair"] as? Bool == true)
                        try await checker.probe(
                            route,
                            "/queues/spare/fairness",
                            body: #"{"fair": "yes"}"#,
                            validateRequest: false,
                            expect: .badRequest
                        )
                    case "listTenants":
                        let tenants = try await checker.probe(route, "/tenants")
                        #expect(((tenants as? [String: Any])?["tenants"] as? [Any])?.count == 1)
                    case "setTenant":
                        let tenant = try await checker.probe(route, "/tenants/acme", body: #"{"weight": 2.5}"#)
                        #expect((tenant as? [String: Any])?["weight"] as? Double == 2.5)
                        try await checker.probe(
                            route,
                            "/tenants/acme",
                            body: #"{"weight": 0}"#,
                            validateRequest: false,
                            expect: .badRequest
                        )
                    case "setTenantConcurrency":
                        let tenant = try await checker.probe(
                            route,
                            "/tenants/oa-capped/concurrency",
                            body: #"{"max_running": 5}"#
                        )
                        #expect((tenant as? [String: Any])?["max_running"] as? Int == 5)
                        #expect((tenant as? [String: Any])?["running"] as? Int == 0)
                        try await checker.probe(
                            route,
                            "/tenants/oa-capped/concurrency",
                            body: #"{"max_running": 0}"#,
                            validateRequest: false,
                            expect: .badRequest
                        )
                    case "removeTenantConcurrency":
                        let tenant = try await checker.probe(route, "/tenants/oa-capped/concurrency")
                        #expect((tenant as? [String: Any])?["max_running"] is NSNull)
                    case "removeTenant":
                        try await checker.probe(route, "/tenants/oa-tenant")
                        try await checker.probe(route, "/tenants/oa-tenant", expect: .notFound)
                    case "listPools":
                        let pools = try await checker.probe(route, "/pools")
                        #expect(((pools as? [String: Any])?["pools"] as? [Any])?.isEmpty == false)
                    case "pausePool":
                        try await checker.probe(route, "/pools/spare/pause")
                    case "resumePool":
                        try await checker.probe(route, "/pools/spare/resume")
                    case "listWorkflows":
                        for query in ["", "?status=waiting&status=completed", "?name=test.waits-forever&limit=1"] {
                            try await checker.probe(route, "/workflows" + query)
                        }
                    case "getWorkflow":
                        for id in ["oa-run", "oa-waiter"] { try await checker.probe(route, "/workflows/\(id)") }
                    case "explainWorkflow":
                        for id in ["oa-run", "oa-waiter"] { try await checker.probe(route, "/workflows/\(id)/explain") }
                    case "signalWorkflow":
                        try await checker.probe(
                            route,
                            "/workflows/oa-waiter/signal",
                            body: #"{"name": "go", "payload": 7}"#,
                            expect: .accepted
                        )
                    case "cancelWorkflow":
                        try await checker.probe(route, "/workflows/oa-doomed/cancel")
                    case "forkWorkflow":
                        try await checker.probe(
                            route,
                            "/workflows/oa-run/fork",
                            body: #"{"from_step": "\#(forkStep)", "new_id": "oa-fork"}"#,
                            expect: .created
                        )
                    case "retryDeadLetters":
                        try await checker.probe(route, "/dlq/retry", body: #"{"dry_run": true}"#)
                        try await checker.probe(
                            route,
                            "/dlq/retry",
                            body: #"{"reason": "UNKNOWN_KIND", "kind": "nothing", "limit": 10, "dry_run": false}"#
                        )
                        try await checker.probe(route, "/dlq/retry")
                    case "discardDeadLetters":
                        try await checker.probe(
                            route,
                            "/dlq/discard",
                            body: #"{"dry_run": true, "queue": "default", "created_after": "2000-01-01T00:00:00Z"}"#
                        )
                    case "metrics":
                        try await checker.probe(route, "/metrics")
                    case "prometheusMetrics":
                        let text = try await checker.probe(route, "/metrics/prom")
                        #expect((text as? String)?.isEmpty == false)
                    case "listIngestDecisions":
                        try await checker.probe(route, "/ingest/decisions")
                        let refused = try await checker.probe(route, "/ingest/decisions?code=RATE_LIMITED&limit=1")
                        #expect(((refused as? [String: Any])?["decisions"] as? [Any])?.count == 1)
                    case "listEnqueueLimits":
                        let limits = try await checker.probe(route, "/limits")
                        #expect(((limits as? [String: Any])?["limits"] as? [Any])?.isEmpty == false)
                    case "setEnqueueLimit":
                        try await checker.probe(route, "/limits/queue/spare", body: #"{"per_second": 2.5, "burst": 3}"#)
                        try await checker.probe(
                            route,
                            "/limits/namespace/other",
                            body: #"{"per_second": 1, "burst": 1}"#
                        )
                    case "removeEnqueueLimit":
                        try await checker.probe(route, "/limits/queue/spare")
                    case "listSchedules":
                        let listed = try await checker.probe(route, "/schedules")
                        #expect(((listed as? [String: Any])?["schedules"] as? [Any])?.count == 1)
                    case "getSchedule":
                        try await checker.probe(route, "/schedules/oa-nightly")
                        try await checker.probe(route, "/schedules/missing", expect: .notFound)
                    case "defineSchedule":
                        let body = #"""
                            {"cron": "*/15 * * * * *", "kind": "echo", "args": {"value": 2}, "time_zone": "UTC", \#
                            "catch_up": "all", "queue": "reports", "namespace": "default", "priority": 1, \#
                            "max_attempts": 3, "timeout_ms": 1000, "tags": ["cron"]}
                            """#
                        let defined = try await checker.probe(route, "/schedules/oa-other", body: body)
                        #expect((defined as? [String: Any])?["catch_up"] as? String == "all")
                        try await checker.probe(
                            route,
                            "/schedules/oa-other",
                            body: #"{"cron": "0 0 30 2 *", "kind": "echo"}"#,
                            expect: .badRequest
                        )
                        try await checker.probe(
                            route,
                            "/schedules/oa-other",
                            body: #"{"cron": "0 3 * * *", "kind": "echo", "time_zone": "Mars/Olympus"}"#,
                            expect: .badRequest
                        )
                    case "deleteSchedule":
                        try await checker.probe(route, "/schedules/oa-other")
                        try await checker.probe(route, "/schedules/oa-other", expect: .notFound)
                    case "pauseSchedule":
                        let paused = try await checker.probe(route, "/schedules/oa-nightly/pause")
                        #expect((paused as? [String: Any])?["paused_by"] as? String == "token:ops")
                    case "resumeSchedule":
                        try await checker.probe(route, "/schedules/oa-nightly/resume")
                    default:
                        Issue.record("route \(route.operationID) has no probe in \(#function): add one")
                    }
                }
                #expect(checker.checked == Set(routes.map(\.operationID)), "routes never validated")

                // After the actions: a replay, a cancelled and retried job, a forked and a cancelled run.
                let byID = Dictionary(routes.map { ($0.operationID, $0) }, uniquingKeysWith: { first, _ in first })
                let getJob = try #require(byID["getJob"])
                if let replay { try await checker.probe(getJob, "/jobs/\(replay)") }
                try await checker.probe(getJob, "/jobs/\(held.rawValue)")
                try await checker.probe(try #require(byID["getJobTimeline"]), "/jobs/\(held.rawValue)/timeline")
                let getWorkflow = try #require(byID["getWorkflow"])
                for id in ["oa-fork", "oa-doomed"] { try await checker.probe(getWorkflow, "/workflows/\(id)") }
                try await checker.probe(try #require(byID["explainWorkflow"]), "/workflows/oa-doomed/explain")

                // Errors answer the Error schema under the status each route documents.
                try await checker.probe(getJob, "/jobs/987654", expect: .notFound)
                try await checker.probe(getJob, "/jobs/abc", expect: .badRequest)
                let listJobs = try #require(byID["listJobs"])
                try await checker.probe(listJobs, "/jobs", auth: .none, expect: .unauthorized)
                try await checker.probe(listJobs, "/jobs?limit=ten", expect: .badRequest)
                try await checker.probe(listJobs, "/jobs?state=bogus", expect: .badRequest)
                let enqueue = try #require(byID["enqueueJob"])
                try await checker.probe(
                    enqueue,
                    "/jobs",
                    body: "{not json",
                    validateRequest: false,
                    expect: .badRequest
                )
                try await checker.probe(
                    try #require(byID["signalWorkflow"]),
                    "/workflows/oa-run/signal",
                    body: #"{"name": "late"}"#,
                    expect: .conflict
                )
                try await checker.probe(
                    try #require(byID["retryJob"]),
                    "/jobs/\(done.rawValue)/retry",
                    expect: .conflict
                )
                try await checker.probe(
                    try #require(byID["pauseQueue"]),
                    "/queues/spare/pause",
                    body: String(repeating: " ", count: (2 << 20) + 1),
                    validateRequest: false,
                    expect: .contentTooLarge
                )
                try await checker.probe(
                    try #require(byID["forkWorkflow"]),
                    "/workflows/oa-run/fork",
                    body: #"{"from_step": "no-such-step"}"#,
                    expect: .notFound
                )

                let removeLimit = try #require(byID["removeEnqueueLimit"])
                try await checker.probe(removeLimit, "/limits/queue/never-limited", expect: .notFound)
                try await checker.probe(removeLimit, "/limits/galaxy/x", expect: .badRequest)
                try await checker.probe(
                    try #require(byID["setEnqueueLimit"]),
                    "/limits/queue/spare",
                    body: #"{"per_second": 0, "burst": 1}"#,
                    validateRequest: false,
                    expect: .badRequest
                )

                // Not ready: a schema newer than this build.
                _ = try await db.execute(
                    "INSERT INTO {schema}.schema_migrations (version, name) VALUES (999, 'future')"
                )
                let ready = try #require(byID["ready"])
                try await checker.probe(ready, "/ready", auth: .none, expect: .serviceUnavailable)
            }
        }
    }
}

/// Calls routes on a live server and validates each request body and response against the document.
final class ResponseChecker: CustomTestStringConvertible {
    let server: AdminServer
    let document: APIDocument
    /// The operation ids with at least one validated response.
    private(set) var checked: Set<String> = []

    var testDescription: String { "the response checker" }

    init(server: AdminServer) throws {
        self.server = server
        self.document = try APIDocument()
    }

    /// Calls `path` (below the base path) with `route`'s method, expects `status`, and validates the body sent
    /// against the documented request body and the body answered against the schema documented for the status.
    /// Returns the answered JSON.
    @discardableResult
    func probe(
        _ route: ConveyorAdminAPI.RouteDescription,
        _ path: String,
        body: String? = nil,
        auth: AdminServer.Auth = .bearer(AdminServer.secret),
        validateRequest: Bool = true,
        expect status: HTTPResponse.Status = .ok,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Any {
        let name = "\(route.method) \(path)"
        let method = try #require(HTTPRequest.Method(route.method), sourceLocation: sourceLocation)
        let operation = try #require(
            self.document.operation(route),
            "\(route.operationID) is not documented",
            sourceLocation: sourceLocation
        )
        if let body, validateRequest {
            let schema = try #require(
                self.document.requestSchema(operation),
                "\(name) sends a body the document does not describe",
                sourceLocation: sourceLocation
            )
            let value = try JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed])
            let errors = self.document.validator.validate(value, against: schema, at: "request")
            #expect(errors.isEmpty, "\(name): the request does not match: \(errors)", sourceLocation: sourceLocation)
        }

        let reply = try await self.server.call(method, path, body: body, auth: auth)
        #expect(
            reply.status == status,
            "\(name): \(reply.status) \(reply.text.prefix(500))",
            sourceLocation: sourceLocation
        )
        let contentType = reply.headers[.contentType] ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let documented = self.document.responseSchema(operation, status: reply.status.code, mediaType: mediaType)
        let schema = try #require(
            documented,
            "\(name) answered \(reply.status) as \(contentType), which the document does not list",
            sourceLocation: sourceLocation
        )
        // JSON is validated as parsed; any other media type (Prometheus text) as one string.
        let value: Any =
            mediaType == "application/json"
            ? try JSONSerialization.jsonObject(with: Data(reply.text.utf8), options: [.fragmentsAllowed])
            : reply.text
        let errors = self.document.validator.validate(value, against: schema, at: "response")
        #expect(
            errors.isEmpty,
            "\(name) \(reply.status.code) does not match the document: \(errors)\n\(reply.text.prefix(2000))",
            sourceLocation: sourceLocation
        )
        self.checked.insert(route.operationID)
        return value
    }
}

/// The document as a client sees it: written by `JSONSerialization` and parsed back.
struct APIDocument: CustomTestStringConvertible {
    let root: [String: Any]
    let validator: SchemaValidator

    init(basePath: String = "/api") throws {
        let generated = ConveyorAdminAPI.openAPIDocument(basePath: basePath)
        try #require(JSONSerialization.isValidJSONObject(generated), "the document is not JSON")
        let data = try JSONSerialization.data(withJSONObject: generated, options: [.sortedKeys])
        self.root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        self.validator = SchemaValidator(document: self.root)
    }

    var paths: [String: Any] { self.root["paths"] as? [String: Any] ?? [:] }

    /// Short, so that a failed expectation does not print the whole document.
    var testDescription: String { "the OpenAPI document" }

    /// A route's path as OpenAPI writes it: `:id` segments as `{id}`.
    static func template(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map {
            $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0)
        }
        .joined(separator: "/")
    }

    func operation(_ route: ConveyorAdminAPI.RouteDescription) -> [String: Any]? {
        (self.paths[Self.template(route.path)] as? [String: Any])?[route.method.lowercased()] as? [String: Any]
    }

    func responseSchema(
        _ operation: [String: Any],
        status: Int,
        mediaType: String = "application/json"
    ) -> [String: Any]? {
        Self.schema(of: (operation["responses"] as? [String: Any])?[String(status)], mediaType: mediaType)
    }

    /// The media types a response's content lists.
    func responseMediaTypes(_ operation: [String: Any], status: Int) -> [String] {
        let response = (operation["responses"] as? [String: Any])?[String(status)] as? [String: Any]
        return ((response?["content"] as? [String: Any])?.keys).map { Array($0).sorted() } ?? []
    }

    func requestSchema(_ operation: [String: Any]) -> [String: Any]? {
        Self.schema(of: operation["requestBody"], mediaType: "application/json")
    }

    private static func schema(of container: Any?, mediaType: String) -> [String: Any]? {
        let content = (container as? [String: Any])?["content"] as? [String: Any]
        return (content?[mediaType] as? [String: Any])?["schema"] as? [String: Any]
    }
}

/// A validator for the part of JSON Schema that OpenAPI 3.0 uses and the document needs.
///
/// It checks `$ref` (to `#/components/schemas/…`, followed, with no siblings), `type` (`integer` only for numbers
/// written without a fraction or exponent; `number` for any number; `boolean` apart from numbers), `nullable` (a
/// JSON null is valid only under `nullable: true`), `enum`, `required`, `properties`, `additionalProperties`
/// (`false`, or a schema every other member must match), `items`, `format: date-time` (ISO 8601 with a zone),
/// `minimum` (with OpenAPI 3.0's boolean `exclusiveMinimum`)/`maximum`, `minLength`/`maxLength` and `minItems`/`maxItems`. Any other keyword is an error, so that
/// the document cannot rely on one the validator would silently skip. Values are as `JSONSerialization` parses them.
struct SchemaValidator: CustomTestStringConvertible {
    enum Kind: String {
        case null, boolean, integer, number, string, array, object
    }

    static let keywords: Set<String> = [
        "$ref", "type", "nullable", "enum", "required", "properties", "additionalProperties", "items", "format",
        "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "minItems", "maxItems", "description",
        "default",
    ]

    let schemas: [String: Any]

    var testDescription: String { "the validator" }

    init(document: [String: Any]) {
        self.schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any] ?? [:]
    }

    func resolve(_ reference: String) -> [String: Any]? {
        let prefix = "#/components/schemas/"
        guard reference.hasPrefix(prefix) else { return nil }
        return self.schemas[String(reference.dropFirst(prefix.count))] as? [String: Any]
    }

    /// The problems of `value` against `schema`, each with the JSON path where it is; empty when it is valid.
    func validate(_ value: Any, against schema: [String: Any], at path: String = "$") -> [String] {
        let unknown = schema.keys.filter { !Self.keywords.contains($0) }.sorted()
        if !unknown.isEmpty { return ["\(path): the schema uses \(unknown), which the validator does not check"] }
        if let reference = schema["$ref"] {
            guard schema.count == 1, let reference = reference as? String, let target = self.resolve(reference) else {
                return ["\(path): $ref \(reference) does not resolve or has siblings"]
            }
            return self.validate(value, against: target, at: path)
        }
        guard let kind = Self.kind(of: value) else { return ["\(path): not a JSON value: \(type(of: value))"] }
        if kind == .null {
            return schema["nullable"] as? Bool == true ? [] : ["\(path): null where the schema is not nullable"]
        }
        if let type = schema["type"] as? String, type != kind.rawValue, !(type == "number" && kind == .integer) {
            return ["\(path): \(kind.rawValue) where the schema has \(type)"]
        }
        var errors: [String] = []
        if let values = schema["enum"] as? [Any], !values.contains(where: { Self.equal($0, value) }) {
            errors.append("\(path): \(value) is not one of \(values)")
        }
        switch kind {
        case .string:
            let text = value as? String ?? ""
            if schema["format"] as? String == "date-time", Self.date(text) == nil {
                errors.append("\(path): \(text) is not an ISO 8601 date-time")
            }
            if let minimum = schema["minLength"] as? Int, text.count < minimum {
                errors.append("\(path): shorter than \(minimum)")
            }
            if let maximum = schema["maxLength"] as? Int, text.count > maximum {
                errors.append("\(path): longer than \(maximum)")
            }
        case .integer, .number:
            let number = (value as? NSNumber)?.doubleValue ?? .nan
            if let minimum = (schema["minimum"] as? NSNumber)?.doubleValue {
                let exclusive = schema["exclusiveMinimum"] as? Bool == true
                if exclusive ? !(number > minimum) : !(number >= minimum) {
                    errors.append("\(path): \(value) is below \(minimum)\(exclusive ? " or equal to it" : "")")
                }
            }
            if let maximum = (schema["maximum"] as? NSNumber)?.doubleValue, !(number <= maximum) {
                errors.append("\(path): \(value) is above \(maximum)")
            }
        case .array:
            let array = value as? [Any] ?? []
            if let items = schema["items"] as? [String: Any] {
                for (index, item) in array.enumerated() {
                    errors += self.validate(item, against: items, at: "\(path)[\(index)]")
                }
            }
            if let minimum = schema["minItems"] as? Int, array.count < minimum {
                errors.append("\(path): fewer than \(minimum) items")
            }
            if let maximum = schema["maxItems"] as? Int, array.count > maximum {
                errors.append("\(path): more than \(maximum) items")
            }
        case .object:
            let object = value as? [String: Any] ?? [:]
            for name in schema["required"] as? [String] ?? [] where object[name] == nil {
                errors.append("\(path): the required member \(name) is missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (name, member) in object.sorted(by: { $0.key < $1.key }) {
                if let property = properties[name] as? [String: Any] {
                    errors += self.validate(member, against: property, at: "\(path).\(name)")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    errors += self.validate(member, against: additional, at: "\(path).\(name)")
                } else if schema["additionalProperties"] as? Bool == false {
                    errors.append("\(path): the member \(name) is not in the schema")
                }
            }
        case .null, .boolean:
            break
        }
        return errors
    }

    /// Keywords in `schema` or the schemas inside it that ``validate(_:against:at:)`` does not check.
    static func unsupportedKeywords(in schema: [String: Any], at path: String) -> [String] {
        var found = schema.keys.filter { !Self.keywords.contains($0) }.sorted().map { "\(path): \($0)" }
        if schema["$ref"] != nil, schema.count > 1 { found.append("\(path): $ref with siblings") }
        for (name, property) in schema["properties"] as? [String: Any] ?? [:] {
            guard let property = property as? [String: Any] else {
                found.append("\(path).\(name) is not a schema")
                continue
            }
            found += Self.unsupportedKeywords(in: property, at: "\(path).\(name)")
        }
        if let items = schema["items"] as? [String: Any] {
            found += Self.unsupportedKeywords(in: items, at: "\(path)[]")
        }
        if let additional = schema["additionalProperties"] as? [String: Any] {
            found += Self.unsupportedKeywords(in: additional, at: "\(path).*")
        }
        return found
    }

    /// The kind of a value `JSONSerialization` parsed: booleans and numbers are both `NSNumber`, told apart by
    /// their type code (`c` for a boolean, `d` or `f` for a number with a fraction or exponent).
    static func kind(of value: Any) -> Kind? {
        if value is NSNull { return .null }
        if value is String { return .string }
        if value is [String: Any] { return .object }
        if value is [Any] { return .array }
        if let number = value as? NSNumber {
            switch String(cString: number.objCType) {
            case "c", "B": return .boolean
            case "d", "f": return .number
            default: return .integer
            }
        }
        return nil
    }

    static func equal(_ lhs: Any, _ rhs: Any) -> Bool {
        guard let kind = Self.kind(of: lhs), kind == Self.kind(of: rhs) else { return false }
        switch kind {
        case .null: return true
        case .string: return lhs as? String == rhs as? String
        case .boolean, .integer, .number: return (lhs as? NSNumber) == (rhs as? NSNumber)
        case .array, .object: return false
        }
    }

    static func date(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) {
            return date
        }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }
}
