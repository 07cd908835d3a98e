import Conveyor
import Foundation
import PostgresNIO

extension PostgresClient.Configuration {
    /// Parses a `postgres://user:password@host:port/database` URL (also `postgresql://`). TLS is not used; an
    /// `sslmode` other than `disable` or `prefer` is refused, so a URL that asks for encryption never silently runs
    /// without it.
    ///
    /// - Throws: `INVALID_CONFIGURATION` with a message that never repeats the password.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw ConveyorError(.invalidConfiguration, "a database URL must look like postgres://user@host:port/db")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ConveyorError(.invalidConfiguration, "the database URL has no host")
        }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        let password = components.password.flatMap { $0.removingPercentEncoding }
        var database = String(components.path.drop(while: { $0 == "/" }))
        if database.isEmpty { database = user }
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            guard item.value == "disable" || item.value == "prefer" || item.value == "allow" else {
                throw ConveyorError(
                    .invalidConfiguration,
                    "sslmode=\(item.value ?? "") is not supported yet; use sslmode=disable on a trusted network"
                )
            }
        }
        self.init(
            host: host,
            port: components.port ?? 5432,
            username: user,
            password: password,
            database: database,
            tls: .disable
        )
    }
}
