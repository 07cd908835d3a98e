import ArgumentParser
import Conveyor
import ConveyorCore
import ConveyorHTTP
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import UnixSignals

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Start everything and run a bounded demo workload: completions, retries, dead letters and a workflow.",
        discussion: """
            Uses DATABASE_URL (or --database-url) when set, else starts a throwaway PostgreSQL and removes it at \
            the end. Exits 0 when every demo job has finished.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "How many jobs to enqueue.") var jobs: Int = 2000
    @Option(help: "Execution slots of the worker.") var slots: Int = 10
    @Option(help: "Log level.") var logLevel: Logger.Level = .warning
    @Flag(help: "Keep running after the workload, serving the dashboard with its data, until Ctrl-C.") var serve = false
    @Option(help: "The dashboard's port with --serve (0 picks a free one).") var port: Int = 8080

    func run() async throws {
        bootstrapLogging(level: self.logLevel)
        try await reportingErrors {
            guard (1...1_000_000).contains(self.jobs) else {
                throw ConveyorError(.invalidOption, "--jobs must be between 1 and 1000000")
            }
            let logger = Logger(label: "conveyor.demo")
            if let url = self.database.configuredURL() {
                try await self.run(url: url, logger: logger)
                return
            }
            print("No DATABASE_URL: starting a private PostgreSQL …")
            fflush(nil)
            let cluster = try await LocalPostgres.startEphemeral(logger: logger)
            cluster.stopAtExit()
            do {
                try await self.run(url: cluster.url, logger: logger)
            } catch {
                try? await cluster.stop()
                throw error
            }
            try await cluster.stop()
        }
    }

    private func run(url: String, logger: Logger) async throws {
        let postgres = PostgresClient(
            configuration: try PostgresClient.Configuration(url: url),
            backgroundLogger: logger
        )
        let store = try PostgresJobStore(client: postgres, schema: self.database.schema)
        let client = ConveyorClient(store: store, logger: logger)
        var registry = JobRegistry()
        DemoJobs.register(into: &registry, retryPolicy: .constant(.milliseconds(200)))
        var configuration = ConveyorWorker.Configuration()
        let queue = "demo-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        configuration.queues = [queue: .init(slots: self.slots)]
        let worker = ConveyorWorker(client: client, registry: registry, configuration: configuration, logger: logger)
        let dashboard = Mutex<String?>(nil)
        let driver = DemoDriver(client: client, queue: queue, jobs: self.jobs) {
            guard let url = dashboard.withLock({ $0 }) else { return }
            print("dashboard: \(url)\nserving until Ctrl-C")
            fflush(nil)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: postgres),
            .init(service: worker),
            .init(service: driver, successTerminationBehavior: self.serve ? .ignore : .gracefullyShutdownGroup),
        ]
        if self.serve {
            let configured = try ServeCommand.tokens(host: "127.0.0.1")
            let secret = configured.isEmpty ? APIToken.generateSecret() : nil
            let tokens = secret.map { [APIToken(name: "demo", secret: $0)] } ?? configured
            let application = try ServeCommand.application(
                client: client,
                tokens: tokens,
                host: "127.0.0.1",
                port: self.port,
                logger: logger
            ) { port in
                let fragment = secret.map { "#/?token=\($0)" } ?? "#/"
                dashboard.withLock { $0 = "http://127.0.0.1:\(port)/\(fragment)" }
            }
            services.append(.init(service: application))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        guard driver.finished else { throw ExitCode.failure }
    }
}

/// Enqueues the demo workload, shows progress until every job finished, then prints a summary.
final class DemoDriver: Service, Sendable {
    let client: ConveyorClient
    let queue: String
    let jobs: Int
    let onFinished: @Sendable () -> Void
    private let done = ManagedFlag()

    init(client: ConveyorClient, queue: String, jobs: Int, onFinished: @escaping @Sendable () -> Void = {}) {
        self.client = client
        self.queue = queue
        self.jobs = jobs
        self.onFinished = onFinished
    }

    var finished: Bool { self.done.value }

    func run() async throws {
        try await self.client.migrate()
        // A schedule for the dashboard's Schedules page: nightly, on a queue of its own, so it never joins the
        // workload counted below.
        try await self.client.schedules.define(
            try CronSchedule(
                "demo-nightly",
                cron: "0 3 * * *",
                job: DemoJobs.Work(),
                options: JobOptions(queue: "demo-cron")
            ),
            by: "demo"
        )
        var generator = SystemRandomNumberGenerator()
        let requests = (0..<self.jobs).map { index -> JobRequest in
            let roll = Int.random(in: 0..<100, using: &generator)
            var work = DemoJobs.Work(milliseconds: Int.random(in: 0...4, using: &generator))
            var options = JobOptions(queue: self.queue, maxAttempts: 3)
            switch roll {
            case 0..<80: break
            case 80..<90: work.failAttempts = 1
            case 90..<95: work.failAttempts = 2
            case 95..<98: work.alwaysFail = true
            default: work.nonRetryable = true
            }
            if index % 10 == 0 { options.priority = 1 }
            return JobRequest(work, options: options)
        }
        let clock = ContinuousClock()
        let enqueueStart = clock.now
        _ = try await self.client.jobs.enqueue(requests)
        let enqueueTime = clock.now - enqueueStart
        print("enqueued \(self.jobs) jobs on queue \(self.queue) in one batch (\(Self.format(enqueueTime)))")
        let start = clock.now
        var counts: [JobState: Int] = [:]
        while true {
            counts = try await self.counts()
            let finished = (counts[.completed] ?? 0) + (counts[.discarded] ?? 0) + (counts[.cancelled] ?? 0)
            let elapsed = (clock.now - start).inSeconds
            let line = String(
                format: "\r  completed %6d  retrying %4d  running %3d  waiting %6d  dead-lettered %4d  %7.0f jobs/s",
                counts[.completed] ?? 0,
                counts[.retryable] ?? 0,
                counts[.running] ?? 0,
                (counts[.available] ?? 0) + (counts[.scheduled] ?? 0),
                counts[.discarded] ?? 0,
                elapsed > 0 ? Double(finished) / elapsed : 0
            )
            print(line, terminator: "")
            fflush(nil)
            if finished >= self.jobs { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        let elapsed = (clock.now - start).inSeconds
        print("")
        let dead = try await self.client.jobs.list(JobFilter(states: [.discarded], queue: self.queue, limit: 1000))
        var reasons: [String: Int] = [:]
        for job in dead.jobs { reasons[job.deadReason?.rawValue ?? "?", default: 0] += 1 }
        let retried = try await self.retriedCount()
        print(
            """
            done in \(String(format: "%.2f", elapsed)) s: \(counts[.completed] ?? 0) completed, \
            \(counts[.discarded] ?? 0) dead-lettered, \(retried) retries; \
            \(String(format: "%.0f", Double(self.jobs) / max(elapsed, 0.001))) jobs/s end to end
            dead-letter reasons: \(reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            inspect one: conveyor jobs show \(dead.jobs.first?.id.description ?? "<id>") (with the same DATABASE_URL)
            """
        )
        try await self.runWorkflow()
        self.done.set()
        self.onFinished()
    }

    /// Starts a `demo.order` run, approves it once it waits for the signal, and prints it when it ended.
    private func runWorkflow() async throws {
        let id = WorkflowRunID("order-" + String(UInt32.random(in: 0...UInt32.max), radix: 36))
        try await self.client.workflows.start(
            DemoWorkflows.Order.self,
            input: 42,
            options: .init(id: id, queue: self.queue)
        )
        print(
            "workflow: started run \(id) (a step, a 300 ms durable sleep, a wait for signal approved, two parallel steps, a child)"
        )
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        var signalled = false
        while clock.now < deadline {
            guard let run = try await self.client.workflows.get(id) else { break }
            if run.status.isFinished {
                WorkflowPrinter.printDetail(run)
                guard run.status == .completed else {
                    throw ConveyorError(.databaseError, "the demo workflow ended \(run.status.rawValue)")
                }
                return
            }
            if !signalled, run.steps.contains(where: { $0.kind == .signal && $0.status == .waiting }) {
                try await self.client.workflows.signal(id, "approved", "the demo")
                print("workflow: run \(id) waits for approval; sent signal approved")
                signalled = true
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ConveyorError(.databaseTimeout, "the demo workflow did not end within a minute")
    }

    /// The demo queue's counts; completed is what is neither waiting, running nor dead-lettered (the demo's jobs
    /// are never cancelled), since queue counts do not read finished jobs.
    private func counts() async throws -> [JobState: Int] {
        let queues = try await self.client.queues.list()
        var counts = queues.first { $0.name == self.queue }?.counts ?? [:]
        counts[.completed] = self.jobs - counts.values.reduce(0, +)
        return counts
    }

    private func retriedCount() async throws -> Int {
        var retries = 0
        var filter = JobFilter(queue: self.queue, limit: 1000)
        while true {
            let page = try await self.client.jobs.list(filter)
            retries += page.jobs.reduce(0) { $0 + max(0, $1.attempts.count - 1) }
            guard let next = page.nextCursor else { break }
            filter.cursor = next
        }
        return retries
    }

    static func format(_ duration: Duration) -> String {
        String(format: "%.1f ms", duration.inSeconds * 1000)
    }
}

/// A set-once flag readable from any thread.
final class ManagedFlag: Sendable {
    private let storage = Mutex(false)
    var value: Bool { self.storage.withLock { $0 } }
    func set() { self.storage.withLock { $0 = true } }
}
