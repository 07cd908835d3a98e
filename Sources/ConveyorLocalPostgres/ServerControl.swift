import Foundation
import Logging

/// Runs `initdb`, `pg_ctl` and `createdb` on one cluster directory, as the server account.
struct ServerControl: Sendable {
    /// How `pg_ctl stop` shuts the server down.
    enum StopMode: String, Sendable {
        /// Disconnects clients and shuts down cleanly (`-m fast`).
        case fast
        /// Kills all server processes at once; the next start runs crash recovery (`-m immediate`).
        case immediate
    }

    /// How long `pg_ctl` waits for the server to start or stop, in seconds.
    static let timeoutSeconds = 60

    let binaries: LocalPostgres.Binaries
    let account: ServerAccount
    let layout: ClusterLayout
    let logger: Logger

    /// Creates the data directory with `initdb` unless `data/PG_VERSION` exists.
    ///
    /// `initdb` writes to `data.initdb`, which is renamed to `data` only when it succeeds, so an interrupted run
    /// leaves nothing that looks like a cluster.
    /// - Returns: Whether a new data directory was made.
    /// - Throws: `INITDB_FAILED` with `initdb`'s output.
    func initializeIfNeeded(user: String) async throws -> Bool {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: layout.dataDirectory + "/PG_VERSION") {
            return false
        }
        try? fileManager.removeItem(atPath: layout.stagingDataDirectory)
        logger.info("creating PostgreSQL \(binaries.version) cluster in \(layout.dataDirectory)")
        let outcome = await account.command(
            binaries.initdb,
            [
                "-D", layout.stagingDataDirectory, "-U", user, "--auth=trust", "-E", "UTF8", "--locale=C",
                "--no-sync",
            ],
            workingDirectory: layout.directory
        ).run(logger: logger)
        guard outcome.succeeded else {
            try? fileManager.removeItem(atPath: layout.stagingDataDirectory)
            throw LocalPostgresError(
                code: .initdbFailed,
                message: "initdb failed to create a cluster in \(layout.dataDirectory) (exit status "
                    + "\(outcome.status)); check free disk space and that the directory is writable, "
                    + "or delete \(layout.directory) and try again",
                details: outcome.diagnostics
            )
        }
        do {
            // An empty `data` directory (made by hand) would block the rename; anything else is an error.
            if fileManager.fileExists(atPath: layout.dataDirectory) {
                try fileManager.removeItem(atPath: layout.dataDirectory)
            }
            try fileManager.moveItem(atPath: layout.stagingDataDirectory, toPath: layout.dataDirectory)
        } catch {
            throw LocalPostgresError(
                code: .initdbFailed,
                message: "could not move the new cluster from \(layout.stagingDataDirectory) to "
                    + "\(layout.dataDirectory); delete \(layout.directory) and try again",
                details: "\(error)"
            )
        }
        return true
    }

    /// The outcome of one `pg_ctl start`.
    struct StartAttempt: Sendable {
        /// What `pg_ctl` returned.
        var outcome: Command.Outcome
        /// What the server wrote to its log during this attempt.
        var log: String

        /// Whether the server failed because another process took the port first.
        var lostPortRace: Bool {
            log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
        }
    }

    /// Starts the server in the background with `pg_ctl start -w`, listening on 127.0.0.1:`port` and on a Unix
    /// socket in the `run` directory, and waits until it accepts connections.
    func start(port: Int, settings: LocalPostgres.Settings) async -> StartAttempt {
        let parameters =
            settings.serverParameters + [
                ("listen_addresses", "127.0.0.1"),
                ("port", String(port)),
                ("unix_socket_directories", "\"" + layout.socketDirectory + "\""),
            ]
        let options = parameters.map { "-c " + ShellQuoting.quote("\($0.name)=\($0.value)") }
        let logOffset = Self.size(ofFile: layout.logFile)
        let outcome = await account.command(
            binaries.pgCtl,
            [
                "-D", layout.dataDirectory, "-l", layout.logFile, "-w", "-t", String(Self.timeoutSeconds),
                "-o", options.joined(separator: " "), "start",
            ],
            workingDirectory: layout.directory
        ).run(logger: logger)
        let log = outcome.succeeded ? "" : Self.contents(ofFile: layout.logFile, from: logOffset)
        return StartAttempt(outcome: outcome, log: log)
    }

    /// The `pg_ctl stop` command for `mode`, waiting for the server to exit.
    func stopCommand(mode: StopMode) -> Command {
        account.command(
            binaries.pgCtl,
            ["-D", layout.dataDirectory, "-m", mode.rawValue, "-w", "-t", String(Self.timeoutSeconds), "stop"],
            workingDirectory: layout.directory
        )
    }

    /// The `pg_ctl status` command: exit status 0 while a server runs on the data directory.
    func statusCommand() -> Command {
        account.command(binaries.pgCtl, ["-D", layout.dataDirectory, "status"], workingDirectory: layout.directory)
    }

    /// Creates database `name` owned by `user` with `createdb` over the Unix socket; a database that already exists
    /// is left as it is.
    /// - Throws: `CREATEDB_FAILED` with `createdb`'s output.
    func createDatabase(_ name: String, user: String, port: Int) async throws {
        let outcome = await account.command(
            binaries.createdb,
            ["-h", layout.socketDirectory, "-p", String(port), "-U", user, name],
            workingDirectory: layout.directory
        ).run(logger: logger)
        guard outcome.succeeded || outcome.errorOutput.contains("already exists") else {
            throw LocalPostgresError(
                code: .createdbFailed,
                message: "createdb could not create database \"\(name)\" in the cluster at \(layout.directory) "
                    + "(exit status \(outcome.status)); see \(layout.logFile) for the server's side",
                details: outcome.diagnostics
            )
        }
    }

    /// The last `lineCount` lines of `text`.
    static func tail(_ text: String, lineCount: Int = 30) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lineCount).joined(separator: "\n")
    }

    private static func size(ofFile path: String) -> UInt64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    private static func contents(ofFile path: String, from offset: UInt64) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: offset)
            return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        } catch {
            return ""
        }
    }
}
