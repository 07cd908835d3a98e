import Conveyor
import Logging
import ServiceLifecycle

/// Runs a service for the duration of `body` inside a `ServiceGroup`, then triggers graceful shutdown and waits
/// for the service to return, rethrowing its error.
enum TestServiceRunner {
    static func run<S: Service>(_ service: S, _ body: (S) async throws -> Void) async throws {
        var logger = Logger(label: "conveyor.test.group")
        logger.logLevel = .error
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], logger: logger)
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(service)
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
