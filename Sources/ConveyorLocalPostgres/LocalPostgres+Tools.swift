import Logging

extension LocalPostgres {
    /// The result of ``runTool(_:arguments:environment:logger:)``.
    public struct ToolOutcome: Sendable {
        public var status: Int32
        public var output: String
        public var errorOutput: String
    }

    /// Runs a program (such as `pgbench` or a script that drives it) to completion, capturing its output.
    ///
    /// Unlike Foundation's `Process`, the child starts with an empty signal mask and default signal handlers:
    /// a Swift process may block signals such as `SIGALRM` in its threads, and a child that inherits that mask
    /// never sees the alarm that `pgbench -T` relies on to stop. `environment` is added to the inherited one,
    /// without libpq's `PG*` variables, which the caller passes explicitly.
    public static func runTool(
        _ executable: String,
        arguments: [String],
        environment: [String: String] = [:],
        logger: Logger = Logger(label: "conveyor.local-postgres")
    ) async -> ToolOutcome {
        let outcome = await Command(executable, arguments, environment: environment).run(logger: logger)
        return ToolOutcome(status: outcome.status, output: outcome.output, errorOutput: outcome.errorOutput)
    }
}
