import ArgumentParser
import Conveyor
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import UnixSignals

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker with the built-in demo and benchmark job types until SIGINT or SIGTERM."
    )

    @OptionGroup var database: DatabaseOptions

    @Option(
        name: .customLong("queue"),
        help: "A queue to work, as NAME or NAME:SLOTS (repeatable; default default:10)."
    )
    var queues: [String] = []

    @Option(help: "Most jobs leased ahead per queue, waiting for a free slot (default: 30 per slot; adaptive below).")
    var prefetch: Int?

    @Flag(help: "Poll only, without LISTEN (for PgBouncer in transaction mode).")
    var pollOnly = false

    @Flag(help: "Wait for each fetch's leases to reach the disk before running the jobs.")
    var synchronousLeases = false

    @Option(help: "The worker pool this process belongs to.") var pool = "default"
    @Option(help: "Lease duration in seconds.") var lease: Double = 30
    @Option(help: "Heartbeat interval in seconds.") var heartbeat: Double = 10
    @Option(help: "Poll interval in seconds.") var poll: Double = 2
    @Option(help: "Reaper interval in seconds.") var reaper: Double = 15
    @Option(help: "Graceful shutdown period in seconds.") var grace: Double = 10
    @Option(help: "The longest one database call may take, in seconds.") var databaseTimeout: Double = 10
    @Option(help: "Base retry delay in seconds for the demo job types.") var retryDelay: Double = 1
    @Option(help: "The most results written in one statement.") var completionBatch: Int = 500
    @Option(help: "How long results wait for a fuller batch, in milliseconds.") var completionFlushMs: Double = 1
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    func run() async throws {
        bootstrapLogging(level: self.logLevel)
        try await reportingErrors {
            var configuration = ConveyorWorker.Configuration()
            configuration.queues = try Self.parseQueues(self.queues)
            if let prefetch = self.prefetch {
                for name in configuration.queues.keys { configuration.queues[name]?.prefetch = prefetch }
            }
            configuration.wakeMode = self.pollOnly ? .pollOnly : .listen
            configuration.pool = self.pool
            configuration.synchronousLeases = self.synchronousLeases
            configuration.leaseDuration = try duration(seconds: self.lease, option: "lease")
            configuration.heartbeatInterval = try duration(seconds: self.heartbeat, option: "heartbeat")
            configuration.pollInterval = try duration(seconds: self.poll, option: "poll")
            configuration.reaperInterval = try duration(seconds: self.reaper, option: "reaper")
            configuration.shutdownGracePeriod = try duration(seconds: self.grace, option: "grace")
            configuration.databaseTimeout = try duration(seconds: self.databaseTimeout, option: "database-timeout")
            configuration.completionBatchSize = self.completionBatch
            configuration.completionFlushInterval = try duration(
                seconds: self.completionFlushMs,
                unit: 0.001,
                option: "completion-flush-ms"
            )
            try configuration.validate()
            let logger = Logger(label: "conveyor.worker")
            let url = try self.database.requireURL()
            var postgresConfiguration = try PostgresClient.Configuration(url: url)
            // Lets an operator (or a fault test) find this worker's sessions in pg_stat_activity.
            postgresConfiguration.options.additionalStartupParameters.append(
                ("application_name", "conveyor worker \(self.database.schema)")
            )
            let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
            let store = try PostgresJobStore(client: postgres, schema: self.database.schema)
            let client = ConveyorClient(store: store, logger: logger)
            var registry = JobRegistry()
            DemoJobs.register(
                into: &registry,
                retryPolicy: RetryPolicy(base: try duration(seconds: self.retryDelay, option: "retry-delay")),
                postgres: postgres,
                schema: store.schema
            )
            BenchJobs.register(into: &registry)
            let worker = ConveyorWorker(
                client: client,
                registry: registry,
                configuration: configuration,
                logger: logger
            )
            let group = ServiceGroup(
                configuration: .init(
                    services: [
                        .init(service: postgres),
                        .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await group.run()
        }
    }

    static func parseQueues(_ specs: [String]) throws -> [String: ConveyorWorker.QueueConfiguration] {
        guard !specs.isEmpty else { return ["default": .init(slots: 10)] }
        var queues: [String: ConveyorWorker.QueueConfiguration] = [:]
        for spec in specs {
            var name = spec
            var slots = 10
            if let colon = spec.lastIndex(of: ":"), let parsed = Int(spec[spec.index(after: colon)...]) {
                name = String(spec[..<colon])
                slots = parsed
            }
            queues[name] = .init(slots: slots)
        }
        return queues
    }
}
