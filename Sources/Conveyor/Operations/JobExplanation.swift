import ConveyorCore
import Foundation

/// Why a job (or a workflow run) is in its state and what happens next, in one sentence, with the facts behind it
/// as fields: what `conveyor jobs explain`, `GET /jobs/{id}/explain` and the dashboard show.
public struct JobExplanation: Sendable, Hashable {
    /// Stable reason codes: scripts and the dashboard match on these, not on the sentence.
    public enum Reason: String, Sendable, Hashable, CaseIterable, Codable {
        case queuePaused = "queue_paused"
        case poolPaused = "pool_paused"
        case noWorkerForQueue = "no_worker_for_queue"
        case kindNotRegistered = "kind_not_registered"
        case waitingForSlot = "waiting_for_slot"
        case queueAtLimit = "queue_at_limit"
        case tenantAtLimit = "tenant_at_limit"
        case ready
        case scheduled
        case due
        case snoozed
        case retryScheduled = "retry_scheduled"
        case leaseLostRetry = "lease_lost_retry"
        case running
        case cancelRequested = "cancel_requested"
        case leaseExpired = "lease_expired"
        case completed
        case cancelled
        case deadLettered = "dead_lettered"
        case unknownKind = "unknown_kind"
        case workflowSleeping = "workflow_sleeping"
        case workflowWaitingForSignal = "workflow_waiting_for_signal"
        case workflowWaitingForChild = "workflow_waiting_for_child"
        case workflowWaitingForVersion = "workflow_waiting_for_version"
        case workflowCompleted = "workflow_completed"
        case workflowFailed = "workflow_failed"
        case workflowCancelled = "workflow_cancelled"
    }

    public var jobID: JobID
    public var state: JobState
    public var reason: Reason
    /// One sentence for a person.
    public var sentence: String
    /// The facts the sentence names (queue, worker, times as ISO 8601 UTC, counts, codes), for scripts and the
    /// dashboard.
    public var facts: [String: String]
    /// When the next thing happens on its own (a retry, a schedule, a wake-up), if anything does.
    public var nextAt: Date?
    /// What an operator can do, when the job waits on one.
    public var suggestedAction: String?

    public init(
        jobID: JobID,
        state: JobState,
        reason: Reason,
        sentence: String,
        facts: [String: String],
        nextAt: Date? = nil,
        suggestedAction: String? = nil
    ) {
        self.jobID = jobID
        self.state = state
        self.reason = reason
        self.sentence = sentence
        self.facts = facts
        self.nextAt = nextAt
        self.suggestedAction = suggestedAction
    }
}

/// What an explanation is computed from: the job and what the database says around it, read at one moment.
public struct JobExplanationFacts: Sendable {
    public var job: JobRecord
    /// The database's clock when the facts were read.
    public var now: Date
    /// The job's queue with its counts and pause record.
    public var queue: QueueInfo?
    /// Workers whose presence is live.
    public var workers: [WorkerPresence]
    /// Worker pools that are paused.
    public var pausedPools: Set<String>
    /// Available jobs of the queue ahead of this one in fetch order (capped).
    public var ahead: Int
    /// The settings of the job's tenant (its namespace), when it has any.
    public var tenant: TenantInfo?
    /// The job's events, oldest first.
    public var events: [EventRecord]
    /// For a workflow run's job: the run with its steps.
    public var run: WorkflowRunRecord?

    public init(
        job: JobRecord,
        now: Date,
        queue: QueueInfo?,
        workers: [WorkerPresence],
        pausedPools: Set<String> = [],
        ahead: Int,
        tenant: TenantInfo? = nil,
        events: [EventRecord],
        run: WorkflowRunRecord?
    ) {
        self.job = job
        self.now = now
        self.queue = queue
        self.workers = workers
        self.pausedPools = pausedPools
        self.ahead = ahead
        self.tenant = tenant
        self.events = events
        self.run = run
    }
}

extension JobExplanation {
    /// Explains a job from facts read at one moment. Pure: the same facts give the same sentence.
    public init(_ facts: JobExplanationFacts) {
        var explainer = Explainer(facts: facts)
        self = explainer.explain()
    }
}

/// Builds an explanation; one per call.
private struct Explainer {
    let facts: JobExplanationFacts
    var fields: [String: String] = [:]

    init(facts: JobExplanationFacts) {
        self.facts = facts
        let job = facts.job
        self.fields = [
            "queue": job.queue, "kind": job.kind, "namespace": job.namespace, "state": job.state.rawValue,
            "attempt": "\(job.attempt)", "max_attempts": "\(job.maxAttempts)",
        ]
    }

    var job: JobRecord { self.facts.job }

    mutating func explain() -> JobExplanation {
        if let run = self.facts.run, let explanation = self.explainWorkflow(run) {
            return explanation
        }
        switch self.job.state {
        case .available: return self.explainAvailable()
        case .scheduled: return self.explainScheduled()
        case .retryable: return self.explainRetryable()
        case .running: return self.explainRunning()
        case .completed:
            let at = self.job.finishedAt ?? self.job.runAt
            self.fields["finished_at"] = ExplainTime.iso(at)
            let attempts = self.job.attempts.filter { $0.outcome == .completed || $0.outcome == .failed }.count
            return self.make(
                .completed,
                "completed \(ExplainTime.describe(at, now: self.facts.now)) after \(max(1, attempts)) attempt(s)"
            )
        case .cancelled: return self.explainCancelled()
        case .discarded: return self.explainDiscarded()
        }
    }

    private mutating func explainAvailable() -> JobExplanation {
        let queue = self.job.queue
        if let info = self.facts.queue, info.isPaused {
            var sentence = "queue \(queue) is paused"
            if let at = info.pausedAt {
                sentence += " since \(ExplainTime.stamp(at, now: self.facts.now))"
                self.fields["paused_at"] = ExplainTime.iso(at)
            }
            if let by = info.pausedBy {
                sentence += " by \(by)"
                self.fields["paused_by"] = by
            }
            sentence += "; the job waits until the queue is resumed"
            return self.make(.queuePaused, sentence, action: "resume queue \(queue)")
        }
        let live = self.facts.workers.filter { $0.queues[queue] != nil }
        self.fields["live_workers"] = "\(live.count)"
        guard !live.isEmpty else {
            return self.make(
                .noWorkerForQueue,
                "no live worker serves queue \(queue); the job waits until one starts",
                action: "start a worker with queue \(queue)"
            )
        }
        let serving = live.filter { !self.facts.pausedPools.contains($0.pool) }
        guard !serving.isEmpty else {
            let pools = Set(live.map(\.pool)).sorted()
            self.fields["paused_pools"] = pools.joined(separator: ",")
            return self.make(
                .poolPaused,
                "every live worker of queue \(queue) is in a paused pool (\(pools.joined(separator: ", "))); "
                    + "the job waits until one is resumed",
                action: "resume pool \(pools[0])"
            )
        }
        let isWorkflow = self.job.kind == WorkflowJob.kind
        let knowing = serving.filter { isWorkflow ? !$0.workflows.isEmpty : $0.kinds.contains(self.job.kind) }
        guard !knowing.isEmpty else {
            return self.make(
                .kindNotRegistered,
                "no live worker of queue \(queue) registers kind \(self.job.kind): the worker that fetches it "
                    + "dead-letters it with UNKNOWN_KIND",
                action: "deploy a worker that registers \(self.job.kind), or cancel the job"
            )
        }
        let slots = serving.reduce(0) { $0 + ($1.queues[queue] ?? 0) }
        let busy = self.facts.queue?.counts[.running] ?? 0
        var ahead = self.facts.ahead == 0 ? "next in line" : "\(self.facts.ahead) ahead of it"
        if self.facts.queue?.isFair == true {
            self.fields["fair"] = "true"
            ahead += " in tenant \(self.job.namespace)'s share"
        }
        if let limit = self.facts.queue?.maxRunning, busy >= limit {
            self.fields["max_running"] = "\(limit)"
            self.fields["running"] = "\(busy)"
            self.fields["ahead"] = "\(self.facts.ahead)"
            return self.make(
                .queueAtLimit,
                "waiting: queue \(queue) is at its limit of \(limit) running (\(ahead))",
                action: "raise the limit of queue \(queue), or wait"
            )
        }
        if let tenant = self.facts.tenant, let limit = tenant.maxRunning, let running = tenant.running,
            running >= limit
        {
            self.fields["tenant_max_running"] = "\(limit)"
            self.fields["tenant_running"] = "\(running)"
            self.fields["ahead"] = "\(self.facts.ahead)"
            return self.make(
                .tenantAtLimit,
                "waiting: tenant \(tenant.name) is at its limit of \(limit) running (\(ahead))",
                action: "raise the limit of tenant \(tenant.name), or wait"
            )
        }
        self.fields["slots"] = "\(slots)"
        self.fields["busy"] = "\(busy)"
        self.fields["ahead"] = "\(self.facts.ahead)"
        if busy >= slots {
            return self.make(
                .waitingForSlot,
                "waiting for a free slot in queue \(queue) (\(busy) of \(slots) busy, \(ahead))"
            )
        }
        return self.make(
            .ready,
            "ready: the next fetch of queue \(queue) takes it (\(busy) of \(slots) slots busy, \(ahead))"
        )
    }

    private mutating func explainScheduled() -> JobExplanation {
        let at = self.job.runAt
        self.fields["run_at"] = ExplainTime.iso(at)
        if at <= self.facts.now {
            return self.make(
                .due,
                "due since \(ExplainTime.stamp(at, now: self.facts.now)); the next staging (every poll interval) "
                    + "makes it available",
                next: at
            )
        }
        if self.job.attempts.last?.outcome == .snoozed {
            return self.make(
                .snoozed,
                "snoozed by its handler until \(ExplainTime.stamp(at, now: self.facts.now))",
                next: at
            )
        }
        return self.make(.scheduled, "scheduled for \(ExplainTime.stamp(at, now: self.facts.now))", next: at)
    }

    private mutating func explainRetryable() -> JobExplanation {
        let at = self.job.runAt
        self.fields["retry_at"] = ExplainTime.iso(at)
        let next =
            "retry \(self.job.attempt + 1) of \(self.job.maxAttempts) at \(ExplainTime.describe(at, now: self.facts.now))"
        guard let last = self.job.attempts.last else {
            return self.make(.retryScheduled, next, next: at)
        }
        self.fields["worker"] = last.worker
        if let code = last.errorCode { self.fields["error_code"] = code.rawValue }
        if let error = last.error { self.fields["last_error"] = error }
        if last.errorCode == .leaseExpired {
            self.fields["lease_lost_at"] = ExplainTime.iso(last.finishedAt)
            return self.make(
                .leaseLostRetry,
                "lease lost at \(ExplainTime.clock(last.finishedAt)) (worker \(last.worker) stopped heartbeating); \(next)",
                next: at
            )
        }
        let code = last.errorCode?.rawValue ?? "HANDLER_ERROR"
        let message = last.error.map { ": \(ExplainTime.short($0))" } ?? ""
        return self.make(
            .retryScheduled,
            "attempt \(last.attempt) of \(self.job.maxAttempts) failed (\(code)\(message)); \(next)",
            next: at
        )
    }

    private mutating func explainRunning() -> JobExplanation {
        let worker = self.job.leaseOwner ?? "unknown"
        self.fields["worker"] = worker
        if let expires = self.job.leaseExpiresAt { self.fields["lease_expires_at"] = ExplainTime.iso(expires) }
        if let requested = self.job.cancelRequestedAt {
            self.fields["cancel_requested_at"] = ExplainTime.iso(requested)
            var sentence = "cancel requested \(ExplainTime.describe(requested, now: self.facts.now))"
            if let by = self.lastEvent(.cancelRequested)?.performedBy {
                sentence += " by \(by)"
                self.fields["performed_by"] = by
            }
            sentence += "; worker \(worker) stops the handler at its next heartbeat"
            return self.make(.cancelRequested, sentence)
        }
        if let expires = self.job.leaseExpiresAt, expires < self.facts.now {
            let alive = self.facts.workers.contains { $0.id == worker }
            let why =
                alive ? "worker \(worker) is alive but did not extend it" : "worker \(worker) stopped heartbeating"
            return self.make(
                .leaseExpired,
                "lease expired at \(ExplainTime.clock(expires)) (\(why)); the next reaper pass takes it back and "
                    + (self.job.attempt < self.job.maxAttempts
                        ? "retries it (attempt \(self.job.attempt + 1) of \(self.job.maxAttempts))"
                        : "dead-letters it (no attempts left)"),
                next: expires
            )
        }
        let until = self.job.leaseExpiresAt.map { "; lease until \(ExplainTime.clock($0))" } ?? ""
        return self.make(
            .running,
            "running attempt \(self.job.attempt) of \(self.job.maxAttempts) on worker \(worker)\(until)"
        )
    }

    private mutating func explainCancelled() -> JobExplanation {
        let at = self.job.finishedAt ?? self.job.runAt
        self.fields["finished_at"] = ExplainTime.iso(at)
        var sentence = "cancelled \(ExplainTime.describe(at, now: self.facts.now))"
        if let event = self.lastEvent(.cancelled) ?? self.lastEvent(.cancelRequested), let by = event.performedBy {
            sentence += " by \(by)"
            self.fields["performed_by"] = by
        } else if let last = self.job.attempts.last, last.outcome == .cancelled {
            sentence += " by its handler on worker \(last.worker)"
        }
        return self.make(.cancelled, sentence, action: "replay it to run it again")
    }

    private mutating func explainDiscarded() -> JobExplanation {
        let at = self.job.finishedAt ?? self.job.runAt
        self.fields["finished_at"] = ExplainTime.iso(at)
        let reason = self.job.deadReason ?? .discarded
        self.fields["dead_reason"] = reason.rawValue
        let last = self.job.attempts.last
        if let last { self.fields["worker"] = last.worker }
        if let error = self.job.lastError ?? last?.error { self.fields["last_error"] = error }
        let lastError = (self.job.lastError ?? last?.error).map { "; last error: \(ExplainTime.short($0))" } ?? ""
        switch reason {
        case .unknownKind:
            return self.make(
                .unknownKind,
                "no worker registered kind \(self.job.kind): dead-lettered with UNKNOWN_KIND "
                    + "\(ExplainTime.describe(at, now: self.facts.now))"
                    + (last.map { " by worker \($0.worker)" } ?? ""),
                action: "deploy a worker that registers \(self.job.kind), then retry"
            )
        case .maxAttemptsExceeded:
            return self.make(
                .deadLettered,
                "dead-lettered: MAX_ATTEMPTS_EXCEEDED after \(self.job.attempt) of \(self.job.maxAttempts) "
                    + "attempts\(lastError)",
                action: "fix the handler, then retry"
            )
        case .malformedArguments:
            return self.make(
                .deadLettered,
                "dead-lettered: MALFORMED_ARGUMENTS (the arguments do not decode as \(self.job.kind))\(lastError)",
                action: "enqueue a corrected job; a retry fails the same way"
            )
        case .timeout:
            return self.make(
                .deadLettered,
                "dead-lettered: TIMEOUT (the handler ran past its timeout)\(lastError)",
                action: "raise the kind's timeout or speed up the handler, then retry"
            )
        case .nonRetryable, .discarded, .resultRejected:
            return self.make(
                .deadLettered,
                "dead-lettered: \(reason.rawValue)\(lastError)",
                action: "fix the cause, then retry"
            )
        }
    }

    // MARK: Workflows

    private mutating func explainWorkflow(_ run: WorkflowRunRecord) -> JobExplanation? {
        self.fields["run"] = run.id.rawValue
        self.fields["workflow"] = "\(run.name)@\(run.version)"
        self.fields["run_status"] = run.status.rawValue
        switch run.status {
        case .running:
            return nil
        case .completed:
            let at = run.finishedAt ?? run.updatedAt
            self.fields["finished_at"] = ExplainTime.iso(at)
            return self.make(
                .workflowCompleted,
                "run \(run.id.rawValue) completed \(ExplainTime.describe(at, now: self.facts.now))"
            )
        case .failed:
            let at = run.finishedAt ?? run.updatedAt
            self.fields["finished_at"] = ExplainTime.iso(at)
            if let code = run.errorCode { self.fields["error_code"] = code }
            if let message = run.errorMessage { self.fields["error"] = message }
            let code = run.errorCode ?? "FAILED"
            let message = run.errorMessage.map { ": \(ExplainTime.short($0))" } ?? ""
            let failedStep = run.steps.last { $0.status == .failed }
            return self.make(
                .workflowFailed,
                "run \(run.id.rawValue) failed \(ExplainTime.describe(at, now: self.facts.now)) with \(code)\(message)",
                action: failedStep.map { "fix the cause, then fork the run from step \($0.name)" }
                    ?? "fix the cause, then start the run again"
            )
        case .cancelled:
            let at = run.finishedAt ?? run.updatedAt
            self.fields["finished_at"] = ExplainTime.iso(at)
            return self.make(
                .workflowCancelled,
                "run \(run.id.rawValue) was cancelled \(ExplainTime.describe(at, now: self.facts.now))"
            )
        case .waiting:
            if run.waitsForVersion {
                let known = Set(self.facts.workers.flatMap(\.workflows).filter { $0.hasPrefix("\(run.name)@") })
                self.fields["live_versions"] = known.sorted().joined(separator: ",")
                let have =
                    known.isEmpty
                    ? "no live worker has workflow \(run.name)"
                    : "live workers have \(known.sorted().joined(separator: ", "))"
                return self.make(
                    .workflowWaitingForVersion,
                    "run \(run.id.rawValue) waits for a worker with version \(run.version) of workflow \(run.name) "
                        + "(\(have))",
                    action: "deploy a worker that registers \(run.name) version \(run.version)"
                )
            }
            let waits = run.steps.filter { $0.status == .waiting }
            var parts: [String] = []
            var reason: JobExplanation.Reason = .workflowSleeping
            var next: Date?
            for wait in waits {
                switch wait.kind {
                case .sleep:
                    let at = wait.wakeAt ?? self.job.runAt
                    parts.append("sleeping until \(ExplainTime.stamp(at, now: self.facts.now)) (step \(wait.name))")
                    next = min(next ?? at, at)
                    self.fields["wake_at"] = ExplainTime.iso(at)
                case .signal:
                    var part = "waiting for signal \(wait.waitFor ?? wait.name)"
                    if let timeout = wait.wakeAt {
                        part += " (times out \(ExplainTime.describe(timeout, now: self.facts.now)))"
                        next = min(next ?? timeout, timeout)
                    }
                    parts.append(part)
                    self.fields["signal"] = wait.waitFor ?? wait.name
                    if reason == .workflowSleeping { reason = .workflowWaitingForSignal }
                case .child:
                    parts.append("waiting for child \(wait.waitFor ?? wait.name)")
                    self.fields["child"] = wait.waitFor ?? wait.name
                    if reason != .workflowWaitingForSignal { reason = .workflowWaitingForChild }
                case .step, .patch:
                    continue
                }
            }
            if let first = waits.first { reason = Self.reason(for: first.kind) ?? reason }
            if let deadline = run.deadline {
                self.fields["deadline"] = ExplainTime.iso(deadline)
                parts.append("deadline \(ExplainTime.describe(deadline, now: self.facts.now))")
            }
            guard !parts.isEmpty else { return nil }
            return self.make(reason, "run \(run.id.rawValue) is " + parts.joined(separator: "; "), next: next)
        }
    }

    private static func reason(for kind: WorkflowStepKind) -> JobExplanation.Reason? {
        switch kind {
        case .sleep: .workflowSleeping
        case .signal: .workflowWaitingForSignal
        case .child: .workflowWaitingForChild
        case .step, .patch: nil
        }
    }

    // MARK: Parts

    private func lastEvent(_ action: EventRecord.Action) -> EventRecord? {
        self.facts.events.last { $0.action == action }
    }

    private func make(
        _ reason: JobExplanation.Reason,
        _ sentence: String,
        next: Date? = nil,
        action: String? = nil
    ) -> JobExplanation {
        JobExplanation(
            jobID: self.job.id,
            state: self.job.state,
            reason: reason,
            sentence: sentence,
            facts: self.fields,
            nextAt: next,
            suggestedAction: action
        )
    }
}

/// How explanations and timelines write times: clock time in UTC, with the distance from now.
public enum ExplainTime {
    /// `2026-12-02T10:03:40.123Z`.
    public static func iso(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// `10:03:40 UTC` today, `2026-12-01 10:03:40 UTC` on another day (of the database's clock).
    public static func clock(_ date: Date, now: Date? = nil) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let time = String(format: "%02d:%02d:%02d UTC", parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0)
        if let now, calendar.isDate(date, inSameDayAs: now) { return time }
        if now == nil { return time }
        return String(format: "%04d-%02d-%02d ", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0) + time
    }

    /// `at 10:03:40 UTC (in 3 min)` or `at 10:03:40 UTC (2 s ago)`.
    public static func describe(_ date: Date, now: Date) -> String {
        "at \(Self.stamp(date, now: now))"
    }

    /// `10:03:40 UTC (in 3 min)`.
    public static func stamp(_ date: Date, now: Date) -> String {
        "\(Self.clock(date, now: now)) (\(Self.relative(date, now: now)))"
    }

    /// `in 3 min`, `2 s ago`, `now`.
    public static func relative(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        let magnitude = abs(seconds)
        let amount: String
        switch magnitude {
        case ..<1: return "now"
        case ..<120: amount = "\(Int(magnitude)) s"
        case ..<7200: amount = "\(Int(magnitude / 60)) min"
        case ..<172_800: amount = "\(Int(magnitude / 3600)) h"
        default: amount = "\(Int(magnitude / 86400)) days"
        }
        return seconds > 0 ? "in \(amount)" : "\(amount) ago"
    }

    /// A message cut to 200 characters for a sentence (the full text stays in the facts).
    static func short(_ text: String) -> String {
        text.count <= 200 ? text : String(text.prefix(199)) + "…"
    }
}
