import Foundation

/// Where everything of one cluster lives inside its directory.
///
/// ```
/// <directory>/data        the data directory made by initdb
/// <directory>/run         the Unix socket directory
/// <directory>/server.log  the server log (pg_ctl -l)
/// <directory>/owner.pid   the process id of the process that started the server
/// ```
struct ClusterLayout: Sendable, Hashable {
    /// The longest Unix socket path the operating system accepts (`sizeof(sun_path) - 1`).
    #if canImport(Darwin)
    static let maximumSocketPathLength = 103
    #else
    static let maximumSocketPathLength = 107
    #endif

    /// The cluster directory, absolute and standardized.
    let directory: String

    init(directory: String) {
        let absolute = URL(fileURLWithPath: directory, isDirectory: true).standardizedFileURL.path
        self.directory = absolute.count > 1 && absolute.hasSuffix("/") ? String(absolute.dropLast()) : absolute
    }

    /// The data directory, created by `initdb`.
    var dataDirectory: String { directory + "/data" }
    /// Where `initdb` writes before the result is renamed to `dataDirectory`, so a half-made cluster is never used.
    var stagingDataDirectory: String { directory + "/data.initdb" }
    /// The Unix socket directory.
    var socketDirectory: String { directory + "/run" }
    /// The server log.
    var logFile: String { directory + "/server.log" }
    /// The file recording which process owns the running server.
    var ownerFile: String { directory + "/owner.pid" }
    /// The server's own lock file, present while a server runs (or after it was killed).
    var postmasterPIDFile: String { dataDirectory + "/postmaster.pid" }
    /// The major version that created the data directory, from `data/PG_VERSION`.
    var dataVersion: Int? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/PG_VERSION", encoding: .utf8) else {
            return nil
        }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The socket path the server would use on `port`.
    func socketPath(port: Int) -> String {
        socketDirectory + "/.s.PGSQL.\(port)"
    }

    /// Checks that the server can use this directory: no characters `pg_ctl` cannot pass through its shell, and a
    /// socket path within the operating system's limit.
    /// - Throws: `UNSUPPORTED_PATH` or `SOCKET_PATH_TOO_LONG`.
    func validate() throws {
        let forbidden: Set<Character> = ["\"", "$", "`", "\\", "\n", "\r"]
        if let character = directory.first(where: forbidden.contains) {
            throw LocalPostgresError(
                code: .unsupportedPath,
                message: "the cluster directory \(directory) contains \(character.debugDescription), which pg_ctl "
                    + "cannot pass to the server; choose a path without \", $, `, \\ or line breaks"
            )
        }
        let longest = socketPath(port: 65535)
        if longest.utf8.count > Self.maximumSocketPathLength {
            throw LocalPostgresError(
                code: .socketPathTooLong,
                message: "the Unix socket path \(longest) would be \(longest.utf8.count) bytes, over the limit of "
                    + "\(Self.maximumSocketPathLength); choose a cluster directory at most "
                    + "\(Self.maximumSocketPathLength - (longest.utf8.count - directory.utf8.count)) bytes long"
            )
        }
    }
}
