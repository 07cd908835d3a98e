import Foundation
import Synchronization

/// A `conveyor worker` child process on the test database: real processes, really killed.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    let logFile: String
    /// Whether the process exited, and the tasks waiting for it to. Waiting through the termination handler, not
    /// `waitUntilExit()`, which would block one of the few threads every test's tasks share (a worker shutting down
    /// gracefully takes seconds, long enough to starve another test's heartbeats).
    private let exit = ExitSignal()

    final class ExitSignal: Sendable {
        let state = Mutex<(exited: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    }

    /// The `conveyor` executable built next to the test bundle.
    static var executable: URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("conveyor")
    }

    convenience init(database: TestDatabase, arguments: [String]) throws {
        try self.init(url: database.url, schema: database.schema, arguments: arguments)
    }

    /// A worker on the server at `url`, working `schema`; it connects as application `conveyor worker <schema>`.
    /// `command` runs another long-lived subcommand instead (`serve`), with `environment` added to this process's.
    init(
        url: String,
        schema: String,
        command: String = "worker",
        arguments: [String],
        environment: [String: String] = [:]
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            throw TestFailure("the conveyor executable is missing at \(Self.executable.path); build the package first")
        }
        self.logFile = NSTemporaryDirectory() + "conveyor-worker-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: self.logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: self.logFile))
        self.process.executableURL = Self.executable
        self.process.arguments =
            [command, "--database-url", url, "--schema", schema, "--log-level", "warning"]
            + arguments
        if !environment.isEmpty {
            self.process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        self.process.standardOutput = log
        self.process.standardError = log
        self.process.standardInput = FileHandle.nullDevice
        self.process.terminationHandler = { [exit] _ in
            let waiters = exit.state.withLock { state in
                state.exited = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        try self.process.run()
    }

    /// Returns once the process exited.
    func exited() async {
        await withCheckedContinuation { continuation in
            let exited = self.exit.state.withLock { state in
                if !state.exited { state.waiters.append(continuation) }
                return state.exited
            }
            if exited { continuation.resume() }
        }
    }

    var isRunning: Bool { self.process.isRunning }

    func kill() async {
        Foundation.kill(self.process.processIdentifier, SIGKILL)
        await self.exited()
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit status.
    @discardableResult
    func terminate() async -> Int32 {
        if self.process.isRunning {
            Foundation.kill(self.process.processIdentifier, SIGTERM)
        }
        await self.exited()
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
