import Conveyor
import ConveyorPostgres
import Foundation
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

        func run(_ input: Input, context: WorkflowContext) async throws -> Int {
            var total = 0
            for index in 0..<input.steps {
                total += try await context.step("step-\(index)") {
                    if input.record {
                        var binds = PostgresBindings()
                        binds.append(context.runID.rawValue)
                        binds.append("step-\(index)")
                        try await postgres.query(
                            PostgresQuery(
                                unsafeSQL: """
                                    INSERT INTO \(schema.quoted).demo_step_runs (run_id, step, at)
                                    VALUES ($1, $2, clock_timestamp())
                                    """,
                                binds: binds
                            )
                        )
                    }
                    if input.milliseconds > 0 { try await Task.sleep(for: .milliseconds(input.milliseconds)) }
                    return index
                }
            }
            return total
        }
    }

    static func register(into registry: inout JobRegistry, postgres: PostgresClient, schema: SchemaName) {
        registry.register(workflow: Steps(postgres: postgres, schema: schema))
    }
}
