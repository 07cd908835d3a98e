import Conveyor
import ConveyorPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// Cron schedules against a real schema: definitions, catch-up policies, pause, one enqueue per tick under
/// concurrent schedulers and after a scheduler died mid-pass, and a worker firing its configured schedule.
@Suite(.database) struct ScheduleTests {
    final class Counter: Sendable {
        private let count = Mutex(0)
        func increment() { self.count.withLock { $0 += 1 } }
        var value: Int { self.count.withLock { $0 } }
    }

    struct Tick: JobArguments {
        static let kind = "tick"
        var label: String
    }

    /// Moves `name`'s next tick to `at`, as if no scheduler had run since then.
    static func rewind(_ db: TestDatabase, _ name: String, to at: String) async throws {
        var binds = PostgresBindings()
        binds.append(name)
        binds.append(at)
        try await db.execute("UPDATE {schema}.cron_schedules SET next_tick_at = $2::timestamptz WHERE name = $1", binds)
    }

    static func jobs(_ db: TestDatabase, of name: String) async throws -> Int {
        var binds = PostgresBindings()
        binds.append("cron:\(name):%")
        return try await db.scalar("SELECT count(*) FROM {schema}.jobs WHERE unique_key LIKE $1", binds)
    }

    @Test("define stores the job and the first tick; redefining keeps the tick unless the expression changes")
    func define() async throws {
        let db = try TestDatabase.get()
        let schedule = try CronSchedule(
            "nightly",
            cron: "0 3 * * *",
            timeZone: "Europe/Berlin",
            job: Tick(label: "n"),
            options: .init(queue: "reports", priority: 2, tags: ["cron"])
        )
        try await db.client.schedules.define(schedule)
        let record = try #require(try await db.client.schedules.get("nightly"))
        #expect(try Self.same(record.schedule, schedule) && !record.isPaused && record.lastTickAt == nil)
        let next = try #require(record.nextTickAt)
        #expect(next > Date() && next < Date().addingTimeInterval(86_400 + 60))
        // A worker restarting redefines it: the next tick stays where a scheduler left it.
        try await Self.rewind(db, "nightly", to: "2026-01-01T02:00:00Z")
        try await db.client.schedules.define(schedule)
        #expect(try await db.client.schedules.get("nightly")?.nextTickAt == Self.at("2026-01-01T02:00:00Z"))
        var changed = schedule
        changed.expression = try CronExpression("0 4 * * *")
        try await db.client.schedules.define(changed)
        let moved = try #require(try await db.client.schedules.get("nightly")?.nextTickAt)
        #expect(moved > Date())
        // Invalid options are refused before anything is written; the stored schedule is untouched.
        var bad = changed
        bad.options.queue = "no spaces allowed"
        await #expect(throws: ConveyorError.self) { try await db.client.schedules.define(bad) }
        #expect(try Self.same(try await db.client.schedules.get("nightly")?.schedule, changed))
        #expect(try await db.client.schedules.list().map(\.schedule.name) == ["nightly"])
        await #expect(throws: ConveyorError.self) { try await db.client.schedules.pause("missing") }
        #expect(try await db.client.schedules.delete("nightly", by: "ops"))
        #expect(try await db.client.schedules.list().isEmpty)
        // Recorded: the first definition and the change, not the redefinition that changed nothing; the deletion.
        let events = try await db.client.schedules.events("nightly")
        #expect(events.map(\.action) == [.defined, .defined, .deleted])
        #expect(events.map { $0.details["cron"] } == ["0 3 * * *", "0 4 * * *", nil])
        #expect(events.last?.performedBy == "ops")
    }

    static func at(_ text: String) -> Date { (try? Date(text, strategy: .iso8601)) ?? .distantPast }

    /// Whether a stored schedule is `expected`, its arguments compared as JSON (jsonb respaces the text).
    static func same(_ stored: CronSchedule?, _ expected: CronSchedule) throws -> Bool {
        guard var stored else { return false }
        let json = { (text: String) in try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary }
        guard try json(stored.argumentsJSON) == json(expected.argumentsJSON) else { return false }
        stored.argumentsJSON = expected.argumentsJSON
        return stored == expected
    }

    @Test("after an outage, none skips the missed ticks, latest enqueues the last one and all enqueues each")
    func catchUpPolicies() async throws {
        let db = try TestDatabase.get()
        for policy in CronSchedule.CatchUp.allCases {
            let schedule = try CronSchedule(
                "yearly-\(policy.rawValue)",
                cron: "0 0 1 1 *",
                job: Tick(label: policy.rawValue),
                catchUp: policy
            )
            try await db.client.schedules.define(schedule)
            // No scheduler ran since 1 January 2020.
            try await Self.rewind(db, schedule.name, to: "2020-01-01T00:00:00Z")
        }
        let fired = try await db.client.schedules.fireDue()
        #expect(Set(fired.map(\.name)) == ["yearly-none", "yearly-latest", "yearly-all"])
        let thisYear = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(try await Self.jobs(db, of: "yearly-none") == 0)
        #expect(try await Self.jobs(db, of: "yearly-latest") == 1)
        #expect(try await Self.jobs(db, of: "yearly-all") == thisYear - 2020 + 1)
        let latest = try #require(try await db.client.schedules.get("yearly-latest"))
        #expect(latest.lastTickAt == Self.at("\(thisYear)-01-01T00:00:00Z"))
        let lastJob = try #require(latest.lastJobID)
        let job = try #require(try await db.client.jobs.get(lastJob))
        #expect(
            job.kind == "tick" && job.uniqueKey == "cron:yearly-latest:\(Int(latest.lastTickAt!.timeIntervalSince1970))"
        )
        for policy in CronSchedule.CatchUp.allCases {
            #expect(
                try await db.client.schedules.get("yearly-\(policy.rawValue)")?.nextTickAt
                    == Self.at("\(thisYear + 1)-01-01T00:00:00Z")
            )
        }
        // Nothing is due any more.
        #expect(try await db.client.schedules.fireDue().isEmpty)
    }

    @Test("a paused schedule enqueues nothing; resumed, it skips the ticks of the pause")
    func pause() async throws {
        let db = try TestDatabase.get()
        try await db.client.schedules.define(try CronSchedule("minutely", cron: "* * * * *", job: Tick(label: "m")))
        try await db.client.schedules.pause("minutely", by: "ops")
        try await Self.rewind(db, "minutely", to: "2026-01-01T00:00:00Z")
        #expect(try await db.client.schedules.fireDue().isEmpty)
        let paused = try #require(try await db.client.schedules.get("minutely"))
        #expect(paused.isPaused && paused.pausedBy == "ops")
        try await db.client.schedules.resume("minutely")
        let resumed = try #require(try await db.client.schedules.get("minutely"))
        #expect(!resumed.isPaused && (resumed.nextTickAt ?? .distantPast) > Date().addingTimeInterval(-1))
        #expect(try await Self.jobs(db, of: "minutely") == 0)
        let events = try await db.client.schedules.events("minutely")
        #expect(events.map(\.action) == [.defined, .paused, .resumed])
        #expect(events[1].performedBy == "ops" && events[1].subject == .schedule("minutely"))
    }

    @Test("four schedulers at once enqueue every tick once: none skipped, none fired twice")
    func concurrentSchedulers() async throws {
        let db = try TestDatabase.get()
        try await db.client.schedules.define(
            try CronSchedule("every-second", cron: "* * * * * *", job: Tick(label: "s"), catchUp: .all)
        )
        try await Self.rewind(db, "every-second", to: "2026-12-01T00:00:00Z")
        // Each scheduler records what its passes enqueued; a tick fired by two would come back as a duplicate.
        let results = try await withThrowingTaskGroup(of: [EnqueuedJob].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var enqueued: [EnqueuedJob] = []
                    // Until the backlog of a day of ticks is worked down to five passes' worth.
                    for _ in 0..<5 {
                        enqueued += try await db.client.schedules.fireDue().flatMap(\.jobs)
                    }
                    return enqueued
                }
            }
            return try await group.reduce(into: [EnqueuedJob]()) { $0 += $1 }
        }
        #expect(!results.isEmpty)
        #expect(results.allSatisfy { !$0.isDuplicate })
        #expect(Set(results.map(\.id)).count == results.count)
        // The ticks stored are exactly the seconds from the first on, without a gap.
        var ticks: [(Int, Int, Int)] = []
        for try await row in try await db.execute(
            """
            SELECT count(*)::int, count(DISTINCT run_at)::int,
                   (extract(epoch FROM max(run_at) - min(run_at)))::int + 1
            FROM {schema}.jobs WHERE kind = 'tick'
            """
        ).decode((Int, Int, Int).self) {
            ticks.append(row)
        }
        let (count, distinct, span) = try #require(ticks.first)
        #expect(count == results.count && distinct == count && span == count)
        #expect(
            try await db.scalar("SELECT min(extract(epoch FROM run_at))::bigint FROM {schema}.jobs") == 1_796_083_200
        )
    }

    @Test("a scheduler that dies holding a due schedule fires nothing; the next one fires the tick once")
    func schedulerDiesMidPass() async throws {
        let db = try TestDatabase.get()
        try await db.client.schedules.define(try CronSchedule("hourly", cron: "0 * * * *", job: Tick(label: "h")))
        try await Self.rewind(db, "hourly", to: "2026-12-01T10:00:00Z")
        // A session locks the due row and inserts the tick's job, as a scheduler does mid-pass, and is killed.
        try await db.withNewSessions { store in
            try await store.client.withConnection { connection in
                try await connection.query("BEGIN", logger: db.logger)
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT name FROM \"\(db.schema)\".cron_schedules WHERE name = 'hourly' FOR UPDATE"
                    ),
                    logger: db.logger
                )
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            INSERT INTO \"\(db.schema)\".jobs (kind, queue, unique_key)
                            VALUES ('tick', 'default', 'cron:hourly:1796119200')
                            """
                    ),
                    logger: db.logger
                )
                // While it holds the row, other schedulers pass it by instead of waiting.
                #expect(try await db.client.schedules.fireDue().isEmpty)
                var pid: Int32 = 0
                for try await value in try await connection.query(
                    PostgresQuery(unsafeSQL: "SELECT pg_backend_pid()"),
                    logger: db.logger
                ).decode(Int32.self) {
                    pid = value
                }
                var binds = PostgresBindings()
                binds.append(pid)
                _ = try await db.scalar("SELECT pg_terminate_backend($1)::int", binds)
            }
        }
        #expect(try await Self.jobs(db, of: "hourly") == 0)
        let fired = try await db.client.schedules.fireDue()
        #expect(fired.map(\.name) == ["hourly"] && fired.first?.jobs.count == 1)
        #expect(try await Self.jobs(db, of: "hourly") == 1)
        #expect(try await db.client.schedules.fireDue().isEmpty)
    }

    @Test("conveyor schedules defines, lists, pauses, resumes and deletes, and refuses bad input with its code")
    func commands() async throws {
        let db = try TestDatabase.get()
        let cli = WorkflowCommandTests.conveyor
        let defined = try await cli(
            db,
            [
                "schedules", "define", "cli-nightly", "--cron", "30 2 * * MON-FRI", "--kind", "tick", "--args",
                #"{"label": "cli"}"#, "--time-zone", "America/New_York", "--catch-up", "none",
            ]
        )
        #expect(defined.status == 0, "\(defined.errors)")
        #expect(defined.output.hasPrefix("defined cli-nightly; next tick 20"), "\(defined.output)")
        let stored = try #require(try await db.client.schedules.get("cli-nightly"))
        #expect(stored.schedule.catchUp == .none && stored.schedule.timeZone.identifier == "America/New_York")
        let listed = try await cli(db, ["schedules"])
        #expect(listed.output.contains("cli-nightly"), "\(listed.output)")
        #expect(listed.output.contains("30 2 * * MON-FRI") && listed.output.contains("America/New_York"))
        #expect(try await cli(db, ["schedules", "pause", "cli-nightly"]).status == 0)
        #expect(try await db.client.schedules.get("cli-nightly")?.pausedBy?.hasPrefix("cli:") == true)
        #expect(try await cli(db, ["schedules", "list"]).output.contains(" paused"))
        #expect(try await cli(db, ["schedules", "resume", "cli-nightly"]).status == 0)
        #expect(try await db.client.schedules.get("cli-nightly")?.isPaused == false)

        let bad = try await cli(db, ["schedules", "define", "x", "--cron", "61 * * * *", "--kind", "tick"])
        #expect(bad.status == 1 && bad.errors.contains("INVALID_CRON"), "\(bad.errors)")
        let zone = try await cli(
            db,
            ["schedules", "define", "x", "--cron", "0 3 * * *", "--kind", "tick", "--time-zone", "Nowhere/Land"]
        )
        #expect(zone.status == 1 && zone.errors.contains("INVALID_TIME_ZONE"), "\(zone.errors)")
        let never = try await cli(db, ["schedules", "define", "x", "--cron", "0 0 31 2 *", "--kind", "tick"])
        #expect(never.status == 1 && never.errors.contains("CRON_NEVER_FIRES"), "\(never.errors)")
        let missing = try await cli(db, ["schedules", "pause", "nope"])
        #expect(missing.status == 1 && missing.errors.contains("SCHEDULE_NOT_FOUND"))
        // Nothing the refusals touched was stored or changed.
        #expect(try await db.client.schedules.list().map(\.schedule.name) == ["cli-nightly"])
        #expect(try await cli(db, ["schedules", "delete", "cli-nightly"]).status == 0)
        #expect(try await db.client.schedules.list().isEmpty)
        #expect(try await cli(db, ["schedules", "delete", "cli-nightly"]).errors.contains("SCHEDULE_NOT_FOUND"))
    }

    @Test("a worker defines its configured schedule and runs each tick's job")
    func workerFiresItsSchedule() async throws {
        let db = try TestDatabase.get()
        let ran = Counter()
        var registry = JobRegistry()
        registry.register(Tick.self) { _, _ in ran.increment() }
        let schedule = try CronSchedule("often", cron: "* * * * * *", job: Tick(label: "w"), catchUp: .none)
        try await db.withWorker(
            registry,
            configure: {
                $0.schedules = [schedule]
                $0.scheduleInterval = .milliseconds(200)
            }
        ) { _ in
            try await db.waitUntil("three ticks ran") { ran.value >= 3 }
        }
        let record = try #require(try await db.client.schedules.get("often"))
        #expect(record.lastJobID != nil && record.lastTickAt != nil)
        #expect(try await Self.jobs(db, of: "often") >= 3)
    }
}
