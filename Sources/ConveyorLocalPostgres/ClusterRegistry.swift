import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The cluster directories this process has claimed (started, or is starting, a server in) and those whose
/// server is to be stopped when the process exits.
///
/// A claim is what makes this process's own id in an `owner.pid` count as alive; without one the file is a
/// leftover of an earlier process that had the same id.
final class ClusterRegistry: @unchecked Sendable {
    /// The registry of this process.
    static let shared = ClusterRegistry()

    private let lock = NSLock()
    private var claims: [String: UUID] = [:]
    private var sweeping: Set<String> = []
    private var stoppedAtExit: [String: LocalPostgres] = [:]
    private var isExitHandlerInstalled = false

    /// Claims `directory` for this process.
    /// - Returns: The claim's token, or `nil` when the directory is already claimed.
    func claim(_ directory: String) -> UUID? {
        lock.withLock {
            guard claims[directory] == nil else { return nil }
            let token = UUID()
            claims[directory] = token
            return token
        }
    }

    /// Gives up the claim `token` on `directory`, and its stop at exit.
    func release(_ directory: String, token: UUID) {
        lock.withLock {
            guard claims[directory] == token else { return }
            claims[directory] = nil
            stoppedAtExit[directory] = nil
        }
    }

    /// Whether `token` is the current claim on `directory`.
    func holds(_ directory: String, token: UUID) -> Bool {
        lock.withLock { claims[directory] == token }
    }

    /// Whether anything in this process claims `directory`.
    func isClaimed(_ directory: String) -> Bool {
        lock.withLock { claims[directory] != nil }
    }

    /// Marks `directory` as being swept away as a stale cluster.
    /// - Returns: `false` when another sweep in this process is already at it.
    func beginSweep(_ directory: String) -> Bool {
        lock.withLock { sweeping.insert(directory).inserted }
    }

    /// Ends the sweep begun by `beginSweep(_:)`.
    func endSweep(_ directory: String) {
        lock.withLock { _ = sweeping.remove(directory) }
    }

    /// Arranges for `cluster.stopImmediately()` to run when the process exits normally, installing one `atexit`
    /// handler the first time.
    func stopAtExit(_ cluster: LocalPostgres) {
        let needsHandler = lock.withLock {
            stoppedAtExit[cluster.directory] = cluster
            defer { isExitHandlerInstalled = true }
            return !isExitHandlerInstalled
        }
        if needsHandler {
            atexit {
                ClusterRegistry.shared.stopAllImmediately()
            }
        }
    }

    private func stopAllImmediately() {
        let clusters = lock.withLock {
            defer { stoppedAtExit.removeAll() }
            return Array(stoppedAtExit.values)
        }
        for cluster in clusters {
            cluster.stopImmediately()
        }
    }
}
