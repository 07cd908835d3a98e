import ArgumentParser
import Conveyor
import ConveyorHTTP
import Foundation

struct PoolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pools",
        abstract: "List worker pools, pause and resume them (as GET /pools).",
        subcommands: [List.self, Pause.self, Resume.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every pool with its live workers, slots and running jobs per queue, and its pause."
        )
        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print the API's JSON.") var json = false

        func run() async throws {
            try await reportingErrors {
                let pools = try await self.database.withClient { client in try await client.pools.list() }
                if self.json {
                    print(AdminJSON.pools(pools))
                    return
                }
                print("POOL".padding(24) + " " + "STATE".padding(8) + " " + "WORKERS".padding(8) + " RUNNING/SLOTS")
                for pool in pools {
                    print(Self.line(pool))
                }
                if pools.isEmpty { print("(no pool)") }
            }
        }

        static func line(_ pool: PoolInfo) -> String {
            var usage: [String] = []
            for (queue, slots) in pool.slots.sorted(by: { $0.key < $1.key }) {
                let running = pool.running[queue] ?? 0
                usage.append("\(queue):\(running)/\(slots)")
            }
            let state = pool.isPaused ? "paused" : "running"
            let workers = "\(pool.workers.count)"
            return pool.name.padding(24) + " " + state.padding(8) + " " + workers.padding(8) + " "
                + usage.joined(separator: ",")
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a pool's workers from fetching, from their next heartbeat on; running jobs finish."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The pool's name (it need not have a live worker yet).") var name: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.pools.pause(self.name, by: Performer.cli)
                }
                print("paused pool \(self.name)")
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a pool's workers fetch again, from their next heartbeat on."
        )
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await self.database.withClient { client in
                    try await client.pools.resume(self.name, by: Performer.cli)
                }
                print("resumed pool \(self.name)")
            }
        }
    }
}
