import Conveyor
import Foundation
import Synchronization
import Testing

@testable import ConveyorLocalPostgres

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The example app the README's embedding code comes from, run as its own process against a real server.
@Suite(.database) struct ExampleTests {
    @Test("the example server enqueues a receipt from its route in the order's transaction, and its worker runs it")
    func receiptServerRunsItsJob() async throws {
        let db = try TestDatabase.get()
        let port = try FreePort.pick()
        let process = Process()
        process.executableURL = WorkerProcess.executable.deletingLastPathComponent()
            .appendingPathComponent("receipt-server")
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = db.url
        environment["CONVEYOR_SCHEMA"] = db.schema
        environment["PORT"] = String(port)
        environment["CONVEYOR_API_TOKEN"] = "ops:example-token-0123456789"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let exited = Gate()
        process.terminationHandler = { _ in exited.open() }
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let orderID = Int.random(in: 1...1_000_000_000)
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/orders/\(orderID)")))
        request.httpMethod = "POST"
        let answer = Mutex<String?>(nil)
        try await db.waitUntil("the server answered the order") {
            guard let (data, response) = try? await URLSession.shared.data(for: request),
                (response as? HTTPURLResponse)?.statusCode == 200
            else { return false }
            answer.withLock { $0 = String(decoding: data, as: UTF8.self) }
            return true
        }
        #expect(answer.withLock { $0 }?.hasPrefix("order \(orderID): receipt job ") == true)
        try await db.waitUntil("the receipt job completed") {
            try await db.scalar(
                "SELECT count(*) FROM {schema}.jobs WHERE kind = 'send-receipt' AND state = 'completed'"
            ) == 1
        }
        #expect(try await db.scalar("SELECT count(*) FROM public.orders WHERE id = \(orderID)") == 1)

        // The workflow route: started in the order's transaction, waits for the approval, then ships.
        for (path, expected) in [("fulfil", "run fulfil-\(orderID)"), ("approve", "approved")] {
            var post = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)/orders/\(orderID)/\(path)")))
            post.httpMethod = "POST"
            if path == "approve" {
                try await db.waitUntil("the run waits for its approval") {
                    try await db.client.workflows.get(WorkflowRunID("fulfil-\(orderID)"))?.status == .waiting
                }
            }
            let (data, response) = try await URLSession.shared.data(for: post)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: data, as: UTF8.self).contains(expected))
        }
        try await db.waitUntil("the workflow completed") {
            try await db.client.workflows.get(WorkflowRunID("fulfil-\(orderID)"))?.status == .completed
        }
        let run = try #require(try await db.client.workflows.get(WorkflowRunID("fulfil-\(orderID)")))
        #expect(try run.output(as: [String: String].self)?["approvedBy"] == "ops", "\(run.outputJSON ?? "")")

        // The admin API mounted under /conveyor/api: the run's explanation, with the token and refused without it.
        var explain = URLRequest(
            url: try #require(URL(string: "http://127.0.0.1:\(port)/conveyor/api/workflows/fulfil-\(orderID)/explain"))
        )
        let (_, refused) = try await URLSession.shared.data(for: explain)
        #expect((refused as? HTTPURLResponse)?.statusCode == 401)
        explain.setValue("Bearer example-token-0123456789", forHTTPHeaderField: "Authorization")
        let (explained, answered) = try await URLSession.shared.data(for: explain)
        #expect((answered as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: explained, as: UTF8.self).contains("workflow_completed"))
        let (page, _) = try await URLSession.shared.data(
            from: try #require(URL(string: "http://127.0.0.1:\(port)/conveyor/"))
        )
        #expect(String(decoding: page, as: UTF8.self).contains(#"content="/conveyor/api""#))
        kill(process.processIdentifier, SIGTERM)
        await exited.wait()
        #expect(process.terminationStatus == 0)
    }
}
