import Conveyor
import Foundation

/// Gauges from cheap queries, written in the Prometheus text format after what the swift-metrics registry emits.
enum PrometheusText {
    static func gauges(queues: [QueueMetrics], workers: Int, deadLetters: [DeadLetterReasonCount]) -> String {
        var lines: [String] = []
        func family(_ name: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) gauge")
        }
        family("conveyor_queue_jobs", "Unfinished and dead-lettered jobs per queue and state, from partial indexes.")
        for queue in queues {
            for (state, value) in [
                ("available", queue.available), ("waiting", queue.waiting), ("running", queue.running),
                ("discarded", queue.deadLettered),
            ] {
                lines.append("conveyor_queue_jobs{queue=\"\(Self.escape(queue.queue))\",state=\"\(state)\"} \(value)")
            }
        }
        family("conveyor_queue_paused", "1 when the queue is paused.")
        for queue in queues {
            lines.append("conveyor_queue_paused{queue=\"\(Self.escape(queue.queue))\"} \(queue.isPaused ? 1 : 0)")
        }
        family("conveyor_queue_completed_per_second", "Completed attempts per second over the last minute.")
        for queue in queues {
            lines.append(
                "conveyor_queue_completed_per_second{queue=\"\(Self.escape(queue.queue))\"} \(queue.completedPerSecond)"
            )
        }
        family("conveyor_queue_failed_per_second", "Failed attempts per second over the last minute.")
        for queue in queues {
            lines.append(
                "conveyor_queue_failed_per_second{queue=\"\(Self.escape(queue.queue))\"} \(queue.failedPerSecond)"
            )
        }
        family("conveyor_queue_start_latency_milliseconds", "Start latency of jobs started in the last minute.")
        for queue in queues {
            guard let latency = queue.startLatency else { continue }
            for (quantile, value) in [("0.5", latency.p50), ("0.95", latency.p95), ("0.99", latency.p99)] {
                lines.append(
                    "conveyor_queue_start_latency_milliseconds{queue=\"\(Self.escape(queue.queue))\","
                        + "quantile=\"\(quantile)\"} \(value)"
                )
            }
        }
        family("conveyor_workers_live", "Worker processes whose presence heartbeat is live.")
        lines.append("conveyor_workers_live \(workers)")
        family("conveyor_dead_lettered_jobs", "Dead-lettered jobs per reason.")
        for entry in deadLetters {
            lines.append("conveyor_dead_lettered_jobs{reason=\"\(entry.reason)\"} \(entry.count)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    struct DeadLetterReasonCount {
        var reason: String
        var count: Int
    }

    /// Label values escaped as the text format asks: backslash, quote and newline.
    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
