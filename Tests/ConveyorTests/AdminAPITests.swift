import Conveyor
import ConveyorCore
import ConveyorHTTP
import ConveyorPostgres
import Foundation
import HTTPTypes
import PostgresNIO
import Testing

/// The admin API on a real server on loopback over a real schema: every route's success, not found, bad input and
/// auth, and operator actions recorded with the token's name.
@Suite(.database) struct AdminAPITests {
    /// The route's path with its parameters filled in.
    static func concrete(_ path: String) -> String {
        path.replacingOccurrences(of: "{id}", with: "1").replacingOccurrences(of: "{name}", with: "default")
            .replacingOccurrences(of: "{scope}", with: "queue")
    }

    @Test("every route but health and ready refuses a missing or wrong token with 401 UNAUTHORIZED")
    func everyRouteNeedsAToken() async throws {
        let db = try TestDatabase.get()
        try await AdminServer.with(db) { server in
            let routes = ConveyorAdminAPI.routeDescriptions
            #expect(routes.filter(\.isPublic).map(\.path) == ["/health", "/ready"])
            for route in routes where !route.isPublic {
                let method = HTTPRequest.Method(route.method)!
                let path = Self.concrete(route.path)
                for auth: AdminServer.Auth in [
                    .none, .bearer("wrong-wrong-wrong-wrong"), .apiKey(AdminServer.secret + "x"),
                ] {
                    let reply = try await server.call(
                        method,
                        path,
                        body: [.post, .put].contains(method) ? "{}" : nil,
                        auth: auth
                    )
                    #expect(reply.status == .unauthorized, "\(route.method) \(path) answered \(reply.status)")
                    #expect(reply.errorCode == "UNAUTHORIZED")
                }
                // The right token, as a bearer or an API key, gets past authentication.
                let bearer = try await server.call(method, path, body: [.post, .put].contains(method) ? "{}" : nil)
                #expect(bearer.status != .unauthorized, "\(route.method) \(path)")
                let key = try await server.call(
                    method,
                    path,
                    body: [.post, .put].contains(method) ? "{}" : nil,
                    auth: .apiKey("d" + AdminServer.secret)
                )
                #expect(key.status != .unauthorized, "\(route.method) \(path)")
                #expect(bearer.status.code < 500, "\(route.method) \(path) answered \(bearer.status): \(bearer.text)")
            }
            for path in ["/health", "/ready"] {
                #expect(try await server.get(path, auth: .none).status == .ok)
            }
        }
    }

    @Test("ready reports the schema's migrations, and a schema newer than this build as 503 SCHEMA_TOO_NEW")
    func readyReportsTheSchema() async throws {
        let db = try TestDatabase.get()
        try await AdminServer.with(db) { server in
            let ready = try await server.get("/ready", auth: .none)
            #expect(ready.status == .ok)
            #expect(ready.json["ready"] as? Bool == true)
            let schema = try #require(ready.json["schema"] as? [String: Any])
            #expect(schema["applied"] as? Int == PostgresJobStore.latestMigrationVersion)
            _ = try await db.execute("INSERT INTO {schema}.schema_migrations (version, name) VALUES (999, 'future')")
            let newer = try await server.get("/ready", auth: .none)
            #expect(newer.status == .serviceUnavailable)
            #expect(newer.json["reason"] as? String == "SCHEMA_TOO_NEW")
            #expect(try await server.get("/health", auth: .none).status == .ok)
        }
    }

    @Test("jobs: enqueue, get, list with filters and cursor pages, and a clamped limit")
    func jobs() async throws {
        let db = try TestDatabase.get()
        try await AdminServer.with(db) { server in
            let created = try await server.post(
                "/jobs",
                #"{"kind": "send-mail", "args": {"to": "a@example.com", "n": [1, 2]}, "queue": "mail", "tags": ["vip"], "priority": 2, "max_attempts": 4}"#
            )
            #expect(created.status == .created)
            let id = try #require(created.json["id"] as? Int)
            for n in 0..<3 { _ = try await db.client.jobs.enqueue(Echo(value: n)) }

            let job = try await server.get("/jobs/\(id)")
            #expect(job.status == .ok)
            #expect(job.json["kind"] as? String == "send-mail")
            #expect(job.json["queue"] as? String == "mail")
            #expect(job.json["max_attempts"] as? Int == 4)
            #expect((job.json["args"] as? [String: Any])?["to"] as? String == "a@example.com")

            let mail = try await server.get("/jobs?queue=mail&state=available&tag=vip")
            #expect((mail.json["jobs"] as? [[String: Any]])?.map { $0["id"] as? Int } == [id])
            let none = try await server.get("/jobs?kind=nothing")
            #expect((none.json["jobs"] as? [Any])?.isEmpty == true)
            let future = try await server.get("/jobs?created_after=2999-01-01T00:00:00Z")
            #expect((future.json["jobs"] as? [Any])?.isEmpty == true)
            let past = try await server.get("/jobs?created_before=2999-01-01T00:00:00Z")
            #expect((past.json["jobs"] as? [Any])?.count == 4)

            var seen: [Int] = []
            var cursor: String?
            repeat {
                let page = try await server.get("/jobs?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
                seen += (page.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
                cursor = page.json["next_cursor"] as? String
            } while cursor != nil
            #expect(seen.count == 4)
            #expect(seen == seen.sorted(by: >))
            // The store refuses limits outside 1…1000 (INVALID_FILTER); the API clamps them instead.
            let clamped = try await server.get("/jobs?limit=100000")
            #expect(clamped.status == .ok)
            #expect((clamped.json["jobs"] as? [Any])?.count == 4)
            let least = try await server.get("/jobs?limit=0")
            #expect((least.json["jobs"] as? [Any])?.count == 1)
            #expect(least.json["next_cursor"] as? String != nil)
        }
    }

    @Test("bad input gets 400, 413 or 404 with a stable code, and nothing stored changes")
    func badInput() async throws {
        let db = try TestDatabase.get()
        let stored = try await db.client.jobs.enqueue(Echo(value: 1))
        try await AdminServer.with(db) { server in
            let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                ("/jobs", .post, "{not json", .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, "[1, 2]", .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"args": {}}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": 5}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "priority": "high"}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "priority": true}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "priority": 1.5}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "tags": [1]}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "run_at": "tomorrow"}"#, .badRequest, "MALFORMED_JSON"),
                ("/jobs", .post, #"{"kind": "k", "args": [1]}"#, .badRequest, "MALFORMED_ARGUMENTS"),
                ("/jobs", .post, #"{"kind": "bad kind\u0000"}"#, .badRequest, "INVALID_KIND"),
                (
                    "/jobs", .post, #"{"kind": "k", "queue": "'; DROP TABLE jobs; --"}"#, .badRequest,
                    "INVALID_QUEUE_NAME"
                ),
                ("/jobs", .post, #"{"kind": "k", "max_attempts": -3}"#, .badRequest, "INVALID_OPTION"),
                ("/jobs?state=bogus", .get, nil, .badRequest, "INVALID_FILTER"),
                ("/jobs?queue=%00nul", .get, nil, .badRequest, "INVALID_QUEUE_NAME"),
                ("/jobs?queue=" + String(repeating: "q", count: 5000), .get, nil, .badRequest, "INVALID_QUEUE_NAME"),
                ("/jobs?cursor=j-1", .get, nil, .badRequest, "INVALID_FILTER"),
                ("/jobs?limit=ten", .get, nil, .badRequest, "INVALID_PARAMETER"),
                ("/jobs?created_after=yesterday", .get, nil, .badRequest, "INVALID_PARAMETER"),
                ("/jobs?kind=a&kind=b", .get, nil, .badRequest, "INVALID_PARAMETER"),
                ("/jobs/abc", .get, nil, .badRequest, "INVALID_PARAMETER"),
                ("/jobs/-4", .get, nil, .badRequest, "INVALID_PARAMETER"),
                ("/jobs/987654", .get, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/987654/timeline", .get, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/987654/explain", .get, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/987654/cancel", .post, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/987654/retry", .post, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/987654/replay", .post, nil, .notFound, "JOB_NOT_FOUND"),
                ("/jobs/\(stored.id.rawValue)/retry", .post, nil, .conflict, "INVALID_JOB_STATE"),
                ("/jobs/\(stored.id.rawValue)/replay", .post, nil, .conflict, "INVALID_JOB_STATE"),
                ("/queues/bad%20name/pause", .post, nil, .badRequest, "INVALID_QUEUE_NAME"),
                ("/workflows?status=sideways", .get, nil, .badRequest, "INVALID_FILTER"),
                ("/workflows/nope", .get, nil, .notFound, "WORKFLOW_NOT_FOUND"),
                ("/workflows/nope/explain", .get, nil, .notFound, "WORKFLOW_NOT_FOUND"),
                ("/workflows/nope/signal", .post, #"{"name": "go", "payload": 1}"#, .notFound, "WORKFLOW_NOT_FOUND"),
                ("/workflows/nope/signal", .post, #"{"payload": 1}"#, .badRequest, "MALFORMED_JSON"),
                ("/workflows/nope/cancel", .post, nil, .notFound, "WORKFLOW_NOT_FOUND"),
                ("/workflows/nope/fork", .post, #"{"from_step": "a"}"#, .notFound, "WORKFLOW_NOT_FOUND"),
                ("/workflows/nope/fork", .post, #"{}"#, .badRequest, "MALFORMED_JSON"),
            ]
            for (path, method, body, status, code) in cases {
                let reply = try await server.call(method, path, body: body)
                #expect(reply.status == status, "\(method) \(path): \(reply.status) \(reply.text)")
                #expect(reply.errorCode == code, "\(method) \(path): \(reply.text)")
            }
            // A body over the server's cap is refused before it is parsed; arguments over the client's 1 MiB cap
            // are refused by the client.
            let huge = "{\"kind\": \"k\", \"args\": {\"x\": \"" + String(repeating: "x", count: 3 << 20) + "\"}}"
            let tooLarge = try await server.post("/jobs", huge)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.errorCode == "BODY_TOO_LARGE")
            let big = "{\"kind\": \"k\", \"args\": {\"x\": \"" + String(repeating: "x", count: 3 << 19) + "\"}}"
            let bigArguments = try await server.post("/jobs", big)
            #expect(bigArguments.status == .contentTooLarge)
            #expect(bigArguments.errorCode == "ARGUMENTS_TOO_LARGE")
        }
        #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs") == 1)
        #expect(try await db.client.jobs.get(stored.id)?.state == .available)
    }

    @Test("cancel, retry, replay, pause and resume are in the timeline and the queue's events with the token's name")
    func operatorActionsAreRecorded() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        try await AdminServer.with(db) { server in
            let cancelled = try await server.post("/jobs/\(job.id.rawValue)/cancel")
            #expect(cancelled.status == .ok)
            #expect(cancelled.json["state"] as? String == "cancelled")
            let retried = try await server.post("/jobs/\(job.id.rawValue)/retry")
            #expect(retried.json["state"] as? String == "available")
            _ = try await server.post("/jobs/\(job.id.rawValue)/cancel", auth: .apiKey("d" + AdminServer.secret))
            let replay = try await server.post("/jobs/\(job.id.rawValue)/replay")
            #expect(replay.status == .created)
            let replayID = try #require(replay.json["id"] as? Int)

            let timeline = try await server.get("/jobs/\(job.id.rawValue)/timeline")
            let entries = try #require(timeline.json["entries"] as? [[String: Any]])
            #expect(entries.map { $0["kind"] as? String } == ["enqueued", "event", "event", "event", "event"])
            #expect(
                entries.dropFirst().map { $0["action"] as? String } == [
                    "cancelled", "retried", "cancelled", "replayed",
                ]
            )
            #expect(
                entries.dropFirst().map { $0["performed_by"] as? String }
                    == ["token:ops", "token:ops", "token:deploy", "token:ops"]
            )
            #expect(entries[1]["from_state"] as? String == "available")
            #expect(entries[1]["to_state"] as? String == "cancelled")
            #expect(entries[2]["from_state"] as? String == "cancelled")
            #expect((entries[4]["details"] as? [String: Any])?["replay"] as? String == "\(replayID)")
            let copy = try await server.get("/jobs/\(replayID)/timeline")
            let first = try #require((copy.json["entries"] as? [[String: Any]])?.first)
            #expect(first["summary"] as? String == "enqueued as a replay of job \(job.id.rawValue)")

            let paused = try await server.post("/queues/default/pause")
            #expect(paused.json["paused"] as? Bool == true)
            #expect(paused.json["paused_by"] as? String == "token:ops")
            let queues = try await server.get("/queues")
            let listed = try #require(
                (queues.json["queues"] as? [[String: Any]])?.first { $0["name"] as? String == "default" }
            )
            #expect(listed["paused"] as? Bool == true)
            #expect((listed["counts"] as? [String: Any])?["available"] as? Int == 1)
            let resumed = try await server.post("/queues/default/resume", auth: .apiKey("d" + AdminServer.secret))
            #expect(resumed.json["paused"] as? Bool == false)
        }
        let events = try await db.client.queues.events("default")
        #expect(events.map(\.action) == [.paused, .resumed])
        #expect(events.map(\.performedBy) == ["token:ops", "token:deploy"])
    }

    @Test("the dead-letter queue lists its jobs and counts per reason")
    func deadLetters() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { args, _ in
            if args.value < 2 { throw NonRetryable(TestFailure("no")) }
        }
        for value in 0..<3 { _ = try await db.client.jobs.enqueue(Echo(value: value), options: .init(maxAttempts: 1)) }
        _ = try await db.client.jobs.enqueue(kind: "unknown-kind", argumentsJSON: "{}")
        try await db.withWorker(registry) { _ in
            try await db.waitUntil("every job ended") {
                try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE finished_at IS NOT NULL") == 4
            }
        }
        try await AdminServer.with(db) { server in
            let dlq = try await server.get("/dlq")
            #expect(dlq.status == .ok)
            let reasons = try #require(dlq.json["reasons"] as? [[String: Any]])
            #expect(reasons.map { $0["reason"] as? String } == ["NON_RETRYABLE", "UNKNOWN_KIND"])
            #expect(reasons.map { $0["count"] as? Int } == [2, 1])
            #expect((dlq.json["jobs"] as? [Any])?.count == 3)
            let filtered = try await server.get("/dlq?kind=unknown-kind")
            #expect((filtered.json["jobs"] as? [Any])?.count == 1)
        }
    }

    @Test("workflows: list, get with steps and events, explain, signal to completion, cancel and fork")
    func workflows() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(workflow: StepThenSignal(counter: StepCounter()))
        registry.register(workflow: WaitsForever())
        try await db.withWorker(registry) { _ in
            _ = try await db.client.workflows.start(StepThenSignal.self, input: "x", options: .init(id: "api-run"))
            _ = try await db.client.workflows.start(WaitsForever.self, input: 1, options: .init(id: "api-waiter"))
            for id: WorkflowRunID in ["api-run", "api-waiter"] {
                try await db.waitUntil("run \(id.rawValue) waits") {
                    try await db.client.workflows.get(id)?.status == .waiting
                }
            }
            try await AdminServer.with(db) { server in
                let list = try await server.get("/workflows?status=waiting")
                let ids = (list.json["runs"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                #expect(Set(ids ?? []) == ["api-run", "api-waiter"])
                let explain = try await server.get("/workflows/api-waiter/explain")
                #expect(explain.json["reason"] as? String == "workflow_waiting_for_signal")

                let signalled = try await server.post(
                    "/workflows/api-run/signal",
                    #"{"name": "approved", "payload": "ann"}"#
                )
                #expect(signalled.status == .accepted)
                try await db.waitUntil("the signalled run completed") {
                    try await db.client.workflows.get("api-run")?.status == .completed
                }
                let run = try await server.get("/workflows/api-run")
                #expect(run.json["status"] as? String == "completed")
                let steps = try #require(run.json["steps"] as? [[String: Any]])
                #expect(steps.first?["status"] as? String == "completed")
                let events = try #require(run.json["events"] as? [[String: Any]])
                #expect(events.map { $0["action"] as? String } == ["signalled"])
                #expect(events.first?["performed_by"] as? String == "token:ops")

                let fork = try await server.post(
                    "/workflows/api-run/fork",
                    #"{"from_step": "\#(steps.last?["name"] as? String ?? "")", "new_id": "api-fork"}"#
                )
                #expect(fork.status == .created, "\(fork.text)")
                #expect(fork.json["id"] as? String == "api-fork")

                let cancelled = try await server.post("/workflows/api-waiter/cancel")
                #expect(cancelled.json["status"] as? String == "cancelled")
            }
        }
        let forked = try #require(try await db.client.workflows.get("api-fork"))
        #expect(forked.forkedFrom == "api-run")
        let waiterEvents = try await db.client.workflows.events("api-waiter")
        #expect(waiterEvents.map(\.action) == [.cancelled])
    }

    @Test("live workers are listed with their queues, slots and kinds, and gone once they stop")
    func workers() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in }
        try await db.withWorker(
            registry,
            configure: {
                $0.workerID = "api-worker"; $0.queues = ["mail": .init(slots: 3)]
            }
        ) { _ in
            try await db.waitUntil("the worker registered") { try await !db.client.workers.list().isEmpty }
            try await AdminServer.with(db) { server in
                let workers = try await server.get("/workers")
                let worker = try #require((workers.json["workers"] as? [[String: Any]])?.first)
                #expect(worker["id"] as? String == "api-worker")
                #expect((worker["queues"] as? [String: Any])?["mail"] as? Int == 3)
                #expect(worker["kinds"] as? [String] == [Echo.kind])
                #expect(worker["pool"] as? String == "default")

                let paused = try await server.post("/pools/default/pause")
                #expect(paused.status == .ok, "\(paused.text)")
                #expect(paused.json["paused"] as? Bool == true)
                #expect(paused.json["paused_by"] as? String == "token:ops")
                #expect(paused.json["workers"] as? [String] == ["api-worker"])
                let pools = try await server.get("/pools")
                let pool = try #require((pools.json["pools"] as? [[String: Any]])?.first)
                #expect(pool["name"] as? String == "default")
                #expect((pool["slots"] as? [String: Any])?["mail"] as? Int == 3)
                let resumed = try await server.post("/pools/default/resume")
                #expect(resumed.json["paused"] as? Bool == false)
                let bad = try await server.post("/pools/bad%20name/pause")
                #expect(bad.status == .badRequest)
                #expect(bad.errorCode == "INVALID_POOL_NAME")
            }
        }
        #expect(try await db.client.workers.list().isEmpty)
        // A restart under the same id is live again (its stopped row is revived by the newer process).
        try await db.withWorker(registry, configure: { $0.workerID = "api-worker" }) { _ in
            try await db.waitUntil("the restarted worker registered") {
                try await db.client.workers.list().map(\.id) == ["api-worker"]
            }
        }
        #expect(try await db.client.workers.list().isEmpty)
    }

    @Test("API tokens: a short secret or a bad name is refused, and an API without tokens is not built")
    func tokens() async throws {
        let db = try TestDatabase.get()
        #expect(try APIToken.parse("ops:0123456789abcdef,ci:fedcba9876543210").map(\.name) == ["ops", "ci"])
        #expect(try APIToken.parse("0123456789abcdef").map(\.name) == ["default"])
        #expect(try APIToken.parse(nil).isEmpty)
        await expectCode(.invalidConfiguration) { _ = try APIToken.parse("ops:short") }
        await expectCode(.invalidConfiguration) { _ = try APIToken.parse("bad name:0123456789abcdef") }
        await expectCode(.invalidConfiguration) {
            _ = try ConveyorAdminAPI(client: db.client, configuration: .init(tokens: []))
        }
    }
}

/// Bulk dead-letter actions and the metrics endpoints, on a live server with data that real workers produced.
@Suite(.database) struct AdminOperationsTests {
    /// Dead-letters `count` jobs of `queue` through a real worker (a handler that refuses them).
    static func deadLetter(_ db: TestDatabase, count: Int, queue: String) async throws -> [JobID] {
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in throw NonRetryable(TestFailure("refused")) }
        let jobs = try await db.client.jobs.enqueue(
            contentsOf: (0..<count).map { Echo(value: $0) },
            options: .init(queue: queue, maxAttempts: 1)
        )
        try await db.withWorker(registry, configure: { $0.queues = [queue: .init(slots: 4)] }) { _ in
            try await db.waitUntil("the jobs are dead-lettered") {
                try await db.client.jobs.deadLettered(JobFilter(queue: queue)).jobs.count == count
            }
        }
        return jobs.map(\.id)
    }

    @Test("bulk retry and discard by filter: a dry run counts, the action changes exactly those, each recorded")
    func bulkDeadLetters() async throws {
        let db = try TestDatabase.get()
        let mail = try await Self.deadLetter(db, count: 3, queue: "mail")
        let other = try await Self.deadLetter(db, count: 2, queue: "other")
        try await AdminServer.with(db) { server in
            let dry = try await server.post("/dlq/retry", #"{"queue": "mail", "dry_run": true}"#)
            #expect(dry.status == .ok)
            #expect(dry.json["matched"] as? Int == 3)
            #expect(dry.json["dry_run"] as? Bool == true)
            #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'discarded'") == 5)

            let retried = try await server.post("/dlq/retry", #"{"queue": "mail", "reason": "NON_RETRYABLE"}"#)
            #expect(retried.json["matched"] as? Int == 3)
            for id in mail { #expect(try await db.client.jobs.get(id)?.state == .available) }
            let timeline = try await db.client.jobs.timeline(mail[0])
            #expect(timeline.entries.last?.action == "retried")
            #expect(timeline.entries.last?.performedBy == "token:ops")

            let refused = try await server.post("/dlq/discard", #"{"reason": "SIDEWAYS"}"#)
            #expect(refused.status == .badRequest)
            #expect(refused.errorCode == "INVALID_FILTER")
            let tooMany = try await server.post("/dlq/discard", #"{"limit": 0}"#)
            #expect(tooMany.errorCode == "INVALID_FILTER")

            let discardDry = try await server.post("/dlq/discard", #"{"dry_run": true}"#)
            #expect(discardDry.json["matched"] as? Int == 2)
            let discarded = try await server.post("/dlq/discard", "{}")
            #expect(discarded.json["matched"] as? Int == 2)
            for id in other { #expect(try await db.client.jobs.get(id) == nil) }
            let events = try await db.store.events(for: .job(other[0]), limit: 10, logger: db.logger)
            #expect(events.map(\.action) == [.deleted])
            #expect(try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'discarded'") == 0)
        }
    }

    @Test("bulk retry takes one of the dead-lettered jobs that share a unique key, and none whose key a live job holds")
    func bulkRetryKeepsKeysUnique() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self) { _, _ in throw NonRetryable(TestFailure("refused")) }
        var dead: [JobID] = []
        try await db.withWorker(registry, configure: { $0.queues = ["dup": .init(slots: 1)] }) { _ in
            for key in ["k", "k", "k2"] {
                // A dead-lettered job frees its key, so the next job may take it and be dead-lettered too.
                let job = try await db.client.jobs.enqueue(
                    Echo(value: 1),
                    options: .init(queue: "dup", maxAttempts: 1, uniqueKey: key)
                )
                try await db.waitUntil("job \(job.id) is dead-lettered") {
                    try await db.client.jobs.get(job.id)?.state == .discarded
                }
                dead.append(job.id)
            }
        }
        // A live job holds k2 now.
        _ = try await db.client.jobs.enqueue(Echo(value: 2), options: .init(queue: "parked", uniqueKey: "k2"))
        try await AdminServer.with(db) { server in
            let dry = try await server.post("/dlq/retry", #"{"queue": "dup", "dry_run": true}"#)
            #expect(dry.json["matched"] as? Int == 1)
            let retried = try await server.post("/dlq/retry", #"{"queue": "dup"}"#)
            #expect(retried.status == .ok, "\(retried.text)")
            #expect(retried.json["matched"] as? Int == 1)
        }
        #expect(try await db.client.jobs.get(dead[0])?.state == .discarded)
        #expect(try await db.client.jobs.get(dead[1])?.state == .available)
        #expect(try await db.client.jobs.get(dead[2])?.state == .discarded)
    }

    @Test("queue counts stop at 10,000 and say so; smaller counts stay exact, for every queue and for one")
    func cappedCounts() async throws {
        let db = try TestDatabase.get()
        let limit = QueueInfo.countLimit
        _ = try await db.client.jobs.enqueue(
            contentsOf: (0..<(limit + 5)).map { Echo(value: $0) },
            options: .init(queue: "deep")
        )
        _ = try await db.client.jobs.enqueue(contentsOf: (0..<3).map { Echo(value: $0) }, options: .init(queue: "a"))
        _ = try await db.client.jobs.enqueue(
            contentsOf: (0..<2).map { Echo(value: $0) },
            options: .init(queue: "a", delay: .seconds(3600))
        )
        // Dead-lettering ten thousand jobs through a worker would take long; the state is set directly.
        _ = try await db.execute(
            """
            UPDATE {schema}.jobs SET state = 'discarded', dead_reason = 'DISCARDED', finished_at = now()
            WHERE id IN (SELECT id FROM {schema}.jobs WHERE queue = 'deep' ORDER BY id LIMIT \(limit))
            """
        )
        _ = try await db.client.jobs.enqueue(
            contentsOf: (0..<limit).map { Echo(value: $0) },
            options: .init(queue: "z")
        )

        let queues = Dictionary(uniqueKeysWithValues: try await db.client.queues.list().map { ($0.name, $0) })
        #expect(queues.keys.sorted() == ["a", "deep", "z"])
        let deep = try #require(queues["deep"])
        #expect(deep.counts[.available] == 5 && deep.counts[.discarded] == limit)
        #expect(deep.cappedStates == [.discarded])
        let a = try #require(queues["a"])
        #expect(a.counts[.available] == 3 && a.counts[.scheduled] == 2 && a.cappedStates.isEmpty)
        // Exactly the limit is reported as reached: counting stopped there.
        #expect(queues["z"]?.counts[.available] == limit && queues["z"]?.cappedStates == [.available])
        let one = try #require(try await db.client.queues.get("z"))
        #expect(one.counts[.available] == limit && one.cappedStates == [.available])
        #expect(try await db.client.queues.get("a")?.cappedStates == [])

        try await AdminServer.with(db) { server in
            let listed = try #require(try await server.get("/queues").json["queues"] as? [[String: Any]])
            let z = try #require(listed.first { $0["name"] as? String == "z" })
            #expect(z["capped"] as? [String] == ["available"])
            let metrics = try #require(try await server.get("/metrics").json["queues"] as? [[String: Any]])
            let byName = Dictionary(uniqueKeysWithValues: metrics.map { ($0["queue"] as? String ?? "", $0) })
            #expect(byName["deep"]?["capped"] as? [String] == ["dead_lettered"])
            #expect(byName["deep"]?["dead_lettered"] as? Int == limit)
            #expect(byName["a"]?["capped"] as? [String] == [])
            #expect(byName["z"]?["capped"] as? [String] == ["available"])
        }
    }

    @Test("metrics: counts from the partial indexes, rates from the stats workers write, start latency, Prometheus")
    func metrics() async throws {
        let db = try TestDatabase.get()
        var registry = JobRegistry()
        registry.register(Echo.self, retryPolicy: RetryPolicy(base: .seconds(3600))) { args, _ in
            if args.value % 4 == 0 { throw TestFailure("flaky") }
        }
        _ = try await db.client.jobs.enqueue(
            contentsOf: (1...20).map { Echo(value: $0) },
            options: .init(queue: "mail")
        )
        _ = try await db.client.jobs.enqueue(Echo(value: 7), options: .init(queue: "later", delay: .seconds(3600)))
        try await db.withWorker(registry, configure: { $0.queues = ["mail": .init(slots: 4)] }) { _ in
            try await db.waitUntil("15 jobs completed and 5 wait for their retry") {
                let completed = try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'completed'")
                let retryable = try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE state = 'retryable'")
                return completed == 15 && retryable == 5
            }
        }
        // The worker wrote its counts when it stopped.
        #expect(try await db.scalar("SELECT sum(completed)::int FROM {schema}.queue_stats WHERE queue = 'mail'") == 15)
        try await AdminServer.with(db) { server in
            let reply = try await server.get("/metrics")
            #expect(reply.status == .ok)
            let queues = try #require(reply.json["queues"] as? [[String: Any]])
            let mail = try #require(queues.first { $0["queue"] as? String == "mail" })
            #expect(mail["waiting"] as? Int == 5)
            #expect(mail["available"] as? Int == 0)
            let rate = try #require(mail["completed_per_second"] as? Double)
            #expect(rate > 0 && rate <= 15.0 / 60)
            #expect(abs((mail["success_rate"] as? Double ?? 0) - 0.75) < 0.001)
            #expect(abs((mail["retry_rate"] as? Double ?? 0) - 0.25) < 0.001)
            #expect((mail["completed_per_minute"] as? [Int])?.reduce(0, +) == 15)
            let latency = try #require(mail["start_latency_ms"] as? [String: Any])
            #expect(latency["samples"] as? Int == 20)
            let later = try #require(queues.first { $0["queue"] as? String == "later" })
            #expect(later["waiting"] as? Int == 1)

            let prom = try await server.get("/metrics/prom")
            #expect(prom.status == .ok)
            #expect(prom.headers[.contentType]?.hasPrefix("text/plain") == true)
            #expect(prom.text.contains(#"conveyor_queue_jobs{queue="mail",state="waiting"} 5"#))
            #expect(prom.text.contains("# TYPE conveyor_queue_completed_per_second gauge"))
            #expect(prom.text.contains(#"conveyor_queue_start_latency_milliseconds{queue="mail",quantile="0.99"}"#))
            #expect(prom.text.contains("conveyor_workers_live 0"))
            #expect(try await server.get("/metrics/prom", auth: .none).status == .unauthorized)
        }
    }
}
