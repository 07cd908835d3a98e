import ArgumentParser
import Conveyor
import ConveyorHTTP
import ConveyorPostgres
import Foundation
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import Prometheus
import ServiceLifecycle
import UnixSignals

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard at / and the admin API under /api until SIGINT or SIGTERM.",
        discussion: """
            Every route but /api/health and /api/ready needs a token from CONVEYOR_API_TOKEN (a secret, or \
            name:secret pairs separated by commas), sent as `Authorization: Bearer <secret>` or `x-api-key`. \
            Without one, serve listens on loopback only, with a token it generates and prints.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "The address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "The port to listen on (0 picks a free one).") var port: Int = 8080
    @Option(help: "Log level.") var logLevel: Logger.Level = .info

    func run() async throws {
        bootstrapLogging(level: self.logLevel)
        try await reportingErrors {
            let logger = Logger(label: "conveyor.serve")
            let configured = try Self.tokens(host: self.host)
            let generated = configured.isEmpty ? APIToken.generateSecret() : nil
            let tokens = generated.map { [APIToken(name: "generated", secret: $0)] } ?? configured
            let url = try self.database.requireURL()
            var postgresConfiguration = try PostgresClient.Configuration(url: url)
            postgresConfiguration.options.additionalStartupParameters.append(
                ("application_name", "conveyor serve \(self.database.schema)")
            )
            let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
            let client = ConveyorClient(
                store: try PostgresJobStore(client: postgres, schema: self.database.schema),
                logger: logger
            )
            let application = try Self.application(
                client: client,
                tokens: tokens,
                host: self.host,
                port: self.port,
                logger: logger
            ) { port in
                print("serving the admin API on http://\(Self.displayHost(self.host)):\(port)/api")
                if let generated {
                    print("no CONVEYOR_API_TOKEN is set; this run's token: \(generated)")
                    print("dashboard: http://\(Self.displayHost(self.host)):\(port)/#/?token=\(generated)")
                } else {
                    print("dashboard: http://\(Self.displayHost(self.host)):\(port)/ (sign in with a token)")
                }
                fflush(nil)
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: postgres), .init(service: application)],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await group.run()
        }
    }

    /// The tokens from `CONVEYOR_API_TOKEN`; refuses to go on without one beyond loopback.
    static func tokens(host: String) throws -> [APIToken] {
        let tokens = try APIToken.parse(ProcessInfo.processInfo.environment["CONVEYOR_API_TOKEN"])
        if tokens.isEmpty, !Self.isLoopback(host) {
            throw ConveyorError(
                .invalidConfiguration,
                "refusing to listen on \(host) without a token: set CONVEYOR_API_TOKEN (or listen on 127.0.0.1)"
            )
        }
        return tokens
    }

    /// The Hummingbird application that serves the API under `/api`; `onRunning` gets the bound port.
    static func application(
        client: ConveyorClient,
        tokens: [APIToken],
        host: String,
        port: Int,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) -> Void
    ) throws -> some ApplicationProtocol {
        var configuration = ConveyorAdminAPI.Configuration(tokens: tokens)
        configuration.prometheus = Self.prometheus
        let api = try ConveyorAdminAPI(client: client, configuration: configuration)
        let router = Router()
        router.addRoutes(api.routes(), atPath: "/api")
        router.addRoutes(ConveyorDashboard(apiPath: "/api").routes(), atPath: "/")
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .notice)
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "conveyor"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) },
            logger: serverLogger
        )
    }

    /// The process's swift-metrics go to this registry, which `GET /api/metrics/prom` emits.
    static let prometheus: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    static func displayHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}
