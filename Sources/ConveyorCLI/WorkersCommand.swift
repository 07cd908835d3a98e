import ArgumentParser
import Conveyor
import ConveyorHTTP
import Foundation

struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "Live worker processes: their queues and slots, kinds and last heartbeat (as GET /workers)."
    )

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print the API's JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let workers = try await self.database.withClient { client in try await client.workers.list() }
            if self.json {
                print(AdminJSON.workers(workers))
                return
            }
            print(
                "WORKER".padding(32) + " " + "POOL".padding(16) + " " + "QUEUES (RUNNING/SLOTS)".padding(30)
                    + " LAST HEARTBEAT"
            )
            for worker in workers {
                let queues = worker.queues.sorted { $0.key < $1.key }.map {
                    "\($0.key):\(worker.running[$0.key] ?? 0)/\($0.value)"
                }
                print(
                    worker.id.padding(32) + " " + worker.pool.padding(16) + " "
                        + queues.joined(separator: ",").padding(30) + " " + ExplainTime.iso(worker.heartbeatAt)
                )
            }
            if workers.isEmpty { print("(no live worker)") }
        }
    }
}
