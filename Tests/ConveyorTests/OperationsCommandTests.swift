import Conveyor
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `conveyor serve`, `jobs explain`, `jobs timeline`, `queues` and `workers` as an operator runs them: real
/// processes on the test database.
@Suite(.database) struct OperationsCommandTests {
    /// Waits until the process printed the line that names its port, and returns the port.
    static func servingPort(_ process: WorkerProcess, _ db: TestDatabase) async throws -> Int {
        var port: Int?
        try await db.waitUntil("conveyor serve printed its address", timeout: .seconds(60)) {
            let output = process.output
            guard let range = output.range(of: "http://127.0.0.1:") else { return !process.isRunning }
            port = Int(output[range.upperBound...].prefix { $0.isNumber })
            return true
        }
        return try #require(port, "conveyor serve did not start: \(process.output)")
    }

    static func get(_ port: Int, _ path: String, token: String?) async throws -> (Int, String) {
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/api\(path)")))
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test("conveyor serve answers on loopback with its token, refuses without one, and stops on SIGTERM")
    func serve() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1))
        let token = "ops:serve-test-token-0123456789"
        let server = try WorkerProcess(
            url: db.url,
            schema: db.schema,
            command: "serve",
            arguments: ["--port", "0"],
            environment: ["CONVEYOR_API_TOKEN": token]
        )
        let port = try await Self.servingPort(server, db)
        #expect(try await Self.get(port, "/health", token: nil).0 == 200)
        #expect(try await Self.get(port, "/jobs", token: nil).0 == 401)
        #expect(try await Self.get(port, "/jobs", token: "serve-test-token-wrong").0 == 401)
        let (status, body) = try await Self.get(
            port,
            "/jobs/\(job.id.rawValue)/explain",
            token: "serve-test-token-0123456789"
        )
        #expect(status == 200)
        #expect(body.contains("no_worker_for_queue"), "\(body)")
        #expect(await server.terminate() == 0, "\(server.output)")
    }

    @Test("conveyor serve without a token generates one on loopback and refuses any other address")
    func serveWithoutToken() async throws {
        let db = try TestDatabase.get()
        let refused = try WorkerProcess(
            url: db.url,
            schema: db.schema,
            command: "serve",
            arguments: ["--host", "0.0.0.0", "--port", "0"],
            environment: ["CONVEYOR_API_TOKEN": ""]
        )
        await refused.exited()
        #expect(refused.process.terminationStatus == 1)
        #expect(refused.output.contains("INVALID_CONFIGURATION"), "\(refused.output)")
        #expect(refused.output.contains("refusing to listen on 0.0.0.0 without a token"), "\(refused.output)")

        let local = try WorkerProcess(
            url: db.url,
            schema: db.schema,
            command: "serve",
            arguments: ["--port", "0"],
            environment: ["CONVEYOR_API_TOKEN": ""]
        )
        let port = try await Self.servingPort(local, db)
        try await db.waitUntil("the generated token was printed") { local.output.contains("this run's token: ") }
        let output = local.output
        let range = try #require(output.range(of: "this run's token: "))
        let generated = String(output[range.upperBound...].prefix { $0.isLetter || $0.isNumber })
        #expect(generated.count == 32)
        #expect(try await Self.get(port, "/queues", token: nil).0 == 401)
        #expect(try await Self.get(port, "/queues", token: generated).0 == 200)
        #expect(await local.terminate() == 0)
    }

    @Test("conveyor demo --serve runs its workload, then serves the dashboard with its data until SIGTERM")
    func demoServes() async throws {
        let db = try TestDatabase.get()
        let demo = try WorkerProcess(
            url: db.url,
            schema: db.schema,
            command: "demo",
            arguments: ["--jobs", "30", "--serve", "--port", "0"],
            environment: ["CONVEYOR_API_TOKEN": ""]
        )
        try await db.waitUntil("the demo printed its dashboard", timeout: .seconds(120)) {
            demo.output.contains("serving until Ctrl-C") || !demo.isRunning
        }
        let output = demo.output
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("dashboard: http://127.0.0.1:") })
        let url = String(line.dropFirst("dashboard: ".count))
        let port = try #require(Int(url.dropFirst("http://127.0.0.1:".count).prefix { $0.isNumber }))
        let token = try #require(url.components(separatedBy: "token=").last)
        let page = try await URLSession.shared.data(from: try #require(URL(string: "http://127.0.0.1:\(port)/")))
        #expect(String(decoding: page.0, as: UTF8.self).contains(#"<meta name="conveyor-api" content="/api">"#))
        // The demo's finished jobs show in the metrics once its worker wrote its stats (every 5 s).
        try await db.waitUntil("the metrics show the demo's queue", timeout: .seconds(60)) {
            let (status, body) = try await Self.get(port, "/metrics", token: token)
            return status == 200 && body.contains(#""queue":"demo-"#)
        }
        #expect(await demo.terminate() == 0, "\(demo.output)")
    }

    @Test("jobs explain, jobs timeline, queues and workers print what the API answers")
    func commands() async throws {
        let db = try TestDatabase.get()
        let job = try await db.client.jobs.enqueue(Echo(value: 1), options: .init(queue: "mail"))
        let paused = try await WorkflowCommandTests.conveyor(db, ["queues", "pause", "mail"])
        #expect(paused.status == 0, "\(paused.errors)")
        let explained = try await WorkflowCommandTests.conveyor(db, ["jobs", "explain", "\(job.id.rawValue)"])
        #expect(explained.status == 0, "\(explained.errors)")
        #expect(explained.output.hasPrefix("job \(job.id.rawValue) is available: queue mail is paused since "))
        #expect(explained.output.contains("suggested action: resume queue mail"))
        let json = try await WorkflowCommandTests.conveyor(db, ["jobs", "explain", "\(job.id.rawValue)", "--json"])
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any],
            "\(json.output)"
        )
        #expect(object["reason"] as? String == "queue_paused")

        let cancelled = try await WorkflowCommandTests.conveyor(db, ["cancel", "\(job.id.rawValue)"])
        #expect(cancelled.status == 0)
        let timeline = try await WorkflowCommandTests.conveyor(db, ["jobs", "timeline", "\(job.id.rawValue)"])
        let lines = timeline.output.split(separator: "\n")
        #expect(lines.count == 2, "\(timeline.output)")
        #expect(lines.first?.hasSuffix(" enqueued") == true)
        #expect(lines.last?.contains("cancelled by cli:") == true, "\(timeline.output)")

        let queues = try await WorkflowCommandTests.conveyor(db, ["queues"])
        #expect(queues.output.contains("mail is paused since "), "\(queues.output)")
        #expect(queues.output.contains(" by cli:"), "\(queues.output)")
        let workers = try await WorkflowCommandTests.conveyor(db, ["workers"])
        #expect(workers.output.contains("(no live worker)"))
        let pausedPool = try await WorkflowCommandTests.conveyor(db, ["pools", "pause", "night"])
        #expect(pausedPool.status == 0, "\(pausedPool.errors)")
        let pools = try await WorkflowCommandTests.conveyor(db, ["pools"])
        #expect(pools.output.contains("night"), "\(pools.output)")
        #expect(pools.output.contains("paused"), "\(pools.output)")
        let poolsJSON = try await WorkflowCommandTests.conveyor(db, ["pools", "--json"])
        #expect(poolsJSON.output.contains(#""paused_by":"cli:"#), "\(poolsJSON.output)")
        let badPool = try await WorkflowCommandTests.conveyor(db, ["pools", "resume", "no good"])
        #expect(badPool.status == 1)
        #expect(badPool.errors.contains("INVALID_POOL_NAME"))
        let missing = try await WorkflowCommandTests.conveyor(db, ["jobs", "explain", "987654"])
        #expect(missing.status == 1)
        #expect(missing.errors.contains("JOB_NOT_FOUND"))
    }

    @Test("tenants set, list and remove a tenant's weight; queues fair turns fairness on and off")
    func tenantsAndFairQueues() async throws {
        let db = try TestDatabase.get()
        let set = try await WorkflowCommandTests.conveyor(db, ["tenants", "set", "acme", "--weight", "2.5"])
        #expect(set.status == 0, "\(set.errors)")
        #expect(set.output == "tenant acme has weight 2.5\n")
        #expect(try await db.client.tenants.get("acme")?.weight == 2.5)
        let listed = try await WorkflowCommandTests.conveyor(db, ["tenants"])
        #expect(listed.output.contains("acme"), "\(listed.output)")
        #expect(listed.output.contains("by cli:"), "\(listed.output)")
        let json = try await WorkflowCommandTests.conveyor(db, ["tenants", "list", "--json"])
        #expect(json.output.contains(#""weight":2.5"#), "\(json.output)")
        let bad = try await WorkflowCommandTests.conveyor(db, ["tenants", "set", "acme", "--weight", "0"])
        #expect(bad.status == 1)
        #expect(bad.errors.contains("INVALID_WEIGHT"), "\(bad.errors)")
        #expect(try await db.client.tenants.get("acme")?.weight == 2.5)
        let limited = try await WorkflowCommandTests.conveyor(
            db,
            ["tenants", "limit", "acme", "--max-running", "5"]
        )
        #expect(limited.output == "tenant acme runs at most 5 at once\n", "\(limited.errors)")
        #expect(try await db.client.tenants.get("acme")?.maxRunning == 5)
        #expect(try await WorkflowCommandTests.conveyor(db, ["tenants"]).output.contains(" 0/5 "))
        let badLimit = try await WorkflowCommandTests.conveyor(db, ["tenants", "limit", "acme", "--max-running", "0"])
        #expect(badLimit.errors.contains("INVALID_OPTION"), "\(badLimit.errors)")
        #expect(try await db.client.tenants.get("acme")?.maxRunning == 5)
        _ = try await WorkflowCommandTests.conveyor(db, ["tenants", "limit", "acme", "--none"])
        #expect(try await db.client.tenants.get("acme")?.maxRunning == nil)
        let removed = try await WorkflowCommandTests.conveyor(db, ["tenants", "remove", "acme"])
        #expect(removed.output == "tenant acme has the defaults again\n")
        #expect(try await db.client.tenants.get("acme") == nil)

        let fair = try await WorkflowCommandTests.conveyor(db, ["queues", "fair", "reports", "--on"])
        #expect(fair.status == 0, "\(fair.errors)")
        #expect(try await db.client.queues.get("reports")?.isFair == true)
        let queues = try await WorkflowCommandTests.conveyor(db, ["queues"])
        #expect(queues.output.contains("reports shares its fetches among tenants by weight"), "\(queues.output)")
        let neither = try await WorkflowCommandTests.conveyor(db, ["queues", "fair", "reports"])
        #expect(neither.status == 1)
        #expect(neither.errors.contains("INVALID_OPTION"))
        _ = try await WorkflowCommandTests.conveyor(db, ["queues", "fair", "reports", "--off"])
        #expect(try await db.client.queues.get("reports")?.isFair == false)
    }
}
