import ConveyorCore
import Metrics

/// The metric names Conveyor reports through swift-metrics. Names and label keys are a contract: dashboards and
/// alerts depend on them, so they change only with a major version.
///
/// | name | type | labels | meaning |
/// |---|---|---|---|
/// | `conveyor_jobs_enqueued_total` | counter | `queue`, `kind` | jobs inserted (duplicates included) |
/// | `conveyor_jobs_started_total` | counter | `queue`, `kind` | attempts started by a worker |
/// | `conveyor_jobs_completed_total` | counter | `queue`, `kind` | attempts that completed their job |
/// | `conveyor_jobs_failed_total` | counter | `queue`, `kind`, `error_code` | attempts that failed |
/// | `conveyor_jobs_retried_total` | counter | `queue`, `kind` | failed attempts that scheduled a retry |
/// | `conveyor_jobs_dead_lettered_total` | counter | `queue`, `kind`, `reason` | jobs moved to the dead-letter queue |
/// | `conveyor_jobs_snoozed_total` | counter | `queue`, `kind` | attempts that snoozed |
/// | `conveyor_jobs_cancelled_total` | counter | `queue`, `kind` | attempts that ended in `cancelled` |
/// | `conveyor_job_duration_seconds` | timer | `queue`, `kind` | handler run time per attempt |
/// | `conveyor_queue_depth` | gauge | `queue` | runnable jobs (available, scheduled, retryable), sampled by the reaper |
/// | `conveyor_leases_reaped_total` | counter | none | expired leases taken back by the reaper |
public enum ConveyorMetrics {
    public static let jobsEnqueuedName = "conveyor_jobs_enqueued_total"
    public static let jobsStartedName = "conveyor_jobs_started_total"
    public static let jobsCompletedName = "conveyor_jobs_completed_total"
    public static let jobsFailedName = "conveyor_jobs_failed_total"
    public static let jobsRetriedName = "conveyor_jobs_retried_total"
    public static let jobsDeadLetteredName = "conveyor_jobs_dead_lettered_total"
    public static let jobsSnoozedName = "conveyor_jobs_snoozed_total"
    public static let jobsCancelledName = "conveyor_jobs_cancelled_total"
    public static let jobDurationName = "conveyor_job_duration_seconds"
    public static let queueDepthName = "conveyor_queue_depth"
    public static let leasesReapedName = "conveyor_leases_reaped_total"

    /// Counts inserted jobs (duplicates included), one counter update per queue and kind, not per job. Called by
    /// every enqueue path, the transactional one included.
    public static func recordEnqueued(_ batch: NewJobBatch) {
        var counts: [QueueAndKind: Int] = [:]
        for (group, count) in batch.groups {
            counts[QueueAndKind(queue: group.queue, kind: group.kind), default: 0] += count
        }
        for (key, count) in counts {
            Counter(label: jobsEnqueuedName, dimensions: [("queue", key.queue), ("kind", key.kind)])
                .increment(by: count)
        }
    }

    private struct QueueAndKind: Hashable {
        var queue: String
        var kind: String
    }

    static func jobStarted(queue: String, kind: String) {
        Counter(label: jobsStartedName, dimensions: [("queue", queue), ("kind", kind)]).increment()
    }

    static func attemptFinished(
        queue: String,
        kind: String,
        transition: JobTransition,
        durationNanoseconds: Int64?
    ) {
        let dimensions = [("queue", queue), ("kind", kind)]
        if let durationNanoseconds {
            Timer(label: jobDurationName, dimensions: dimensions).recordNanoseconds(durationNanoseconds)
        }
        switch transition.outcome {
        case .completed:
            Counter(label: jobsCompletedName, dimensions: dimensions).increment()
        case .snoozed:
            Counter(label: jobsSnoozedName, dimensions: dimensions).increment()
        case .cancelled:
            Counter(label: jobsCancelledName, dimensions: dimensions).increment()
        case .failed, .discarded, .released, .suspended:
            if let code = transition.errorCode, transition.outcome == .failed {
                Counter(label: jobsFailedName, dimensions: dimensions + [("error_code", code.rawValue)]).increment()
            }
        }
        if transition.state == .retryable {
            Counter(label: jobsRetriedName, dimensions: dimensions).increment()
        }
        if let reason = transition.deadReason {
            Counter(label: jobsDeadLetteredName, dimensions: dimensions + [("reason", reason.rawValue)]).increment()
        }
    }

    static func queueDepth(queue: String, depth: Int) {
        Gauge(label: queueDepthName, dimensions: [("queue", queue)]).record(depth)
    }

    static func leasesReaped(_ count: Int) {
        Counter(label: leasesReapedName).increment(by: count)
    }
}
