import ArgumentParser
import Conveyor
import Foundation

struct WorkflowsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "Start, list, inspect, signal, cancel and fork workflow runs.",
        subcommands: [Start.self, List.self, Show.self, Signal.self, Cancel.self, Fork.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a run of a workflow by name with a JSON input.",
            discussion: "Example: conveyor workflows start demo.steps '{\"steps\": 3, \"milliseconds\": 10, "
                + "\"record\": false}' --id run-1"
        )

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The workflow's name.") var name: String
        @Argument(help: "The input as JSON.") var input: String = "null"
        @Option(help: "The run's id (default: generated). Starting an id that exists changes nothing.") var id: String?
        @Option(help: "The workflow version to run.") var version: Int = 1
        @Option(help: "The queue.") var queue: String = "default"
        @Option(help: "The tenant.") var namespace: String = "default"

        func run() async throws {
            try await reportingErrors {
                let options = WorkflowOptions(
                    id: self.id.map { WorkflowRunID($0) },
                    queue: self.queue,
                    namespace: self.namespace,
                    version: self.version
                )
                let started = try await self.database.withClient { client in
                    try await client.workflows.start(name: self.name, inputJSON: self.input, options: options)
                }
                print(started.isExisting ? "run \(started.id) already exists" : "started run \(started.id)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")

        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("status"), help: "Only runs in this status (repeatable).")
        var statuses: [String] = []
        @Option(help: "Only runs of this workflow.") var name: String?
        @Option(help: "Only runs of this tenant.") var namespace: String?
        @Option(help: "Only children of this run.") var parent: String?
        @Option(help: "Page size, 1-1000.") var limit: Int = 50
        @Option(help: "The cursor a previous page printed.") var cursor: String?

        func run() async throws {
            try await reportingErrors {
                let statuses = try self.statuses.map { text in
                    guard let status = WorkflowRunStatus(rawValue: text) else {
                        throw ConveyorError(
                            .invalidFilter,
                            "unknown status \(text); use "
                                + WorkflowRunStatus.allCases.map(\.rawValue).joined(separator: ", ")
                        )
                    }
                    return status
                }
                let filter = WorkflowRunFilter(
                    statuses: statuses,
                    name: self.name,
                    namespace: self.namespace,
                    parentID: self.parent.map { WorkflowRunID($0) },
                    limit: self.limit,
                    cursor: self.cursor
                )
                let page = try await self.database.withClient { client in try await client.workflows.list(filter) }
                let header = ["RUN".padding(24), "STATUS".padding(17), "WORKFLOW".padding(22), "VERSION".padding(8)]
                print((header + ["ERROR"]).joined(separator: " "))
                for run in page.runs {
                    let error = (run.errorCode.map { "\($0): " } ?? "") + (run.errorMessage ?? "")
                    let columns: [String] = [
                        run.id.rawValue.padding(24), Self.status(run).padding(17), run.name.padding(22),
                        String(run.version).padding(8), String(error.prefix(60)),
                    ]
                    print(columns.joined(separator: " "))
                }
                if let next = page.nextCursor { print("more: --cursor \(next)") }
            }
        }

        static func status(_ run: WorkflowRunRecord) -> String {
            run.waitsForVersion ? "waiting (version)" : run.status.rawValue
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one run with its steps.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The run's id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let id = WorkflowRunID(self.id)
                let run = try await self.database.withClient { client in try await client.workflows.get(id) }
                guard let run else { throw ConveyorError(.workflowNotFound, "no workflow run has id \(id)") }
                WorkflowPrinter.printDetail(run)
            }
        }
    }

    struct Signal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a signal with a JSON payload to a run.",
            discussion: "Example: conveyor workflows signal order-42 approved '\"ops\"'"
        )

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The run's id.") var id: String
        @Argument(help: "The signal's name.") var name: String
        @Argument(help: "The payload as JSON.") var payload: String = "null"

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.workflows.signal(
                        WorkflowRunID(self.id),
                        self.name,
                        payloadJSON: self.payload,
                        by: Performer.cli
                    )
                }
                print("sent \(self.name) to run \(self.id)")
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a run and its unfinished children.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The run's id.") var id: String

        func run() async throws {
            try await reportingErrors {
                let run = try await self.database.withClient { client in
                    try await client.workflows.cancel(WorkflowRunID(self.id), by: Performer.cli)
                }
                print(
                    run.status == .cancelled
                        ? "cancelled run \(run.id)"
                        : run.status.isFinished
                            ? "run \(run.id) had ended (\(run.status.rawValue))"
                            : "asked run \(run.id) to cancel; its worker stops it at the next heartbeat"
                )
            }
        }
    }

    struct Fork: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a new run that reuses a run's stored steps before the named one."
        )

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The run to fork.") var id: String
        @Option(help: "The first step the new run runs again.") var fromStep: String
        @Option(help: "The new run's id (default: generated).") var newID: String?

        func run() async throws {
            try await reportingErrors {
                let started = try await self.database.withClient { client in
                    try await client.workflows.fork(
                        WorkflowRunID(self.id),
                        fromStep: self.fromStep,
                        newID: self.newID.map { WorkflowRunID($0) },
                        by: Performer.cli
                    )
                }
                print("started run \(started.id), forked from \(self.id) at step \(self.fromStep)")
            }
        }
    }
}

enum WorkflowPrinter {
    static func printDetail(_ run: WorkflowRunRecord) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var lines = [
            "run:          \(run.id)",
            "workflow:     \(run.name) version \(run.version)",
            "status:       \(WorkflowsCommand.List.status(run))",
            "queue:        \(run.queue)",
            "namespace:    \(run.namespace)",
            "job:          \(run.jobID)",
            "input:        \(run.inputJSON)",
            "created at:   \(formatter.string(from: run.createdAt))",
        ]
        if let output = run.outputJSON { lines.append("output:       \(output)") }
        if let code = run.errorCode { lines.append("error:        \(code): \(run.errorMessage ?? "")") }
        if let parent = run.parentID { lines.append("parent:       \(parent)") }
        if let origin = run.forkedFrom {
            lines.append("forked from:  \(origin) at step \(run.forkedAtStep ?? "?")")
        }
        if let deadline = run.deadline { lines.append("deadline:     \(formatter.string(from: deadline))") }
        if let finished = run.finishedAt { lines.append("finished at:  \(formatter.string(from: finished))") }
        lines.append("steps:")
        if run.steps.isEmpty { lines.append("  (none stored)") }
        for step in run.steps {
            var line =
                "  #\(step.position) \(step.name) [\(step.kind.rawValue)] \(step.status.rawValue), "
                + "\(step.attempts) attempt(s), \(step.outputBytes) bytes"
            if let waitFor = step.waitFor { line += ", for \(waitFor)" }
            if let wake = step.wakeAt, step.status == .waiting { line += ", until \(formatter.string(from: wake))" }
            if let finished = step.finishedAt {
                let milliseconds = finished.timeIntervalSince(step.startedAt) * 1000
                line += ", \(String(format: "%.1f", milliseconds)) ms"
            }
            if let code = step.errorCode { line += " [\(code)] \(step.errorMessage ?? "")" }
            lines.append(line)
        }
        print(lines.joined(separator: "\n"))
    }
}
