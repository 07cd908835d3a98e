import Foundation

/// Why a local PostgreSQL cluster could not be found, installed, started or stopped.
///
/// `description` is one line that says what went wrong and how to fix it; `debugDescription` adds the captured
/// standard error of the failing command (or the tail of the server log).
public struct LocalPostgresError: Error, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    /// A stable, machine-readable identifier of the failure, such as `BINARIES_NOT_FOUND`.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The code as written in messages, e.g. `START_FAILED`.
        public let rawValue: String

        /// A code from its string form.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// The same as `rawValue`.
        public var description: String { rawValue }

        /// No directory holds `initdb`, `pg_ctl`, `postgres` and `createdb`.
        public static let binariesNotFound = Code(rawValue: "BINARIES_NOT_FOUND")
        /// `apt-get install postgresql` failed.
        public static let installFailed = Code(rawValue: "INSTALL_FAILED")
        /// `initdb` failed.
        public static let initdbFailed = Code(rawValue: "INITDB_FAILED")
        /// `pg_ctl start` failed or the server did not become ready.
        public static let startFailed = Code(rawValue: "START_FAILED")
        /// `createdb` failed for a reason other than the database already existing.
        public static let createdbFailed = Code(rawValue: "CREATEDB_FAILED")
        /// `pg_ctl stop` failed, or the cluster directory could not be removed.
        public static let stopFailed = Code(rawValue: "STOP_FAILED")
        /// The cluster directory cannot be created, written, or reached by the `postgres` user.
        public static let directoryNotAccessible = Code(rawValue: "DIRECTORY_NOT_ACCESSIBLE")
        /// The Unix socket path inside the cluster directory exceeds the operating system's limit.
        public static let socketPathTooLong = Code(rawValue: "SOCKET_PATH_TOO_LONG")
        /// The cluster directory path contains characters that `pg_ctl` cannot pass through its shell.
        public static let unsupportedPath = Code(rawValue: "UNSUPPORTED_PATH")
        /// A persistent cluster is owned by another live process.
        public static let clusterInUse = Code(rawValue: "CLUSTER_IN_USE")
        /// A persistent cluster was created by a PostgreSQL major version that is not installed.
        public static let versionMismatch = Code(rawValue: "VERSION_MISMATCH")
        /// Running as root, but there is no `postgres` user (or no `runuser`) to run the server as.
        public static let postgresUserMissing = Code(rawValue: "POSTGRES_USER_MISSING")
        /// No free TCP port could be reserved on 127.0.0.1.
        public static let noFreePort = Code(rawValue: "NO_FREE_PORT")
    }

    /// What failed, as a stable code.
    public var code: Code
    /// One line: what went wrong and the remedy.
    public var message: String
    /// The captured standard error of the failing command, or the tail of the server log; may be empty.
    public var details: String

    /// An error with `code`, the one-line `message` (what failed and the remedy) and the failing command's output.
    public init(code: Code, message: String, details: String = "") {
        self.code = code
        self.message = message
        self.details = details
    }

    /// The one-line message with the remedy.
    public var description: String { message }

    /// The code, the message and, on the following lines, the captured output.
    public var debugDescription: String {
        let trimmed = details.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "[\(code)] \(message)" : "[\(code)] \(message)\n\(trimmed)"
    }
}

extension LocalPostgresError {
    static func binariesNotFound(details: String = "") -> LocalPostgresError {
        LocalPostgresError(
            code: .binariesNotFound,
            message: "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                + "install them with `apt-get install postgresql` (Debian/Ubuntu) or `brew install postgresql@15`",
            details: details
        )
    }
}
