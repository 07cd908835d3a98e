import Conveyor
import Foundation

/// The admin API's JSON for the values the CLI prints with `--json`: the same text `GET /jobs/{id}/explain` and
/// `GET /jobs/{id}/timeline` answer.
public enum AdminJSON {
    public static func explanation(_ explanation: JobExplanation) -> String {
        String(decoding: APIJSON.render(APIJSON.explanation(explanation)), as: UTF8.self)
    }

    public static func timeline(_ timeline: JobTimeline) -> String {
        String(decoding: APIJSON.render(APIJSON.timeline(timeline)), as: UTF8.self)
    }

    public static func queues(_ queues: [QueueInfo]) -> String {
        String(decoding: APIJSON.render(["queues": queues.map(APIJSON.queue)]), as: UTF8.self)
    }

    public static func workers(_ workers: [WorkerPresence]) -> String {
        String(decoding: APIJSON.render(["workers": workers.map(APIJSON.worker)]), as: UTF8.self)
    }

    public static func pools(_ pools: [PoolInfo]) -> String {
        String(decoding: APIJSON.render(["pools": pools.map(APIJSON.pool)]), as: UTF8.self)
    }

    public static func tenants(_ tenants: [TenantInfo]) -> String {
        String(decoding: APIJSON.render(["tenants": tenants.map(APIJSON.tenant)]), as: UTF8.self)
    }
}

extension AdminJSON {
    /// `GET /metrics`'s body.
    public static func metrics(_ queues: [QueueMetrics], workers: Int) -> String {
        String(
            decoding: APIJSON.render([
                "queues": queues.map(APIJSON.metrics), "workers": workers, "generated_at": APIJSON.time(Date()),
            ]),
            as: UTF8.self
        )
    }
}
