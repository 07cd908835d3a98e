import ArgumentParser
import Conveyor
import ConveyorCore
import ConveyorHTTP
import ConveyorPostgres
import Foundation
import Logging

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations, or print their SQL."
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print the SQL instead of applying it (for teams that run their own migration tool).")
    var print = false

    func run() async throws {
        try await reportingErrors {
            if self.print {
                Swift.print(try PostgresJobStore.migrationScript(schema: self.database.schema), terminator: "")
                return
            }
            let applied = try await self.database.withClient { client in try await client.migrate() }
            if applied.isEmpty {
                Swift.print("schema \(self.database.schema) is up to date")
            } else {
                Swift.print("applied migrations \(applied.map(String.init).joined(separator: ", "))")
            }
        }
    }
}

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue a job by kind with JSON arguments.",
        discussion: "Example: conveyor enqueue demo.work --args '{\"milliseconds\": 50}'"
    )

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The job kind, e.g. demo.work.") var kind: String
    @Option(help: "The arguments as a JSON object.") var args: String = "{}"
    @Option(help: "The queue.") var queue: String?
    @Option(help: "0 runs first, 9 last.") var priority: Int?
    @Option(help: "Seconds to wait before the job may run.") var delay: Double?
    @Option(help: "The attempt budget.") var maxAttempts: Int?
    @Option(help: "A unique key: a second enqueue with it returns the first job.") var uniqueKey: String?
    @Option(help: "The tenant.") var namespace: String?
    @Option(name: .customLong("tag"), help: "A tag (repeatable).") var tags: [String] = []
    @Option(help: "How many copies to enqueue in one batch.") var count: Int = 1

    func run() async throws {
        try await reportingErrors {
            guard (1...1_000_000).contains(self.count) else {
                throw ConveyorError(.invalidOption, "--count must be between 1 and 1000000")
            }
            let options = JobOptions(
                queue: self.queue,
                priority: self.priority,
                delay: try self.delay.map { try duration(seconds: $0, option: "delay") },
                maxAttempts: self.maxAttempts,
                tags: self.tags.isEmpty ? nil : self.tags,
                namespace: self.namespace,
                uniqueKey: self.uniqueKey
            )
            let requests = (0..<self.count).map { _ in
                JobRequest(kind: self.kind, argumentsJSON: self.args, options: options)
            }
            let jobs = try await self.database.withClient { client in try await client.jobs.enqueue(requests) }
            if jobs.count == 1, let job = jobs.first {
                print(job.isDuplicate ? "job \(job.id) already exists (unique key)" : "enqueued job \(job.id)")
            } else {
                print("enqueued \(jobs.filter { !$0.isDuplicate }.count) jobs")
            }
        }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List and inspect jobs.",
        subcommands: [List.self, Show.self, Explain.self, Timeline.self]
    )

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say why a job is in its state and what happens next (as GET /jobs/{id}/explain)."
        )

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let explanation = try await self.database.withClient { client in
                    try await client.jobs.explain(JobID(self.id))
                }
                if self.json {
                    print(AdminJSON.explanation(explanation))
                    return
                }
                print("job \(self.id) is \(explanation.state.rawValue): \(explanation.sentence)")
                if let action = explanation.suggestedAction { print("suggested action: \(action)") }
                print("reason: \(explanation.reason.rawValue)")
                for (key, value) in explanation.facts.sorted(by: { $0.key < $1.key }) {
                    print("  \(key): \(value)")
                }
            }
        }
    }

    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every attempt, state change and operator action of a job, in order (as GET /jobs/{id}/timeline)."
        )

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let timeline = try await self.database.withClient { client in
                    try await client.jobs.timeline(JobID(self.id))
                }
                if self.json {
                    print(AdminJSON.timeline(timeline))
                    return
                }
                for entry in timeline.entries {
                    var line = ExplainTime.iso(entry.at).padding(26) + " " + entry.summary
                    if let error = entry.error { line += ": " + String(error.prefix(120)) }
                    print(line)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var filter: FilterOptions

        func run() async throws {
            try await reportingErrors {
                let page = try await self.database.withClient { client in
                    try await client.jobs.list(try self.filter.makeFilter())
                }
                JobPrinter.printTable(page)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job with its attempt history.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job id.") var id: Int64

        func run() async throws {
            try await reportingErrors {
                let id = JobID(self.id)
                let job = try await self.database.withClient { client in try await client.jobs.get(id) }
                guard let job else { throw ConveyorError(.jobNotFound, "no job has id \(id)") }
                JobPrinter.printDetail(job)
            }
        }
    }
}

struct FilterOptions: ParsableArguments {
    @Option(name: .customLong("state"), help: "Only jobs in this state (repeatable).") var states: [String] = []
    @Option(help: "Only jobs of this queue.") var queue: String?
    @Option(help: "Only jobs of this kind.") var kind: String?
    @Option(help: "Only jobs of this tenant.") var namespace: String?
    @Option(help: "Only jobs with this tag.") var tag: String?
    @Option(help: "Page size.") var limit: Int = 50
    @Option(help: "The cursor printed under the previous page.") var cursor: String?

    func makeFilter(states fixed: [JobState]? = nil) throws -> JobFilter {
        let states =
            try fixed
            ?? self.states.map { name in
                guard let state = JobState(rawValue: name) else {
                    let valid = JobState.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ConveyorError(.invalidFilter, "unknown state \(name); use one of \(valid)")
                }
                return state
            }
        return JobFilter(
            states: states,
            queue: self.queue,
            kind: self.kind,
            namespace: self.namespace,
            tag: self.tag,
            limit: self.limit,
            cursor: self.cursor
        )
    }
}

struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List the dead-letter queue (discarded jobs) with their reasons."
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var filter: FilterOptions

    func run() async throws {
        try await reportingErrors {
            let page = try await self.database.withClient { client in
                try await client.jobs.list(try self.filter.makeFilter(states: [.discarded]))
            }
            JobPrinter.printTable(page)
        }
    }
}

struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Move a dead-lettered or cancelled job back to available, with one more attempt."
    )

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job id.") var id: Int64

    func run() async throws {
        try await reportingErrors {
            let id = JobID(self.id)
            let job = try await self.database.withClient { client in try await client.jobs.retry(id, by: Performer.cli)
            }
            print("job \(job.id) is \(job.state.rawValue) (attempt \(job.attempt) of \(job.maxAttempts))")
        }
    }
}

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Enqueue a copy of a finished job that points back at it."
    )

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job id.") var id: Int64

    func run() async throws {
        try await reportingErrors {
            let id = JobID(self.id)
            let replay = try await self.database.withClient { client in
                try await client.jobs.replay(id, by: Performer.cli)
            }
            print("enqueued job \(replay.id) replaying job \(id)")
        }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job; a running job is asked to stop at its worker's next heartbeat."
    )

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job id.") var id: Int64

    func run() async throws {
        try await reportingErrors {
            let id = JobID(self.id)
            let job = try await self.database.withClient { client in try await client.jobs.cancel(id, by: Performer.cli)
            }
            switch job.state {
            case .cancelled: print("job \(id) cancelled")
            case .running: print("job \(id) is running; its worker was asked to stop it")
            default: print("job \(id) already finished as \(job.state.rawValue)")
            }
        }
    }
}

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract: "List, pause and resume queues, limit how many of their jobs run at once, make them fair.",
        subcommands: [List.self, Pause.self, Resume.self, Limit.self, Fair.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queues with their waiting, running and dead-lettered jobs (finished jobs are not counted)."
        )
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let queues = try await self.database.withClient { client in try await client.queues.list() }
                if self.json {
                    print(AdminJSON.queues(queues))
                    return
                }
                let states: [JobState] = [.available, .scheduled, .retryable, .running, .discarded]
                print(
                    "QUEUE".padding(20) + " PAUSED "
                        + states.map { $0.rawValue.uppercased().padding(10) }.joined(separator: " ")
                )
                for queue in queues {
                    let counts = states.map { state in
                        (String(queue.counts[state] ?? 0) + (queue.cappedStates.contains(state) ? "+" : "")).padding(10)
                    }
                    print(
                        queue.name.padding(20) + (queue.isPaused ? " yes    " : " no     ")
                            + counts.joined(separator: " ")
                    )
                }
                for queue in queues where queue.isPaused {
                    let since = queue.pausedAt.map { " since \(ExplainTime.iso($0))" } ?? ""
                    print("\(queue.name) is paused\(since)\(queue.pausedBy.map { " by \($0)" } ?? "")")
                }
                for queue in queues {
                    guard let limit = queue.maxRunning else { continue }
                    print("\(queue.name) runs at most \(limit) job(s) at once")
                }
                for queue in queues where queue.isFair {
                    print("\(queue.name) shares its fetches among tenants by weight")
                }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop every worker from fetching from a queue.")
        @OptionGroup var database: DatabaseOptions
        @Argument var queue: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.queues.pause(self.queue, by: Performer.cli)
                }
                print("queue \(self.queue) paused")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let workers fetch from a queue again.")
        @OptionGroup var database: DatabaseOptions
        @Argument var queue: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.queues.resume(self.queue, by: Performer.cli)
                }
                print("queue \(self.queue) resumed")
            }
        }
    }

    struct Limit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let at most N jobs of a queue run at once across every worker, or remove the limit."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument var queue: String
        @Option(help: "The most jobs leased at once (1-10000).") var maxRunning: Int?
        @Flag(help: "Remove the limit.") var none = false

        func run() async throws {
            try await reportingErrors {
                guard (self.maxRunning == nil) == self.none else {
                    throw ConveyorError(.invalidOption, "give either --max-running N or --none")
                }
                try await self.database.withClient { client in
                    try await client.queues.setConcurrencyLimit(
                        self.queue,
                        maxRunning: self.maxRunning,
                        by: Performer.cli
                    )
                }
                print(
                    self.maxRunning.map { "queue \(self.queue) runs at most \($0) at once" }
                        ?? "queue \(self.queue) has no limit"
                )
            }
        }
    }

    struct Fair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Share a queue's fetches among tenants by weight (--on), or serve it first-come (--off)."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument var queue: String
        @Flag(help: "Make the queue fair.") var on = false
        @Flag(help: "Serve the queue first-come (priority, run time, id).") var off = false

        func run() async throws {
            try await reportingErrors {
                guard self.on != self.off else {
                    throw ConveyorError(.invalidOption, "give either --on or --off")
                }
                try await self.database.withClient { client in
                    try await client.queues.setFairness(self.queue, self.on, by: Performer.cli)
                }
                print(
                    self.on
                        ? "queue \(self.queue) shares its fetches among tenants by weight"
                        : "queue \(self.queue) is served first-come"
                )
            }
        }
    }
}

enum JobPrinter {
    static func printTable(_ page: JobPage) {
        print(
            "ID".padding(10) + " " + "STATE".padding(10) + " " + "QUEUE".padding(12) + " " + "KIND".padding(20) + " "
                + "ATTEMPT".padding(8) + " " + "REASON / LAST ERROR"
        )
        for job in page.jobs {
            let reason = job.deadReason?.rawValue ?? job.lastError ?? ""
            print(
                String(job.id.rawValue).padding(10) + " " + job.state.rawValue.padding(10) + " "
                    + job.queue.padding(12) + " " + job.kind.padding(20) + " "
                    + "\(job.attempt)/\(job.maxAttempts)".padding(8) + " " + String(reason.prefix(60))
            )
        }
        if let next = page.nextCursor {
            print("more: --cursor \(next)")
        }
    }

    static func printDetail(_ job: JobRecord) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var lines = [
            "id:           \(job.id)",
            "kind:         \(job.kind)",
            "queue:        \(job.queue)",
            "namespace:    \(job.namespace)",
            "state:        \(job.state.rawValue)" + (job.deadReason.map { " (\($0.rawValue))" } ?? ""),
            "priority:     \(job.priority)",
            "attempt:      \(job.attempt) of \(job.maxAttempts)",
            "args:         \(job.argumentsJSON)",
            "created at:   \(formatter.string(from: job.createdAt))",
            "run at:       \(formatter.string(from: job.runAt))",
        ]
        if let finished = job.finishedAt { lines.append("finished at:  \(formatter.string(from: finished))") }
        if let owner = job.leaseOwner { lines.append("leased by:    \(owner)") }
        if let key = job.uniqueKey { lines.append("unique key:   \(key)") }
        if !job.tags.isEmpty { lines.append("tags:         \(job.tags.joined(separator: ", "))") }
        if let original = job.replayOf { lines.append("replay of:    \(original)") }
        if let error = job.lastError { lines.append("last error:   \(error)") }
        lines.append("attempts:")
        if job.attempts.isEmpty { lines.append("  (none finished)") }
        for attempt in job.attempts {
            let milliseconds = Double(attempt.durationMicroseconds) / 1000
            var line =
                "  #\(attempt.attempt) \(attempt.outcome.rawValue) on \(attempt.worker) at "
                + "\(formatter.string(from: attempt.startedAt)), \(String(format: "%.1f", milliseconds)) ms"
            if let code = attempt.errorCode { line += " [\(code.rawValue)]" }
            if let error = attempt.error { line += " \(error)" }
            lines.append(line)
        }
        print(lines.joined(separator: "\n"))
    }
}

extension String {
    func padding(_ width: Int) -> String {
        self.count >= width ? self : self + String(repeating: " ", count: width - self.count)
    }
}
