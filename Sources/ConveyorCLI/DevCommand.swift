import ArgumentParser
import Conveyor
import ConveyorLocalPostgres
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run a local PostgreSQL for development, kept under .conveyor/ across runs, until Ctrl-C.",
        discussion: """
            Other commands run in this directory find the server through .conveyor/url, so `conveyor worker` and \
            `conveyor enqueue` work without DATABASE_URL while it runs.
            """
    )

    @Option(help: "The cluster directory.") var directory: String = ".conveyor/postgres"
    @Option(help: "The schema that holds Conveyor's tables.") var schema: String = "conveyor"
    @Option(help: "Log level.") var logLevel: Logger.Level = .warning

    func run() async throws {
        bootstrapLogging(level: self.logLevel)
        try await reportingErrors {
            let logger = Logger(label: "conveyor.dev")
            print("starting PostgreSQL in \(self.directory) …")
            fflush(nil)
            let cluster = try await LocalPostgres.startPersistent(
                at: self.directory,
                settings: .init(durable: true),
                logger: logger
            )
            cluster.stopAtExit()
            do {
                var options = DatabaseOptions()
                options.schema = self.schema
                let applied = try await options.withClient(url: cluster.url, logger: logger) { client, _ in
                    try await client.migrate()
                }
                try FileManager.default.createDirectory(atPath: ".conveyor", withIntermediateDirectories: true)
                try Data((cluster.url + "\n").utf8).write(to: URL(fileURLWithPath: DatabaseOptions.devURLFile))
                print(
                    """
                    PostgreSQL \(cluster.binaries.version) is running.
                      DATABASE_URL=\(cluster.url)
                      schema: \(self.schema)\(applied.isEmpty ? "" : " (migrated to \(applied.last ?? 0))")
                    Try, in another terminal in this directory:
                      swift run conveyor worker
                      swift run conveyor enqueue demo.work --args '{"milliseconds": 20}' --count 100
                      swift run conveyor jobs list
                    Press Ctrl-C to stop; the data stays in \(self.directory).
                    """
                )
                fflush(nil)
                let group = ServiceGroup(
                    configuration: .init(
                        services: [.init(service: UntilShutdown())],
                        gracefulShutdownSignals: [.sigterm, .sigint],
                        logger: logger
                    )
                )
                try await group.run()
            } catch {
                try? FileManager.default.removeItem(atPath: DatabaseOptions.devURLFile)
                try? await cluster.stop()
                throw error
            }
            try? FileManager.default.removeItem(atPath: DatabaseOptions.devURLFile)
            print("\nstopping PostgreSQL …")
            try await cluster.stop()
        }
    }
}

/// A service that does nothing until graceful shutdown.
struct UntilShutdown: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
