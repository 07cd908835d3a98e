// A small server app that embeds Conveyor: an HTTP route stores an order and enqueues its receipt job in one
// transaction, and a worker in the same process sends the receipts. Another route starts a durable workflow that
// charges, waits for an approval signal and ships. The README's embedding code is taken from here.
//
//     DATABASE_URL=postgres://app@localhost:5432/app swift run receipt-server
//     curl -X POST localhost:8080/orders/42
//     curl -X POST localhost:8080/orders/42/fulfil && curl -X POST localhost:8080/orders/42/approve
//     CONVEYOR_API_TOKEN=ops:… also serves the dashboard at localhost:8080/conveyor/ and the admin API under /conveyor/api
import Conveyor
import ConveyorHTTP
import ConveyorPostgres
import Foundation
import Hummingbird
import Logging
import PostgresNIO

struct SendReceipt: JobArguments {
    static let kind = "send-receipt"  // stable: stored with every job
    var orderID: Int
}

/// Charges, waits for an approval, then ships: each step runs once per run, through crashes and restarts.
struct FulfilOrder: Workflow {
    static let name = "fulfil-order"  // stable: stored with every run

    struct Shipment: Codable, Sendable {
        var charge: String
        var approvedBy: String
        var parcel: String
    }

    func run(_ orderID: Int, context: WorkflowContext) async throws -> Shipment {
        let charge = try await context.step("charge-card") { "charge-\(orderID)" }
        let approver = try await context.waitForSignal("approved", as: String.self, timeout: .seconds(86_400))
        let parcel = try await context.step("ship", maxAttempts: 5) { "parcel-\(orderID)" }
        return Shipment(charge: charge, approvedBy: approver, parcel: parcel)
    }
}

@main
struct ReceiptServer {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let logger = Logger(label: "receipt-server")

        let postgres = PostgresClient(
            configuration: try .init(url: environment["DATABASE_URL"] ?? "postgres://app@localhost:5432/app")
        )
        let conveyor = ConveyorClient(
            store: try PostgresJobStore(client: postgres, schema: environment["CONVEYOR_SCHEMA"] ?? "conveyor")
        )

        var registry = JobRegistry()
        registry.register(SendReceipt.self, timeout: .seconds(30)) { args, context in
            // Return: completed. Throw: retried with backoff. Runs at least once (see "What happens on failure").
            context.logger.info("sending the receipt of order \(args.orderID)")
        }
        registry.register(workflow: FulfilOrder())
        var configuration = ConveyorWorker.Configuration()
        configuration.queues = ["default": .init(slots: 10)]
        // The worker applies migrations when it starts (configuration.migrateOnStart = false to opt out).
        let worker = ConveyorWorker(client: conveyor, registry: registry, configuration: configuration)

        let router = Router()
        router.post("orders/:id") { _, context -> String in
            let orderID = try context.parameters.require("id", as: Int.self)
            // The order and its receipt job commit together, or neither does. Errors of the enqueue reach this
            // handler as ConveyorError, with a stable code.
            let job = try await conveyor.withTransaction { connection in
                try await connection.query(
                    "INSERT INTO orders (id) VALUES (\(orderID)) ON CONFLICT DO NOTHING",
                    logger: logger
                )
                return try await conveyor.jobs.enqueue(SendReceipt(orderID: orderID), on: connection)
            }
            return "order \(orderID): receipt job \(job.id)\n"
        }

        router.post("orders/:id/fulfil") { _, context -> String in
            let orderID = try context.parameters.require("id", as: Int.self)
            // The run exists if and only if the order's transaction commits; the same id starts it only once.
            let run = try await conveyor.withTransaction { connection in
                try await connection.query(
                    "INSERT INTO orders (id) VALUES (\(orderID)) ON CONFLICT DO NOTHING",
                    logger: logger
                )
                return try await conveyor.workflows.start(
                    FulfilOrder.self,
                    input: orderID,
                    options: .init(id: "fulfil-\(orderID)"),
                    on: connection
                )
            }
            return "order \(orderID): run \(run.id)\n"
        }
        router.post("orders/:id/approve") { _, context -> String in
            let orderID = try context.parameters.require("id", as: Int.self)
            try await conveyor.workflows.signal("fulfil-\(orderID)", "approved", "ops")
            return "order \(orderID): approved\n"
        }

        // The admin API and the dashboard, mounted beside the app's own routes when a token is configured.
        let tokens = try APIToken.parse(environment["CONVEYOR_API_TOKEN"])
        if !tokens.isEmpty {
            let admin = try ConveyorAdminAPI(client: conveyor, configuration: .init(tokens: tokens))
            router.addRoutes(admin.routes(), atPath: "/conveyor/api")
            router.addRoutes(ConveyorDashboard(apiPath: "/conveyor/api").routes(), atPath: "/conveyor")
        }

        let port = Int(environment["PORT"] ?? "") ?? 8080
        var app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port)),
            logger: logger
        )
        // The PostgresClient must run for any query to be answered (an enqueue without it fails with NO_CONNECTION
        // after PostgresJobStore.connectionWaitTimeout); the app runs both services and stops them on SIGTERM.
        app.addServices(postgres, worker)
        app.beforeServerStarts {
            try await postgres.query("CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY)", logger: logger)
        }
        try await app.runService()
    }
}
