import ArgumentParser
import Conveyor
import Foundation

extension EnqueueLimit.Scope: ExpressibleByArgument {}

struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "List, set and remove enqueue rate limits per queue or namespace.",
        discussion: """
            A limit is a token bucket in the database that every process draws from: it holds `burst` tokens and \
            refills at `per-second`; each enqueued job takes one, and an enqueue that finds too few fails with \
            RATE_LIMITED. Clients pick up a change within their refresh interval (5 s by default).
            """,
        subcommands: [List.self, SetLimit.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every configured enqueue limit.")
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let limits = try await self.database.withClient { client in try await client.limits.list() }
                print("SCOPE".padding(10) + " " + "NAME".padding(30) + " " + "PER SECOND".padding(12) + " BURST")
                for limit in limits {
                    print(
                        limit.scope.rawValue.padding(10) + " " + limit.name.padding(30) + " "
                            + LimitsCommand.number(limit.perSecond).padding(12) + " \(limit.burst)"
                    )
                }
                if limits.isEmpty { print("(no limit: enqueues are not rate limited)") }
            }
        }
    }

    struct SetLimit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create or replace a limit; its bucket starts full.",
            discussion: "Example: conveyor limits set queue mail --per-second 100 --burst 200"
        )
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "queue or namespace.") var scope: EnqueueLimit.Scope
        @Argument(help: "The queue or namespace name.") var name: String
        @Option(help: "Tokens added per second (above 0, at most 1000000).") var perSecond: Double
        @Option(help: "The most jobs enqueued at once after a quiet period (1-1000000; default: --per-second).")
        var burst: Int?

        func run() async throws {
            try await reportingErrors {
                let burst = try self.burst ?? Self.defaultBurst(perSecond: self.perSecond)
                let limit = EnqueueLimit(scope: self.scope, name: self.name, perSecond: self.perSecond, burst: burst)
                try await self.database.withClient { client in try await client.limits.set(limit) }
                print(
                    "\(self.scope.rawValue) \(self.name): \(LimitsCommand.number(self.perSecond)) per second, "
                        + "burst \(burst)"
                )
            }
        }

        /// One second's worth of tokens, at least one.
        static func defaultBurst(perSecond: Double) throws -> Int {
            guard perSecond.isFinite, perSecond > 0, perSecond <= EnqueueLimit.maximumPerSecond else {
                throw ConveyorError(
                    .invalidOption,
                    "--per-second must be a finite number above 0 and at most 1000000, got \(perSecond)"
                )
            }
            return max(1, Int(perSecond.rounded(.up)))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a limit; its enqueues are no longer limited.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "queue or namespace.") var scope: EnqueueLimit.Scope
        @Argument(help: "The queue or namespace name.") var name: String

        func run() async throws {
            try await reportingErrors {
                let removed = try await self.database.withClient { client in
                    try await client.limits.remove(scope: self.scope, name: self.name)
                }
                print(removed ? "removed the limit of \(self.scope.rawValue) \(self.name)" : "no limit to remove")
            }
        }
    }
}

extension LimitsCommand {
    /// A rate as a person writes it: no trailing zeros, at most three decimals.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        if abs(value) < 0.001 { return "\(value)" }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Refused enqueues, newest first, with their codes and reasons (kept for the worker's retention)."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Only refusals with this code, e.g. RATE_LIMITED.") var code: String?
    @Option(help: "Only refusals of this queue.") var queue: String?
    @Option(help: "Only refusals of this tenant.") var namespace: String?
    @Option(help: "Page size.") var limit: Int = 50
    @Option(help: "The cursor printed under the previous page.") var cursor: String?

    func run() async throws {
        try await reportingErrors {
            let filter = IngestDecisionFilter(
                code: self.code,
                queue: self.queue,
                namespace: self.namespace,
                limit: self.limit,
                cursor: self.cursor
            )
            let page = try await self.database.withClient { client in try await client.ingest.decisions(filter) }
            let widths = [26, 20, 11, 12, 12, 20, 6]
            func row(_ cells: [String], _ reason: String) -> String {
                zip(cells, widths).map { $0.padding($1) }.joined(separator: " ") + " " + reason
            }
            print(row(["AT", "CODE", "SOURCE", "QUEUE", "NAMESPACE", "KIND", "JOBS"], "REASON"))
            for decision in page.decisions {
                let at = decision.at.map(ExplainTime.iso) ?? ""
                let cells = [
                    at, decision.code, decision.source ?? "-", decision.queue ?? "-", decision.namespace ?? "-",
                    decision.kind ?? "-", String(decision.jobs),
                ]
                print(row(cells, decision.reason))
            }
            if page.decisions.isEmpty { print("(no refused enqueue)") }
            if let next = page.nextCursor { print("more: --cursor \(next)") }
        }
    }
}
