import Conveyor
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

/// The workflows that `conveyor worker` and `conveyor demo` run.
enum DemoWorkflows {
    /// `steps` sequential steps of `milliseconds` each. With `record`, every execution of a step body inserts
    /// `(run_id, step, clock_timestamp())` into the schema's `demo_step_runs` table (which the caller creates), so
    /// that a crash test can count how often each body ran, and when.
    struct Steps: Workflow {
        static let name = "demo.steps"

        struct Input: Codable, Sendable {
            var steps: Int
            var milliseconds: Int
            var record: Bool
        }

        var postgres: PostgresClient
        var schema: SchemaName
        static let logger = Logger(label: "conveyor.demo.steps")

        func run(_ input: Input, context: WorkflowContext) async throws -> Int {
            var total = 0
            for index in 0..<input.steps {
                total += try await context.step("step-\(index)") {
                    if input.record {
                        var binds = PostgresBindings()
                        binds.append(context.runID.rawValue)
                        binds.append("step-\(index)")
                        let insert = PostgresQuery(
                            unsafeSQL: """
                                INSERT INTO \(schema.quoted).demo_step_runs (run_id, step, at)
                                VALUES ($1, $2, clock_timestamp())
                                """,
                            binds: binds
                        )
                        // In a transaction of its own: an autocommit statement's CommandComplete comes before its
                        // commit, so a server crashing in that commit could report a record that was never stored.
                        try await postgres.withConnection { connection in
                            try await connection.query("BEGIN", logger: Self.logger)
                            do {
                                try await connection.query(insert, logger: Self.logger)
                                try await connection.query("COMMIT", logger: Self.logger)
                            } catch {
                                if !connection.isClosed {
                                    _ = try? await connection.query("ROLLBACK", logger: Self.logger)
                                }
                                throw error
                            }
                        }
                    }
                    if input.milliseconds > 0 { try await Task.sleep(for: .milliseconds(input.milliseconds)) }
                    return index
                }
            }
            return total
        }
    }

    /// The demo's order: a step, a durable sleep, a wait for an approval signal, two steps in parallel, and a
    /// child workflow that ships the parcel.
    struct Order: Workflow {
        static let name = "demo.order"

        struct Receipt: Codable, Sendable {
            var reservation: String
            var approvedBy: String
            var label: String
            var email: String
            var tracking: String
        }

        func run(_ order: Int, context: WorkflowContext) async throws -> Receipt {
            let reservation = try await context.step("reserve-stock") { "stock-\(order)" }
            try await context.sleep("cool-off", for: .milliseconds(300))
            let approver = try await context.waitForSignal("approved", as: String.self, timeout: .seconds(60))
            async let label = context.step("print-label") { "label-\(order)" }
            async let email = context.step("email-customer") { "mail-\(order)" }
            let tracking = try await context.child(Ship.self, input: order, id: WorkflowRunID("\(context.runID)-ship"))
            return Receipt(
                reservation: reservation,
                approvedBy: approver,
                label: try await label,
                email: try await email,
                tracking: tracking
            )
        }
    }

    /// The order's child.
    struct Ship: Workflow {
        static let name = "demo.ship"

        func run(_ order: Int, context: WorkflowContext) async throws -> String {
            try await context.step("book-courier") { "parcel-\(order)" }
        }
    }

    static func register(into registry: inout JobRegistry, postgres: PostgresClient?, schema: SchemaName?) {
        if let postgres, let schema { registry.register(workflow: Steps(postgres: postgres, schema: schema)) }
        registry.register(workflow: Order())
        registry.register(workflow: Ship())
    }
}
