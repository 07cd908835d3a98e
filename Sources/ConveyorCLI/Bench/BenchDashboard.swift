import Conveyor
import ConveyorHTTP
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// W1 beside a dashboard: the admin API served on loopback in the bench process, and the overview's calls
/// (`/api/metrics` and `/api/dlq?limit=5`) made every second, as an open overview page makes them.
enum BenchDashboard {
    private final class State: Sendable {
        let port = Mutex<Int?>(nil)
        let refreshes = Mutex(0)
    }

    /// Runs `body` while the API serves `client` and is polled every second; returns its result and the number of
    /// overview refreshes made.
    static func polling<Result: Sendable>(
        client: ConveyorClient,
        logger: Logger,
        _ body: @Sendable () async throws -> Result
    ) async throws -> (Result, Int) {
        let secret = APIToken.generateSecret()
        let state = State()
        var quiet = logger
        quiet.logLevel = .critical
        let application = try ServeCommand.application(
            client: client,
            tokens: [APIToken(name: "bench", secret: secret)],
            host: "127.0.0.1",
            port: 0,
            logger: quiet
        ) { bound in state.port.withLock { $0 = bound } }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            group.addTask {
                while state.port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
                let base = "http://127.0.0.1:\(state.port.withLock { $0 } ?? 0)/api"
                let clock = ContinuousClock()
                while !Task.isCancelled {
                    let next = clock.now + .seconds(1)
                    for path in ["/metrics", "/dlq?limit=5"] {
                        guard let url = URL(string: base + path) else { continue }
                        var request = URLRequest(url: url)
                        request.setValue("Bearer \(secret)", forHTTPHeaderField: "Authorization")
                        _ = try? await URLSession.shared.data(for: request)
                    }
                    state.refreshes.withLock { $0 += 1 }
                    try await Task.sleep(until: next)
                }
            }
            defer { group.cancelAll() }
            let result = try await body()
            return (result, state.refreshes.withLock { $0 })
        }
    }
}
