import Foundation

/// A `conveyor worker` child process on the test database: real processes, really killed.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    let logFile: String

    /// The `conveyor` executable built next to the test bundle.
    static var executable: URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("conveyor")
    }

    init(database: TestDatabase, arguments: [String]) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            throw TestFailure("the conveyor executable is missing at \(Self.executable.path); build the package first")
        }
        self.logFile = NSTemporaryDirectory() + "conveyor-worker-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: self.logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: self.logFile))
        self.process.executableURL = Self.executable
        self.process.arguments =
            ["worker", "--database-url", database.url, "--schema", database.schema, "--log-level", "warning"]
            + arguments
        self.process.standardOutput = log
        self.process.standardError = log
        self.process.standardInput = FileHandle.nullDevice
        try self.process.run()
    }

    var isRunning: Bool { self.process.isRunning }

    func kill() {
        Foundation.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit status.
    @discardableResult
    func terminate() -> Int32 {
        if self.process.isRunning {
            Foundation.kill(self.process.processIdentifier, SIGTERM)
        }
        self.process.waitUntilExit()
        return self.process.terminationStatus
    }

    var output: String { (try? String(contentsOfFile: self.logFile, encoding: .utf8)) ?? "" }

    deinit {
        if self.process.isRunning {
            Foundation.kill(self.process.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: self.logFile)
    }
}

/// One line of the `demo.record` job's file: a handler's run, with monotonic times comparable across processes.
struct RecordedRun: Hashable {
    var job: Int64
    var attempt: Int
    var start: UInt64
    var end: UInt64
    var pid: Int32

    static func read(_ path: String) throws -> [RecordedRun] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let fields = line.split(separator: " ")
            guard fields.count == 5, let job = Int64(fields[0]), let attempt = Int(fields[1]),
                let start = UInt64(fields[2]), let end = UInt64(fields[3]), let pid = Int32(fields[4])
            else { throw TestFailure("malformed record line: \(line)") }
            return RecordedRun(job: job, attempt: attempt, start: start, end: end, pid: pid)
        }
    }
}
