import ArgumentParser
import Conveyor
import ConveyorHTTP
import Foundation

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants",
        abstract: "List tenants (namespaces with settings), set their weights and limits, remove their settings.",
        subcommands: [List.self, SetWeight.self, Limit.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every tenant with settings (as GET /tenants).")
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let tenants = try await self.database.withClient { client in try await client.tenants.list() }
                if self.json {
                    print(AdminJSON.tenants(tenants))
                    return
                }
                print("TENANT".padding(24) + " " + "WEIGHT".padding(8) + " " + "RUNNING".padding(12) + " UPDATED")
                for tenant in tenants {
                    let by = tenant.updatedBy.map { " by \($0)" } ?? ""
                    let running = tenant.maxRunning.map { "\(tenant.running ?? 0)/\($0)" } ?? "-"
                    print(
                        tenant.name.padding(24) + " " + Self.weight(tenant.weight).padding(8) + " "
                            + running.padding(12) + " " + ExplainTime.iso(tenant.updatedAt) + by
                    )
                }
                if tenants.isEmpty { print("(no tenant has settings; every namespace has weight 1)") }
            }
        }

        static func weight(_ weight: Double) -> String {
            weight == weight.rounded() && abs(weight) < 1e15 ? String(Int(weight)) : String(weight)
        }
    }

    struct SetWeight: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set a tenant's weight: its share of a fair queue's fetches against the tenants competing."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The tenant's namespace.") var name: String
        @Option(help: "Its weight, above 0 and at most 10000 (default 1).") var weight: Double

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.tenants.set(self.name, weight: self.weight, by: Performer.cli)
                }
                print("tenant \(self.name) has weight \(List.weight(self.weight))")
            }
        }
    }

    struct Limit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let at most N jobs of a tenant run at once across every queue and worker, or remove the limit."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The tenant's namespace.") var name: String
        @Option(help: "The most jobs leased at once (1-10000).") var maxRunning: Int?
        @Flag(help: "Remove the limit.") var none = false

        func run() async throws {
            try await reportingErrors {
                guard (self.maxRunning == nil) == self.none else {
                    throw ConveyorError(.invalidOption, "give either --max-running N or --none")
                }
                try await self.database.withClient { client in
                    try await client.tenants.setConcurrencyLimit(
                        self.name,
                        maxRunning: self.maxRunning,
                        by: Performer.cli
                    )
                }
                print(
                    self.maxRunning.map { "tenant \(self.name) runs at most \($0) at once" }
                        ?? "tenant \(self.name) has no limit"
                )
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a tenant's settings (back to the defaults).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The tenant's namespace.") var name: String

        func run() async throws {
            try await reportingErrors {
                let removed = try await self.database.withClient { client in
                    try await client.tenants.remove(self.name, by: Performer.cli)
                }
                print(removed ? "tenant \(self.name) has the defaults again" : "tenant \(self.name) had no settings")
            }
        }
    }
}
