import Conveyor
import ConveyorCore
import ConveyorHTTP
import ConveyorPostgres
import Foundation
import Testing

/// The dashboard in a real headless Chromium against a live server with data: each page loads, runs its script
/// against the API with a token, and shows what the data says. With `CONVEYOR_SCREENSHOTS=<folder>` it also writes
/// a PNG of each page there (how docs/dashboard/ was made).
@Suite(.database) struct DashboardTests {
    struct Hostile: JobArguments {
        static let kind = "test.hostile"
        var note: String
    }

    /// Jobs in every state the pages show, a paused queue, a waiting run, a live worker and a minute of stats.
    static func seed(_ db: TestDatabase) async throws -> (dead: JobID, hostile: JobID) {
        var registry = JobRegistry()
        // The failing job's retry waits an hour, so it is still retryable when the pages load however long the
        // seed takes (with the default 1 s backoff, a slow run let it reach its third attempt and be discarded).
        registry.register(Echo.self, retryPolicy: .constant(.seconds(3600))) { args, _ in
            if args.value == 3 { throw NonRetryable(TestFailure("the mail server refused the address")) }
            if args.value == 4 { throw TestFailure("timeout talking to smtp.example.com") }
        }
        registry.register(Hostile.self) { _, _ in }
        registry.register(workflow: WaitsForever())
        try await db.client.schedules.define(
            try CronSchedule("dash-nightly", cron: "0 3 * * *", timeZone: "Europe/Berlin", job: Echo(value: 9))
        )
        try await db.client.schedules.pause("dash-nightly", by: "token:ops")
        let jobs = try await db.client.jobs.enqueue(
            contentsOf: (0..<5).map { Echo(value: $0) },
            options: .init(queue: "mail", maxAttempts: 3)
        )
        let hostile = try await db.client.jobs.enqueue(
            Hostile(note: "<script>alert('x')</script><img src=x onerror=alert(1)>"),
            options: .init(queue: "mail")
        )
        _ = try await db.client.jobs.enqueue(Echo(value: 9), options: .init(queue: "reports"))
        try await db.client.queues.pause("reports", by: "token:ops")
        try await db.withWorker(
            registry,
            configure: {
                $0.queues = ["mail": .init(slots: 4), "default": .init(slots: 2)]
                $0.workerID = "vm-12"
            }
        ) { _ in
            _ = try await db.client.workflows.start(WaitsForever.self, input: 1, options: .init(id: "dash-run"))
            try await db.waitUntil("the mail jobs ran and the run waits") {
                let ended = try await db.scalar(
                    "SELECT count(*) FROM {schema}.jobs WHERE queue = 'mail' AND state IN ('completed', 'discarded', 'retryable')"
                )
                let run = try await db.client.workflows.get("dash-run")
                return ended == 6 && run?.status == .waiting
            }
        }
        try await db.store.registerWorker(
            WorkerPresence(
                id: "dash-worker",
                queues: ["mail": 4],
                kinds: [Echo.kind],
                workflows: ["test.waits-forever@1"]
            ),
            logger: db.logger
        )
        return (jobs[3].id, hostile.id)
    }

    func page(
        _ server: AdminServer,
        _ fragment: String,
        token: String? = AdminServer.secret,
        photograph: Bool = true
    ) async throws -> String {
        var url = server.baseURL + "/#" + fragment
        if let token { url += (fragment.contains("?") ? "&" : "?") + "token=\(token)" }
        let dom = try await Chromium.dom(url)
        if let folder = ProcessInfo.processInfo.environment["CONVEYOR_SCREENSHOTS"], photograph,
            token == AdminServer.secret
        {
            // overview.png, jobs.png, job.png (a job's page), dlq.png, queues.png, workflows.png, workflow.png, …
            let parts = fragment.split(separator: "?")[0].split(separator: "/")
            var name = parts.first.map(String.init) ?? "overview"
            if parts.count > 1 { name = String(name.dropLast()) }
            try await Chromium.screenshot(url, to: "\(folder)/\(name).png")
        }
        return dom
    }

    @Test("every page loads in Chromium and shows what the data says, and nothing without a valid token")
    func pages() async throws {
        let db = try TestDatabase.get()
        let (dead, hostile) = try await Self.seed(db)
        try await AdminServer.with(db) { server in
            let overview = try await self.page(server, "/")
            #expect(overview.contains(##"data-loaded="#/""##), "\(overview.suffix(2000))")
            #expect(overview.contains(#"data-queue="mail""#))
            #expect(overview.contains(#"data-queue="reports""#))
            #expect(overview.contains(#"<span class="badge paused">paused</span>"#))
            #expect(overview.contains("NON_RETRYABLE"))
            #expect(overview.contains("live workers"))
            #expect(overview.contains("<polyline"))

            let jobs = try await self.page(server, "/jobs?queue=mail")
            #expect(jobs.contains(##"data-loaded="#/jobs?queue=mail""##), "\(jobs.suffix(2000))")
            #expect(jobs.contains(#"data-job="\#(dead.rawValue)""#))
            #expect(jobs.contains(#"<span class="badge discarded">discarded</span>"#))
            #expect(jobs.contains(#"<span class="badge retryable">retryable</span>"#))
            #expect(jobs.contains(#"<span class="badge completed">completed</span>"#))
            #expect(jobs.contains(" ago<span class=\"abs\">"))

            let job = try await self.page(server, "/jobs/\(dead.rawValue)")
            #expect(job.contains(##"data-loaded="#/jobs/\##(dead.rawValue)""##), "\(job.suffix(2000))")
            #expect(job.contains("dead-lettered: NON_RETRYABLE; last error: the mail server refused the address"))
            #expect(job.contains("Suggested: fix the cause, then retry"))
            #expect(job.contains("attempt 1 on vm-12: failed (NON_RETRYABLE)"))
            #expect(job.contains(#"data-kind="enqueued""#))

            let escaped = try await self.page(server, "/jobs/\(hostile.rawValue)", photograph: false)
            #expect(escaped.contains("&lt;script&gt;alert"), "\(escaped.suffix(3000))")
            #expect(!escaped.contains("<script>alert"))
            #expect(!escaped.contains("<img src=\"x\""))

            let dlq = try await self.page(server, "/dlq")
            #expect(dlq.contains(##"data-loaded="#/dlq""##), "\(dlq.suffix(2000))")
            #expect(dlq.contains(#"class="reason">NON_RETRYABLE</a> <b>1</b>"#))
            #expect(dlq.contains("Retry matching…"))

            let queues = try await self.page(server, "/queues")
            #expect(queues.contains(##"data-loaded="#/queues""##), "\(queues.suffix(2000))")
            #expect(queues.contains(#"data-pause="resume">Resume</button>"#))
            #expect(queues.contains(#"data-pause="pause">Pause</button>"#))

            let runs = try await self.page(server, "/workflows")
            #expect(runs.contains(#"data-run="dash-run""#), "\(runs.suffix(2000))")
            #expect(runs.contains(#"<span class="badge waiting">waiting</span>"#))

            let run = try await self.page(server, "/workflows/dash-run")
            #expect(run.contains("run dash-run is waiting for signal go"), "\(run.suffix(2000))")
            #expect(run.contains(#"<tr data-step="go"><td>0</td><td>go</td><td>signal</td>"#))

            let schedules = try await self.page(server, "/schedules")
            #expect(schedules.contains(#"<tr data-schedule="dash-nightly">"#), "\(schedules.suffix(2000))")
            #expect(schedules.contains("<code>0 3 * * *</code>") && schedules.contains("Europe/Berlin"))
            #expect(schedules.contains(#"data-pause="resume">Resume</button>"#))
            #expect(schedules.contains("by token:ops"))

            // The worker's presence is live while it heartbeats; a slow run of the pages above can outlast a minute.
            try await db.client.pools.pause("edge", by: "token:ops")
            try await db.store.registerWorker(
                WorkerPresence(
                    id: "dash-worker",
                    pool: "edge",
                    queues: ["mail": 4],
                    running: ["mail": 3],
                    kinds: [Echo.kind],
                    workflows: []
                ),
                logger: db.logger
            )
            let workers = try await self.page(server, "/workers")
            #expect(workers.contains("dash-worker"), "\(workers.suffix(2000))")
            #expect(workers.contains("mail: 3/4"))
            #expect(workers.contains(#"<tr data-pool="edge">"#))
            #expect(workers.contains(#"data-pool="edge" data-pause="resume">Resume</button>"#))

            let signIn = try await self.page(server, "/", token: nil)
            #expect(signIn.contains(#"data-loaded="login""#))
            #expect(signIn.contains("Sign in"))
            let refused = try await self.page(server, "/", token: "not-a-valid-token-at-all")
            #expect(refused.contains("That token was refused"))
            #expect(!refused.contains(#"data-queue="mail""#))
        }
    }
}
