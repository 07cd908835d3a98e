import Foundation
import Logging

@testable import ConveyorLocalPostgres

/// Debian's headless Chromium, as the dashboard tests drive it: load a page, let its script run, and read the
/// resulting DOM (or a screenshot). Installed with apt-get when it is missing and the tests run as root, as the
/// PostgreSQL server is; `.ci/run` installs it too.
enum Chromium {
    static let logger = Logger(label: "conveyor.test.chromium")

    static func executable() async throws -> String {
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        if let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) { return found }
        let aptGet = "/usr/bin/apt-get"
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: aptGet) else {
            throw TestFailure("Chromium is not installed (apt-get install chromium) and cannot be installed here")
        }
        for arguments in [["update"], ["install", "-y", "chromium"]] {
            let outcome = await Command(aptGet, arguments, environment: ["DEBIAN_FRONTEND": "noninteractive"])
                .run(logger: Self.logger)
            guard outcome.succeeded else { throw TestFailure("apt-get \(arguments) failed: \(outcome.diagnostics)") }
        }
        guard let found = candidates.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw TestFailure("apt-get installed chromium but no executable was found")
        }
        return found
    }

    static func baseArguments(profile: String) -> [String] {
        [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--user-data-dir=\(profile)",
            "--virtual-time-budget=3000", "--window-size=1366,900", "--hide-scrollbars",
        ]
    }

    /// The DOM of `url` after its scripts ran for the virtual-time budget.
    static func dom(_ url: String) async throws -> String {
        let profile = NSTemporaryDirectory() + "conveyor-chromium-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let outcome = await Command(
            try await Self.executable(),
            Self.baseArguments(profile: profile) + ["--dump-dom", url]
        )
        .run(logger: Self.logger)
        guard outcome.succeeded else { throw TestFailure("chromium failed on \(url): \(outcome.diagnostics)") }
        return outcome.output
    }

    /// Writes a PNG of `url` to `path`.
    static func screenshot(_ url: String, to path: String) async throws {
        let profile = NSTemporaryDirectory() + "conveyor-chromium-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let outcome = await Command(
            try await Self.executable(),
            Self.baseArguments(profile: profile) + ["--screenshot=\(path)", url]
        )
        .run(logger: Self.logger)
        guard outcome.succeeded, FileManager.default.fileExists(atPath: path) else {
            throw TestFailure("chromium could not take a screenshot of \(url): \(outcome.diagnostics)")
        }
    }
}
