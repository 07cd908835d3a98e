import Conveyor
import Foundation

/// Runs the pgbench SQL ceiling script against the benchmark's server and parses its `CEILING` line.
enum BenchCeiling {
    static func run(script: String, url: String, seconds: Int) throws -> [String: Double] {
        guard FileManager.default.isReadableFile(atPath: script) else {
            throw ConveyorError(.invalidConfiguration, "the ceiling script is not at \(script); pass --ceiling-script")
        }
        guard let components = URLComponents(string: url), let host = components.host else {
            throw ConveyorError(.invalidConfiguration, "cannot read host and port from the database URL")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, String(seconds)]
        var environment = ProcessInfo.processInfo.environment
        environment["PGHOST"] = host
        environment["PGPORT"] = String(components.port ?? 5432)
        environment["PGUSER"] = components.user ?? "postgres"
        if let password = components.password { environment["PGPASSWORD"] = password }
        process.environment = environment
        let output = NSTemporaryDirectory() + "conveyor-ceiling-\(UUID().uuidString).txt"
        FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0,
            let line = text.split(separator: "\n").last(where: { $0.hasPrefix("CEILING ") })
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
