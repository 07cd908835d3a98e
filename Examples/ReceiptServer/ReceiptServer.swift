// A small server app that embeds Conveyor: an HTTP route stores an order and enqueues its receipt job in one
// transaction, and a worker in the same process sends the receipts. The README's embedding code is taken from here.
//
//     DATABASE_URL=postgres://app@localhost:5432/app swift run receipt-server
//     curl -X POST localhost:8080/orders/42
import Conveyor
import ConveyorPostgres
import Foundation
import Hummingbird
import Logging
import PostgresNIO

struct SendReceipt: JobArguments {
    static let kind = "send-receipt"  // stable: stored with every job
    var orderID: Int
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
