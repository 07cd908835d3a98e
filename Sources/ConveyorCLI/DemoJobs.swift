import Conveyor
import ConveyorPostgres
import Foundation
import PostgresNIO

/// The job types that `conveyor worker` and `conveyor demo` run.
enum DemoJobs {
    /// Sleeps, then succeeds, fails or gives up as its arguments say.
    struct Work: JobArguments {
        static let kind = "demo.work"
        /// How long the handler sleeps.
        var milliseconds: Int = 0
        /// Attempts numbered up to this one fail (and are retried).
        var failAttempts: Int = 0
        /// Every attempt fails, so the job ends in the dead-letter queue.
        var alwaysFail: Bool = false
        /// Fail with a non-retryable error: dead-lettered at once.
        var nonRetryable: Bool = false

        init(milliseconds: Int = 0, failAttempts: Int = 0, alwaysFail: Bool = false, nonRetryable: Bool = false) {
            self.milliseconds = milliseconds
            self.failAttempts = failAttempts
            self.alwaysFail = alwaysFail
            self.nonRetryable = nonRetryable
        }

        /// Every field is optional in the JSON, so `{}` is a valid `demo.work` job.
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.milliseconds = try container.decodeIfPresent(Int.self, forKey: .milliseconds) ?? 0
            self.failAttempts = try container.decodeIfPresent(Int.self, forKey: .failAttempts) ?? 0
            self.alwaysFail = try container.decodeIfPresent(Bool.self, forKey: .alwaysFail) ?? false
            self.nonRetryable = try container.decodeIfPresent(Bool.self, forKey: .nonRetryable) ?? false
        }
    }

    /// Appends `job_id attempt start_ns end_ns pid` to a file, with monotonic clock times comparable across
    /// processes: the crash and exclusive-lease tests read it back.
    struct Record: JobArguments {
        static let kind = "demo.record"
        var file: String
        var milliseconds: Int = 0

        init(file: String, milliseconds: Int = 0) {
            self.file = file
            self.milliseconds = milliseconds
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.file = try container.decode(String.self, forKey: .file)
            self.milliseconds = try container.decodeIfPresent(Int.self, forKey: .milliseconds) ?? 0
        }
    }

    /// Exits the worker process at once, as a crash would; used to show that such jobs are reaped and retried.
    struct Crash: JobArguments {
        static let kind = "demo.crash"
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Refusal: NonRetryableError, CustomStringConvertible {
        var description: String { "refused: the demo marks this job as not worth retrying" }
    }

    static func register(
        into registry: inout JobRegistry,
        retryPolicy: RetryPolicy = .default,
        postgres: PostgresClient? = nil,
        schema: SchemaName? = nil
    ) {
        DemoWorkflows.register(into: &registry, postgres: postgres, schema: schema)
        registry.register(Work.self, retryPolicy: retryPolicy) { args, context in
            if args.milliseconds > 0 {
                try await Task.sleep(for: .milliseconds(args.milliseconds))
            }
            if args.nonRetryable { throw Refusal() }
            if args.alwaysFail || context.attempt <= args.failAttempts {
                throw Failure(description: "demo failure on attempt \(context.attempt)")
            }
        }
        registry.register(Record.self, retryPolicy: retryPolicy) { args, context in
            let start = monotonicNanoseconds()
            if args.milliseconds > 0 {
                try await Task.sleep(for: .milliseconds(args.milliseconds))
            }
            let end = monotonicNanoseconds()
            let line = "\(context.id) \(context.attempt) \(start) \(end) \(getpid())\n"
            try append(line, to: args.file)
        }
        registry.register(Crash.self, retryPolicy: retryPolicy) { _, _ in
            exit(70)
        }
    }

    /// The system's monotonic clock (CLOCK_MONOTONIC on Linux), the same in every process of the machine.
    static func monotonicNanoseconds() -> UInt64 {
        UInt64(ProcessInfo.processInfo.systemUptime * 1_000_000_000)
    }

    /// One `write` on an `O_APPEND` descriptor: lines from many processes never interleave.
    static func append(_ line: String, to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else { throw Failure(description: "cannot open \(path)") }
        defer { close(descriptor) }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw Failure(description: "short write to \(path)") }
    }
}
