import ArgumentParser
import Conveyor
import Foundation

struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "Define, list, pause, resume and delete cron schedules.",
        subcommands: [List.self, Define.self, Pause.self, Resume.self, Delete.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every schedule with its expression, job, next and latest tick."
        )
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let schedules = try await self.database.withClient { client in try await client.schedules.list() }
                let header: [String] = [
                    "SCHEDULE".padding(24), "CRON".padding(18), "ZONE".padding(16), "KIND".padding(20),
                    "CATCH-UP", "NEXT TICK",
                ]
                print(header.joined(separator: " "))
                for record in schedules {
                    let schedule = record.schedule
                    let next: String =
                        record.isPaused ? "paused" : record.nextTickAt.map { ExplainTime.iso($0) } ?? "never"
                    let cells: [String] = [
                        schedule.name.padding(24), schedule.expression.source.padding(18),
                        schedule.timeZone.identifier.padding(16), schedule.kind.padding(20),
                        schedule.catchUp.rawValue.padding(8), next,
                    ]
                    print(cells.joined(separator: " "))
                }
                if schedules.isEmpty { print("(no schedule)") }
            }
        }
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a schedule that enqueues a job of KIND with JSON arguments on every tick."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The schedule's name.") var name: String
        @Option(help: "Five fields (minute hour day month weekday), or six with seconds first.") var cron: String
        @Option(help: "The job kind to enqueue.") var kind: String
        @Option(help: "The job's arguments as JSON.") var args = "{}"
        @Option(help: "An IANA time zone, such as Europe/Berlin.") var timeZone = "UTC"
        @Option(help: "The queue.") var queue = "default"
        @Option(help: "Missed ticks: none, latest or all.") var catchUp = "latest"

        func run() async throws {
            try await reportingErrors {
                guard let catchUp = CronSchedule.CatchUp(rawValue: self.catchUp) else {
                    throw ConveyorError(.invalidOption, "--catch-up takes none, latest or all")
                }
                let schedule = try CronSchedule(
                    name: self.name,
                    cron: self.cron,
                    timeZone: self.timeZone,
                    kind: self.kind,
                    argumentsJSON: self.args,
                    options: JobOptions(queue: self.queue),
                    catchUp: catchUp
                )
                let record = try await self.database.withClient { client in
                    try await client.schedules.define(schedule)
                    return try await client.schedules.get(self.name)
                }
                print("defined \(self.name); next tick \(record?.nextTickAt.map(ExplainTime.iso) ?? "never")")
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop enqueuing a schedule's ticks.")
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.schedules.pause(self.name, by: Performer.cli)
                }
                print("paused \(self.name)")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue a schedule's ticks again, from its next tick (the paused ones are skipped)."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.schedules.resume(self.name, by: Performer.cli)
                }
                print("resumed \(self.name)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a schedule; jobs it enqueued stay.")
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                let existed = try await self.database.withClient { client in
                    try await client.schedules.delete(self.name)
                }
                guard existed else { throw ConveyorError(.scheduleNotFound, "no schedule is named \(self.name)") }
                print("deleted \(self.name)")
            }
        }
    }
}
