import ArgumentParser
import Conveyor
import ConveyorHTTP
import Foundation

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per queue: depth, running, jobs/s, success and retry rates, start latency (as GET /metrics).",
        discussion: "Rates cover the last minute, from the counts workers write every few seconds."
    )

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print the API's JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            let (queues, workers) = try await self.database.withClient { client in
                (try await client.metrics.queues(), try await client.workers.list().count)
            }
            if self.json {
                print(AdminJSON.metrics(queues, workers: workers))
                return
            }
            let header: [(String, Int)] = [
                ("QUEUE", 20), ("AVAIL", 8), ("WAITING", 8), ("RUNNING", 8), ("DEAD", 6), ("JOBS/S", 9),
                ("SUCCESS", 8), ("RETRY", 7),
            ]
            print(header.map { $0.0.padding($0.1) }.joined(separator: " ") + " START p50/p95/p99 ms")
            for queue in queues {
                var latency = "-"
                if let start = queue.startLatency {
                    latency = String(format: "%.1f/%.1f/%.1f", start.p50, start.p95, start.p99)
                }
                let name: String = queue.queue + (queue.isPaused ? " (paused)" : "")
                // "+": the count stopped at QueueInfo.countLimit.
                func figure(_ value: Int, _ states: [JobState]) -> String {
                    String(value) + (queue.cappedStates.isDisjoint(with: states) ? "" : "+")
                }
                let cells: [String] = [
                    name.padding(20), figure(queue.available, [.available]).padding(8),
                    figure(queue.waiting, [.scheduled, .retryable]).padding(8),
                    figure(queue.running, [.running]).padding(8), figure(queue.deadLettered, [.discarded]).padding(6),
                    String(format: "%.1f", queue.completedPerSecond).padding(9),
                    String(format: "%.1f %%", queue.successRate * 100).padding(8),
                    String(format: "%.1f %%", queue.retryRate * 100).padding(7), latency,
                ]
                print(cells.joined(separator: " "))
            }
            print("\(workers) live worker(s)")
        }
    }
}
