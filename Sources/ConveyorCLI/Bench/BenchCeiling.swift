import Conveyor
import ConveyorLocalPostgres
import Foundation

/// Runs the pgbench SQL ceiling script against the benchmark's server and parses its `CEILING` line.
enum BenchCeiling {
    static func run(script: String, url: String, seconds: Int) async throws -> [String: Double] {
        guard FileManager.default.isReadableFile(atPath: script) else {
            throw ConveyorError(.invalidConfiguration, "the ceiling script is not at \(script); pass --ceiling-script")
        }
        guard let components = URLComponents(string: url), let host = components.host else {
            throw ConveyorError(.invalidConfiguration, "cannot read host and port from the database URL")
        }
        var environment = [
            "PGHOST": host,
            "PGPORT": String(components.port ?? 5432),
            "PGUSER": components.user ?? "postgres",
        ]
        if let password = components.password { environment["PGPASSWORD"] = password }
        let outcome = await LocalPostgres.runTool(
            "/bin/bash",
            arguments: [script, String(seconds)],
            environment: environment
        )
        let text = outcome.output + outcome.errorOutput
        guard outcome.status == 0,
            let line = outcome.output.split(separator: "\n").last(where: { $0.hasPrefix("CEILING ") })
        else {
            throw ConveyorError(.databaseError, "the ceiling script failed: \(text.suffix(500))")
        }
        var figures: [String: Double] = [:]
        for pair in line.dropFirst("CEILING ".count).split(separator: " ") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Double(parts[1]) {
                figures[String(parts[0])] = value
            }
        }
        return figures
    }
}
