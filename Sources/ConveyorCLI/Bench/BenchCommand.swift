import ArgumentParser
import Conveyor
import ConveyorLocalPostgres
import ConveyorPostgres
import Foundation
import Logging
import PostgresNIO

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Measure the DESIGN.md workloads (W1 drain, W2 latency, W3 workflows, W4 scale, W5 sustained, W6 fairness, "
            + "W8 faults, W9 scheduled, idle cost).",
        discussion: """
            Starts a private PostgreSQL with the benchmark settings (fsync and synchronous_commit on, \
            shared_buffers=1GB, max_connections=200) unless --database-url or DATABASE_URL is given. Workers run \
            as separate `conveyor worker` processes. Reports the median of --runs runs with min and max. Build \
            with `swift run -c release conveyor bench`.
            """
    )

    @Option(name: .customLong("database-url"), help: "Benchmark this server instead of a private one.")
    var databaseURL: String?

    @Option(
        parsing: .upToNextOption,
        help: """
            Workloads to run: w1 w1d (W1 beside the dashboard) w1l (W1 under a queue concurrency limit) w1f (W1 in \
            a fair queue over --fair-tenants tenants, under the limit too) w1t (W1 over --fair-tenants tenants, \
            each limited to --tenant-limit) w2 w3 w4 w5 w5f (W5 in a fair queue) w6 \
            w8 w9 idle, or all (default: w1 w2 idle).
            """
    )
    var workloads: [String] = ["w1", "w2", "idle"]

    @Option(name: .customLong("workflows"), help: "Workflows W3 starts and drains.")
    var workflowRuns: Int = 2000

    @Option(help: "Jobs per drain (W1, W4).") var jobs: Int = 20_000
    @Option(help: "Execution slots per worker process.") var slots: Int = 10
    @Option(help: "W1l: the bench queue's concurrency limit across every worker.") var queueLimit: Int = 1000
    @Option(help: "Worker processes (W1, W4, W5).") var processes: Int = 1
    @Option(help: "Runs per workload; the median is reported.") var runs: Int = 3
    @Option(help: "W2 samples.") var samples: Int = 200
    @Option(help: "W2 interval between enqueues, in milliseconds.") var intervalMs: Int = 50
    @Option(help: "W4 finished jobs in the table before the drain.") var prefill: Int = 1_000_000
    @Flag(help: "W4 with 10,000,000 finished jobs.") var tenMillion = false
    @Option(help: "W5 enqueue rate, jobs/s.") var rate: Int = 1000
    @Option(help: "W5 duration in seconds.") var duration: Int = 60
    @Option(help: "W5 tenants the jobs are spread over.") var tenants: Int = 100
    @Option(help: "W1f and W1t tenants the jobs are spread over.") var fairTenants: Int = 10
    @Option(help: "W1t: each tenant's concurrency limit.") var tenantLimit: Int = 1000
    @Option(help: "W6 backlog per unit of weight (tenants of weight 1, 2 and 3).") var fairJobs: Int = 20_000
    @Option(help: "Idle measurement window in seconds.") var idleSeconds: Int = 20
    @Option(help: "W8 immediate restarts of the private server during the drain.") var restarts: Int = 5
    @Option(help: "W8 jobs in the drain.") var faultJobs: Int = 100_000
    @Option(help: "W9 jobs scheduled a day ahead in the queue.") var scheduled: Int = 1_000_000
    @Flag(help: "Also run the SQL ceiling (../shared/bench/ceiling/run_ceiling.sh) on the same server.")
    var ceiling = false
    @Option(help: "The ceiling script.") var ceilingScript: String = "../shared/bench/ceiling/run_ceiling.sh"
    @Option(help: "Seconds per ceiling figure.") var ceilingSeconds: Int = 20
    @Flag(help: "Print one JSON document instead of the table.") var json = false

    func run() async throws {
        bootstrapLogging(level: .error)
        try await reportingErrors {
            try self.validateOptions()
            var notes: [String] = []
            #if DEBUG
            notes.append("NOT A RELEASE BUILD: figures are not comparable; use `swift run -c release conveyor bench`")
            #endif
            var logger = Logger(label: "conveyor.bench")
            logger.logLevel = .error
            let url = self.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"]
            var cluster: LocalPostgres?
            if url == nil {
                self.status("starting a private PostgreSQL with the benchmark settings …")
                cluster = try await LocalPostgres.startEphemeral(
                    settings: .init(durable: true, sharedBuffers: "1GB", maxConnections: 200),
                    logger: logger
                )
                cluster?.stopAtExit()
            }
            guard let serverURL = url ?? cluster?.url else { return }
            defer { cluster?.stopImmediately() }
            let report = try await self.measure(url: serverURL, cluster: cluster, logger: logger, notes: notes)
            if self.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                report.printTable()
            }
        }
    }

    private func validateOptions() throws {
        let known = Set(Self.allWorkloads + ["all"])
        for workload in self.workloads where !known.contains(workload) {
            throw ConveyorError(
                .invalidOption,
                "unknown workload \(workload); use \(Self.allWorkloads.joined(separator: " ")) or all"
            )
        }
        guard self.runs >= 1, self.jobs >= 1, self.slots >= 1, self.processes >= 1, self.samples >= 1,
            self.rate >= 1, self.duration >= 1, self.tenants >= 1, self.restarts >= 1, self.faultJobs >= 1,
            self.scheduled >= 1, self.fairTenants >= 1, self.fairJobs >= 5
        else {
            throw ConveyorError(.invalidOption, "counts, rates and durations must be positive")
        }
    }

    static let allWorkloads = [
        "w1", "w1d", "w1l", "w1f", "w1t", "w2", "w3", "w4", "w5", "w5f", "w6", "w8", "w9", "idle",
    ]

    private func status(_ line: String) {
        if !self.json {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    private func measure(
        url: String,
        cluster: LocalPostgres?,
        logger: Logger,
        notes: [String]
    ) async throws
        -> BenchReport
    {
        let postgres = PostgresClient(
            configuration: try PostgresClient.Configuration(url: url),
            backgroundLogger: logger
        )
        return try await withThrowingTaskGroup(of: BenchReport?.self) { group in
            group.addTask {
                await postgres.run()
                return nil
            }
            defer { group.cancelAll() }
            let environment = BenchEnvironment(url: url, postgres: postgres, logger: logger, slots: self.slots)
            try await environment.dropBenchSchemas()
            let workloads = BenchWorkloads(environment: environment, jobs: self.jobs, processes: self.processes)
            let selected = Set(
                self.workloads.contains("all") ? Self.allWorkloads : self.workloads
            )
            var report = BenchReport(
                machine: BenchReport.Machine.current(),
                settings: [
                    "jobs": "\(self.jobs)", "slots": "\(self.slots)", "processes": "\(self.processes)",
                    "runs": "\(self.runs)", "server": cluster == nil ? "DATABASE_URL" : "private (bench settings)",
                ],
                notes: notes
            )
            var runs: [[Measurement]] = []
            var prefilled: BenchWorkloads.PrefilledSchema?
            for run in 1...self.runs {
                var figures: [Measurement] = []
                // W1, W1d, W1l and W1f take turns going first, and each starts without the others' tables: a later
                // drain otherwise shares the machine with autovacuum working through an earlier one's rows.
                let drains = ["w1", "w1d", "w1l", "w1f", "w1t"].filter { selected.contains($0) }
                for drain in run % 2 == 1 ? drains : drains.reversed() {
                    let what =
                        switch drain {
                        case "w1d": "W1 drain beside the dashboard refreshed every second"
                        case "w1l": "W1 drain under a concurrency limit of \(self.queueLimit)"
                        case "w1f": "W1 drain, fair over \(self.fairTenants) tenants, limit \(self.queueLimit)"
                        case "w1t": "W1 drain over \(self.fairTenants) tenants limited to \(self.tenantLimit) each"
                        default: "W1 drain of \(self.jobs) jobs"
                        }
                    self.status("run \(run)/\(self.runs): \(what) …")
                    figures += try await workloads.drain(
                        dashboard: drain == "w1d",
                        concurrencyLimit: drain == "w1l" || drain == "w1f" ? self.queueLimit : nil,
                        fairTenants: drain == "w1f" ? self.fairTenants : nil,
                        tenantLimit: drain == "w1t" ? self.tenantLimit : nil,
                        limitedTenants: self.fairTenants
                    )
                    if drains.count > 1 { try await environment.dropBenchSchemas(except: prefilled?.schema) }
                }
                if selected.contains("w3") {
                    self.status("run \(run)/\(self.runs): W3 drain of \(self.workflowRuns) workflows …")
                    figures += try await workloads.workflows(runs: self.workflowRuns)
                }
                if selected.contains("w2") {
                    self.status("run \(run)/\(self.runs): W2 latency, \(self.samples) samples …")
                    figures += try await workloads.latency(
                        samples: self.samples,
                        interval: .milliseconds(self.intervalMs)
                    )
                }
                if selected.contains("w4") {
                    let table: BenchWorkloads.PrefilledSchema
                    if let prefilled {
                        table = prefilled
                    } else {
                        let rows = self.tenMillion ? 10_000_000 : self.prefill
                        self.status("filling W4's table with \(rows) finished jobs …")
                        table = try await workloads.prefilledSchema(rows: rows)
                        prefilled = table
                    }
                    self.status("run \(run)/\(self.runs): W4 drain with \(table.rows) finished jobs in the table …")
                    figures += try await workloads.drain(in: table)
                }
                for fair in [false, true] where selected.contains(fair ? "w5f" : "w5") {
                    let what = fair ? "W5 in a fair queue" : "W5"
                    self.status("run \(run)/\(self.runs): \(what) \(self.rate) jobs/s for \(self.duration) s …")
                    figures += try await workloads.sustained(
                        rate: self.rate,
                        duration: .seconds(self.duration),
                        tenants: self.tenants,
                        fair: fair
                    )
                }
                if selected.contains("w6") {
                    self.status(
                        "run \(run)/\(self.runs): W6 fairness, \(self.fairJobs * 6) jobs over weights 1, 2, 3 …"
                    )
                    figures += try await workloads.fairness(perWeight: self.fairJobs)
                }
                if selected.contains("idle") {
                    self.status("run \(run)/\(self.runs): idle worker for \(self.idleSeconds) s …")
                    figures += try await workloads.idle(seconds: self.idleSeconds)
                }
                if selected.contains("w9") {
                    self.status("run \(run)/\(self.runs): W9, W2 with \(self.scheduled) jobs scheduled ahead …")
                    figures += try await workloads.latency(
                        samples: self.samples,
                        interval: .milliseconds(self.intervalMs),
                        scheduledAhead: self.scheduled
                    )
                    self.status("run \(run)/\(self.runs): W9 idle worker beside \(self.scheduled) scheduled jobs …")
                    figures += try await workloads.idle(seconds: self.idleSeconds, scheduledAhead: self.scheduled)
                }
                if selected.contains("w8") {
                    if let cluster {
                        self.status(
                            "run \(run)/\(self.runs): W8 drain of \(self.faultJobs) with \(self.restarts) restarts …"
                        )
                        let faults = BenchWorkloads(
                            environment: environment,
                            jobs: self.faultJobs,
                            processes: self.processes
                        )
                        figures += try await faults.faults(cluster: cluster, restarts: self.restarts)
                    } else if run == 1 {
                        report.notes.append("W8 needs the private server (it restarts it); not run on DATABASE_URL")
                    }
                }
                try await environment.dropBenchSchemas(except: prefilled?.schema)
                runs.append(figures)
            }
            try await environment.dropBenchSchemas()
            report.summarize(runs)
            if self.ceiling {
                self.status("SQL ceiling (\(self.ceilingSeconds) s per figure) …")
                do {
                    let figures = try await BenchCeiling.run(
                        script: self.ceilingScript,
                        url: url,
                        seconds: self.ceilingSeconds
                    )
                    report.applyCeiling(figures)
                } catch {
                    // The workload figures are still worth printing.
                    report.notes.append("the SQL ceiling could not be measured: \(error)")
                }
            }
            report.machine.loadAverageAfter = BenchReport.Machine.loadAverage()
            return report
        }
    }
}
