import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension LocalPostgres {
    /// One installation of the PostgreSQL server programs: a directory holding `initdb`, `pg_ctl`, `postgres`
    /// and `createdb`.
    public struct Binaries: Sendable, Equatable {
        /// The directory that holds the programs, e.g. `/usr/lib/postgresql/15/bin`.
        public let directory: String
        /// The major version reported by `postgres --version`, e.g. `15`.
        public let version: Int
        /// Path of `initdb`, which creates a cluster's data directory.
        public let initdb: String
        /// Path of `pg_ctl`, which starts and stops the server.
        public let pgCtl: String
        /// Path of `postgres`, the server itself.
        public let postgres: String
        /// Path of `createdb`, used to create the `conveyor` database.
        public let createdb: String
        /// Path of `psql` in the same directory, when it is there.
        public let psql: String?

        /// The programs in `directory`, or `nil` when one of the required ones is missing or its version cannot
        /// be read. Runs `postgres --version` once.
        init?(directory: String) {
            let tool = { (name: String) -> String? in
                let path = (directory as NSString).appendingPathComponent(name)
                return FileManager.default.isExecutableFile(atPath: path) ? path : nil
            }
            guard let initdb = tool("initdb"), let pgCtl = tool("pg_ctl"), let postgres = tool("postgres"),
                let createdb = tool("createdb")
            else {
                return nil
            }
            let quiet = Logger(label: "conveyor.local-postgres") { _ in SwiftLogNoOpLogHandler() }
            let outcome = Command(postgres, ["--version"]).runSynchronously(logger: quiet)
            guard outcome.succeeded, let version = Self.majorVersion(fromVersionOutput: outcome.output) else {
                return nil
            }
            self.directory = directory
            self.version = version
            self.initdb = initdb
            self.pgCtl = pgCtl
            self.postgres = postgres
            self.createdb = createdb
            self.psql = tool("psql")
        }

        /// The major version in output like `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
        static func majorVersion(fromVersionOutput output: String) -> Int? {
            guard let marker = output.range(of: "(PostgreSQL) ") else { return nil }
            let digits = output[marker.upperBound...].prefix(while: \.isNumber)
            return Int(digits)
        }

        /// The directories searched, in order: each directory on `PATH`, then `/usr/lib/postgresql/*/bin`
        /// (Debian, Ubuntu), `/usr/pgsql-*/bin` (PGDG RPMs) and Homebrew's `postgresql@*` kegs, each newest
        /// major version first.
        static func searchDirectories(path: String?) -> [String] {
            var directories = (path ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
            directories += versionedDirectories(parent: "/usr/lib/postgresql", prefix: "", suffix: "/bin")
            directories += versionedDirectories(parent: "/usr", prefix: "pgsql-", suffix: "/bin")
            directories += versionedDirectories(parent: "/opt/homebrew/opt", prefix: "postgresql@", suffix: "/bin")
            directories += versionedDirectories(parent: "/usr/local/opt", prefix: "postgresql@", suffix: "/bin")
            var seen: Set<String> = []
            return directories.filter { seen.insert(($0 as NSString).standardizingPath).inserted }
        }

        /// The first installation in `searchDirectories(path:)` order, of major version `version` when given.
        static func find(
            version: Int? = nil,
            path: String? = ProcessInfo.processInfo.environment["PATH"]
        ) -> Binaries? {
            searchDirectories(path: path).lazy
                .compactMap(Binaries.init(directory:))
                .first { version == nil || $0.version == version }
        }

        /// `parent/<prefix><version><suffix>` for each entry of `parent` named `<prefix><version>`, newest first.
        private static func versionedDirectories(parent: String, prefix: String, suffix: String) -> [String] {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
            let versioned = entries.compactMap { entry -> (version: Double, entry: String)? in
                guard entry.hasPrefix(prefix), let version = Double(entry.dropFirst(prefix.count)) else { return nil }
                return (version, entry)
            }
            return versioned.sorted { $0.version > $1.version }.map { parent + "/" + $0.entry + suffix }
        }
    }

    /// Finds the PostgreSQL server programs without changing anything on disk.
    ///
    /// Searches the directories on `PATH` first, then `/usr/lib/postgresql/*/bin` (plus `/usr/pgsql-*/bin` and
    /// Homebrew's keg-only `postgresql@*` formulae), newest major version first. A directory qualifies when it
    /// holds `initdb`, `pg_ctl`, `postgres` and `createdb`; `postgres --version` is run to read the version.
    /// - Throws: `LocalPostgresError` with code `BINARIES_NOT_FOUND`.
    public static func findBinaries() throws -> Binaries {
        guard let binaries = Binaries.find() else {
            throw LocalPostgresError.binariesNotFound()
        }
        return binaries
    }

    /// Makes sure the PostgreSQL server programs are installed, installing them when that is possible.
    ///
    /// When `findBinaries()` finds nothing, the process runs as root and `apt-get` exists (Debian, Ubuntu), this
    /// runs `apt-get update` and `apt-get install -y postgresql` with `DEBIAN_FRONTEND=noninteractive`, capturing
    /// their output. Blocks the calling thread until done (a minute or so). Note that the Debian package creates
    /// and starts its own `main` cluster on port 5432, which `LocalPostgres` never uses.
    /// - Returns: The binaries found, before or after installing.
    /// - Throws: `LocalPostgresError` with code `BINARIES_NOT_FOUND` when nothing can be installed, or
    ///   `INSTALL_FAILED` with `apt-get`'s output.
    @discardableResult
    public static func installBinariesIfPossible(
        logger: Logger = Logger(label: "conveyor.local-postgres")
    ) throws -> Binaries {
        if let binaries = Binaries.find() {
            return binaries
        }
        let commands = try installCommands()
        logger.notice("PostgreSQL not found; installing it with apt-get (this takes a minute)")
        for command in commands {
            try checkInstallStep(command, command.runSynchronously(logger: logger))
        }
        return try findBinaries()
    }

    /// `installBinariesIfPossible(logger:)` without blocking a thread while `apt-get` runs.
    static func findOrInstallBinaries(logger: Logger) async throws -> Binaries {
        if let binaries = Binaries.find() {
            return binaries
        }
        let commands = try installCommands()
        logger.notice("PostgreSQL not found; installing it with apt-get (this takes a minute)")
        for command in commands {
            try checkInstallStep(command, await command.run(logger: logger))
        }
        return try findBinaries()
    }

    private static func installCommands() throws -> [Command] {
        let aptGet = ["/usr/bin/apt-get", "/bin/apt-get"].first(where: FileManager.default.isExecutableFile(atPath:))
        guard geteuid() == 0, let aptGet else {
            throw LocalPostgresError.binariesNotFound()
        }
        let environment = ["DEBIAN_FRONTEND": "noninteractive"]
        return [
            Command(aptGet, ["update"], environment: environment),
            Command(aptGet, ["install", "-y", "postgresql"], environment: environment),
        ]
    }

    private static func checkInstallStep(_ command: Command, _ outcome: Command.Outcome) throws {
        guard outcome.succeeded else {
            throw LocalPostgresError(
                code: .installFailed,
                message: "`\(command.displayLine)` failed (exit status \(outcome.status)) while installing "
                    + "PostgreSQL; install it yourself with `apt-get install postgresql`",
                details: outcome.diagnostics
            )
        }
    }
}
