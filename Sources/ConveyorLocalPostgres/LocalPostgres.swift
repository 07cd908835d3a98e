import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A private PostgreSQL cluster run from the installed server programs, reachable over TCP on 127.0.0.1 with
/// trust authentication.
///
/// A cluster lives in a directory of its own:
///
/// ```
/// <directory>/data        the data directory (initdb)
/// <directory>/run         the Unix socket directory
/// <directory>/server.log  the server log
/// <directory>/owner.pid   the id of the process that started the server
/// ```
///
/// An *ephemeral* cluster (tests, `conveyor demo`) gets a fresh directory under a base directory and is deleted
/// when stopped; a *persistent* one (`conveyor dev`) keeps its data directory across starts. Each start picks a
/// free port. When the process is root, the server programs run as the `postgres` user and the cluster directory
/// is handed to that user.
///
/// Before every start, ephemeral clusters whose owning process died are stopped and deleted, and a persistent
/// cluster's server left running by a dead process is stopped, so killed processes leave nothing behind for long.
public struct LocalPostgres: Sendable {
    /// The superuser created by `initdb`.
    public static let defaultUser = "conveyor"
    /// The database created after the first start.
    public static let defaultDatabase = "conveyor"

    /// The TCP port the server listens on at 127.0.0.1, chosen afresh at every start.
    public let port: Int
    /// The Unix socket directory (`<directory>/run`); the socket is `.s.PGSQL.<port>` inside it.
    public let socketDirectory: String
    /// The superuser name, `conveyor`.
    public let user: String
    /// The database created for the application, `conveyor`.
    public let database: String
    /// The cluster directory, absolute.
    public let directory: String
    /// The server log, `<directory>/server.log`.
    public let logFile: String
    /// Whether `stop()` deletes the cluster directory.
    public let isEphemeral: Bool
    /// The PostgreSQL installation running the server.
    public let binaries: Binaries
    /// The settings the server was started with.
    public let settings: Settings

    private let layout: ClusterLayout
    private let account: ServerAccount
    private let logger: Logger
    private let claim: UUID

    /// The connection URL: `postgres://conveyor@127.0.0.1:<port>/conveyor` (TCP, no password needed).
    public var url: String {
        "postgres://\(user)@127.0.0.1:\(port)/\(database)"
    }

    /// Where ephemeral clusters go by default: `$TMPDIR/conveyor-pg`, or `/tmp/conveyor-pg` without `TMPDIR`.
    public static var defaultEphemeralBase: String {
        let temporary = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return ClusterLayout(directory: (temporary as NSString).appendingPathComponent("conveyor-pg")).directory
    }

    /// Starts a throwaway cluster in a new directory `<base>/XXXXXX`, deleted again by `stop()`.
    ///
    /// Creates `base` (mode 1777, like `/tmp`) if missing, then stops and deletes the stale clusters in it, then
    /// runs `initdb`, `pg_ctl start` and `createdb conveyor`. Installs PostgreSQL first when
    /// `installBinariesIfPossible(logger:)` can. On failure nothing is left behind.
    /// - Parameters:
    ///   - base: The directory to create the cluster in; `defaultEphemeralBase` when `nil`. Keep it short: the
    ///     socket path must stay under about 100 bytes.
    ///   - settings: The server configuration.
    ///   - logger: Receives what is done, at `info` and (for every command run) `debug` level.
    /// - Throws: `LocalPostgresError`.
    public static func startEphemeral(
        in base: String? = nil,
        settings: Settings = Settings(),
        logger: Logger = Logger(label: "conveyor.local-postgres")
    ) async throws -> LocalPostgres {
        let binaries = try await resolveBinaries(dataVersion: nil, logger: logger)
        let account = try ServerAccount.current()
        let base = ClusterLayout(directory: base ?? defaultEphemeralBase).directory
        try account.checkCanReach(base + "/cluster")
        try createEphemeralBase(base)
        await StaleClusterReaper(base: base, binaries: binaries, account: account, logger: logger).reap()

        let layout = ClusterLayout(directory: try makeUniqueDirectory(in: base))
        guard let claim = ClusterRegistry.shared.claim(layout.directory) else {
            throw clusterInUse(layout, by: getpid())
        }
        do {
            try ClusterOwner.current.write(to: layout.ownerFile)
            return try await launch(
                layout: layout,
                binaries: binaries,
                account: account,
                settings: settings,
                isEphemeral: true,
                claim: claim,
                logger: logger
            )
        } catch {
            ClusterRegistry.shared.release(layout.directory, token: claim)
            try? FileManager.default.removeItem(atPath: layout.directory)
            throw error
        }
    }

    /// Starts the cluster kept in `directory`, creating it with `initdb` when `directory/data` holds none yet.
    ///
    /// Creates `directory` (with intermediate directories) if missing. Before starting, stops and deletes the stale
    /// ephemeral clusters in `defaultEphemeralBase`; if this cluster's server is still running for a process that
    /// died, stops it with `pg_ctl stop -m immediate` (the data is kept and recovered). Then runs `pg_ctl start`
    /// on a fresh port and `createdb conveyor` (an existing database is kept). Picks the installed binaries of the
    /// major version that created the data directory.
    /// - Parameters:
    ///   - directory: The cluster directory, absolute or relative to the current directory, e.g.
    ///     `.conveyor/postgres`.
    ///   - settings: The server configuration for this run.
    ///   - logger: Receives what is done, at `info` and (for every command run) `debug` level.
    /// - Throws: `LocalPostgresError`, with code `CLUSTER_IN_USE` when another live process runs this cluster.
    public static func startPersistent(
        at directory: String,
        settings: Settings = Settings(),
        logger: Logger = Logger(label: "conveyor.local-postgres")
    ) async throws -> LocalPostgres {
        let layout = ClusterLayout(directory: directory)
        try layout.validate()
        let binaries = try await resolveBinaries(dataVersion: layout.dataVersion, logger: logger)
        let account = try ServerAccount.current()
        await StaleClusterReaper(base: defaultEphemeralBase, binaries: binaries, account: account, logger: logger)
            .reap()
        try account.checkCanReach(layout.directory)
        try createDirectory(layout.directory, permissions: nil)

        guard let claim = ClusterRegistry.shared.claim(layout.directory) else {
            throw clusterInUse(layout, by: getpid())
        }
        var ownsOwnerFile = false
        do {
            // The claim just taken is the only one, so an owner.pid naming this process is a leftover.
            if let owner = ClusterOwner.read(from: layout.ownerFile), owner.isAlive(isCurrentProcessAlive: false) {
                throw clusterInUse(layout, by: owner.pid)
            }
            let control = ServerControl(binaries: binaries, account: account, layout: layout, logger: logger)
            try await stopAbandonedServer(control)
            try ClusterOwner.current.write(to: layout.ownerFile)
            ownsOwnerFile = true
            return try await launch(
                layout: layout,
                binaries: binaries,
                account: account,
                settings: settings,
                isEphemeral: false,
                claim: claim,
                logger: logger
            )
        } catch {
            ClusterRegistry.shared.release(layout.directory, token: claim)
            if ownsOwnerFile {
                try? FileManager.default.removeItem(atPath: layout.ownerFile)
            }
            throw error
        }
    }

    /// Starts the cluster kept in `directory`; the same as `startPersistent(at: directory.path, ...)`.
    public static func startPersistent(
        at directory: URL,
        settings: Settings = Settings(),
        logger: Logger = Logger(label: "conveyor.local-postgres")
    ) async throws -> LocalPostgres {
        try await startPersistent(at: directory.path, settings: settings, logger: logger)
    }

    /// Shuts the server down cleanly with `pg_ctl stop -m fast` and waits until it has exited, falling back to
    /// `-m immediate` if that fails. Then deletes the cluster directory if ephemeral, or removes `owner.pid` if
    /// persistent. Calling it again, or after `stopImmediately()`, does nothing.
    /// - Throws: `LocalPostgresError` with code `STOP_FAILED` when the server keeps running or the directory
    ///   cannot be deleted.
    public func stop() async throws {
        guard ClusterRegistry.shared.holds(directory, token: claim) else { return }
        logger.info("stopping PostgreSQL cluster \(directory)")
        let fast = await control.stopCommand(mode: .fast).run(logger: logger)
        if !fast.succeeded, await control.statusCommand().run(logger: logger).succeeded {
            logger.warning("fast shutdown of \(directory) failed, shutting down immediately: \(fast.diagnostics)")
            let immediate = await control.stopCommand(mode: .immediate).run(logger: logger)
            if !immediate.succeeded, await control.statusCommand().run(logger: logger).succeeded {
                throw LocalPostgresError(
                    code: .stopFailed,
                    message: "pg_ctl could not stop the PostgreSQL server of \(directory); stop it with "
                        + "`pg_ctl -D \(layout.dataDirectory) stop -m immediate` or kill the process in "
                        + "\(layout.postmasterPIDFile)",
                    details: fast.diagnostics + "\n" + immediate.diagnostics
                )
            }
        }
        try removeTraces()
    }

    /// Kills the server at once (`pg_ctl stop -m immediate`: every session ends without a goodbye, as in a crash)
    /// and keeps the cluster, so that ``startAgain()`` brings it back on the same port with crash recovery. For
    /// fault tests: what clients see when their database goes away.
    /// - Throws: `STOP_FAILED` when the server keeps running.
    public func crash() async throws {
        let outcome = await control.stopCommand(mode: .immediate).run(logger: logger)
        if !outcome.succeeded, await control.statusCommand().run(logger: logger).succeeded {
            throw LocalPostgresError(
                code: .stopFailed,
                message: "pg_ctl could not stop the PostgreSQL server of \(directory) immediately",
                details: outcome.diagnostics
            )
        }
    }

    /// Starts the server again on its port after ``crash()``, and returns once it accepts connections (crash
    /// recovery included).
    /// - Throws: `START_FAILED` with the server log's tail.
    public func startAgain() async throws {
        let attempt = await control.start(port: port, settings: settings)
        guard attempt.outcome.succeeded else {
            throw LocalPostgresError(
                code: .startFailed,
                message: "the PostgreSQL server in \(directory) failed to start again on port \(port)",
                details: attempt.outcome.diagnostics + "\n" + ServerControl.tail(attempt.log)
            )
        }
    }

    /// Stops the server at once with `pg_ctl stop -m immediate`, blocking the calling thread until it has exited,
    /// then deletes the cluster directory if ephemeral, or removes `owner.pid` if persistent. Never throws;
    /// failures are logged. Safe to call from an `atexit` handler; a persistent cluster runs crash recovery at its
    /// next start. Calling it again, or after `stop()`, does nothing.
    public func stopImmediately() {
        guard ClusterRegistry.shared.holds(directory, token: claim) else { return }
        let outcome = control.stopCommand(mode: .immediate).runSynchronously(logger: logger)
        if !outcome.succeeded {
            logger.warning("immediate shutdown of \(directory) failed: \(outcome.diagnostics)")
        }
        do {
            try removeTraces()
        } catch {
            logger.warning("\(error)")
        }
    }

    /// Arranges for `stopImmediately()` to run when the process exits normally (`exit()` or returning from
    /// `main`), through one `atexit` handler shared by all clusters. A process killed by a signal leaves the
    /// cluster running; the next start in any process cleans it up.
    public func stopAtExit() {
        ClusterRegistry.shared.stopAtExit(self)
    }

    private var control: ServerControl {
        ServerControl(binaries: binaries, account: account, layout: layout, logger: logger)
    }

    /// Deletes the ephemeral directory, or the persistent `owner.pid`, then gives up this process's claim (in that
    /// order, so that no stale-cluster sweep mistakes the directory for a leftover meanwhile).
    private func removeTraces() throws {
        defer { ClusterRegistry.shared.release(directory, token: claim) }
        let fileManager = FileManager.default
        if isEphemeral {
            do {
                try fileManager.removeItem(atPath: directory)
            } catch {
                guard fileManager.fileExists(atPath: directory) else { return }
                throw LocalPostgresError(
                    code: .stopFailed,
                    message: "the server of \(directory) stopped, but the directory could not be deleted; "
                        + "delete it by hand",
                    details: "\(error)"
                )
            }
        } else if ClusterOwner.read(from: layout.ownerFile)?.pid == getpid() {
            try? fileManager.removeItem(atPath: layout.ownerFile)
        }
    }
}

extension LocalPostgres {
    /// The installation to run a cluster whose data directory was made by `dataVersion` (any when `nil`),
    /// installing PostgreSQL first where possible.
    private static func resolveBinaries(dataVersion: Int?, logger: Logger) async throws -> Binaries {
        let binaries = try await findOrInstallBinaries(logger: logger)
        guard let dataVersion, binaries.version != dataVersion else {
            return binaries
        }
        if let matching = Binaries.find(version: dataVersion) {
            return matching
        }
        throw LocalPostgresError(
            code: .versionMismatch,
            message: "the cluster data was created by PostgreSQL \(dataVersion), but only PostgreSQL "
                + "\(binaries.version) was found (\(binaries.directory)); install PostgreSQL \(dataVersion) "
                + "(e.g. `apt-get install postgresql-\(dataVersion)`), or delete the cluster directory to start "
                + "over without its data"
        )
    }

    /// Creates the ephemeral base directory, world-writable with the sticky bit like `/tmp`, if it is missing.
    private static func createEphemeralBase(_ base: String) throws {
        guard !FileManager.default.fileExists(atPath: base) else { return }
        try createDirectory(base, permissions: 0o1777)
    }

    private static func createDirectory(_ path: String, permissions: Int?) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            if let permissions {
                try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: path)
            }
        } catch {
            throw LocalPostgresError(
                code: .directoryNotAccessible,
                message: "could not create \(path) (\(error.localizedDescription)); make its parent writable "
                    + "or choose another directory",
                details: "\(error)"
            )
        }
    }

    /// Creates `<base>/XXXXXX` with a unique name (`mkdtemp`, mode 0700).
    private static func makeUniqueDirectory(in base: String) throws -> String {
        var template = Array((base + "/XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let start = buffer.baseAddress else { return false }
            return mkdtemp(start) != nil
        }
        guard created else {
            let reason = String(cString: strerror(errno))
            throw LocalPostgresError(
                code: .directoryNotAccessible,
                message: "could not create a cluster directory in \(base) (\(reason)); make it writable or set "
                    + "TMPDIR to a writable directory",
                details: reason
            )
        }
        return template.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { String(cString: $0) } ?? base
        }
    }

    private static func clusterInUse(_ layout: ClusterLayout, by pid: pid_t) -> LocalPostgresError {
        LocalPostgresError(
            code: .clusterInUse,
            message: "the PostgreSQL cluster in \(layout.directory) is in use by process \(pid); stop that process "
                + "first, or use another directory"
        )
    }

    /// Stops the server of a persistent cluster that is still running although its owner died.
    private static func stopAbandonedServer(_ control: ServerControl) async throws {
        let layout = control.layout
        guard FileManager.default.fileExists(atPath: layout.postmasterPIDFile),
            await control.statusCommand().run(logger: control.logger).succeeded
        else {
            return
        }
        control.logger.notice("stopping the PostgreSQL server of \(layout.directory) left running by a dead process")
        let outcome = await control.stopCommand(mode: .immediate).run(logger: control.logger)
        guard outcome.succeeded else {
            throw LocalPostgresError(
                code: .startFailed,
                message: "a PostgreSQL server left running in \(layout.dataDirectory) by a dead process could not be "
                    + "stopped; stop it with `pg_ctl -D \(layout.dataDirectory) stop -m immediate`",
                details: outcome.diagnostics
            )
        }
    }

    /// Prepares the directories (whose parents the server account can reach), runs `initdb` if needed, starts the
    /// server on a free port (trying up to three ports when another process takes one first) and creates the
    /// `conveyor` database.
    private static func launch(
        layout: ClusterLayout,
        binaries: Binaries,
        account: ServerAccount,
        settings: Settings,
        isEphemeral: Bool,
        claim: UUID,
        logger: Logger
    ) async throws -> LocalPostgres {
        try layout.validate()
        try createDirectory(layout.socketDirectory, permissions: 0o700)
        let logExists = FileManager.default.fileExists(atPath: layout.logFile)
        try account.takeOwnership(of: [layout.directory, layout.socketDirectory] + (logExists ? [layout.logFile] : []))

        let control = ServerControl(binaries: binaries, account: account, layout: layout, logger: logger)
        _ = try await control.initializeIfNeeded(user: defaultUser)
        let port = try await startServer(control, settings: settings)
        do {
            try await control.createDatabase(defaultDatabase, user: defaultUser, port: port)
        } catch {
            _ = await control.stopCommand(mode: .immediate).run(logger: logger)
            throw error
        }
        let cluster = LocalPostgres(
            port: port,
            socketDirectory: layout.socketDirectory,
            user: defaultUser,
            database: defaultDatabase,
            directory: layout.directory,
            logFile: layout.logFile,
            isEphemeral: isEphemeral,
            binaries: binaries,
            settings: settings,
            layout: layout,
            account: account,
            logger: logger,
            claim: claim
        )
        logger.info("PostgreSQL \(binaries.version) ready at \(cluster.url) (cluster \(layout.directory))")
        return cluster
    }

    /// Starts the server on a free port, trying another port (three in all) when the chosen one was taken before
    /// the server could bind it.
    /// - Returns: The port the server listens on.
    private static func startServer(_ control: ServerControl, settings: Settings) async throws -> Int {
        let attempts = 3
        for attemptNumber in 1...attempts {
            let port = try FreePort.pick()
            let attempt = await control.start(port: port, settings: settings)
            if attempt.outcome.succeeded {
                return port
            }
            if attempt.lostPortRace && attemptNumber < attempts {
                control.logger.info("port \(port) was taken before PostgreSQL could bind it; trying another")
                continue
            }
            let log = ServerControl.tail(attempt.log).trimmingCharacters(in: .whitespacesAndNewlines)
            throw LocalPostgresError(
                code: .startFailed,
                message: "the PostgreSQL server in \(control.layout.directory) failed to start (pg_ctl exit status "
                    + "\(attempt.outcome.status)); the server log \(control.layout.logFile) tells why",
                details: attempt.outcome.diagnostics + (log.isEmpty ? "" : "\n--- server log (tail) ---\n" + log)
            )
        }
        throw LocalPostgresError(
            code: .startFailed,
            message: "the PostgreSQL server in \(control.layout.directory) could not get a free port in "
                + "\(attempts) attempts; free some ports on 127.0.0.1 and try again"
        )
    }
}
