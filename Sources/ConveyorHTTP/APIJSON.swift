import Conveyor
import ConveyorCore
import Foundation

/// The API's JSON: objects built as dictionaries and written with sorted keys, times as ISO 8601 UTC with
/// milliseconds, stored JSON (job arguments, outputs, payloads) embedded as JSON rather than as text.
enum APIJSON {
    static func render(_ value: Any) -> [UInt8] {
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        guard JSONSerialization.isValidJSONObject(value),
            let data = try? JSONSerialization.data(withJSONObject: value, options: options)
        else {
            return Array(#"{"error":{"code":"INTERNAL_ERROR","message":"the response could not be encoded"}}"#.utf8)
        }
        return Array(data)
    }

    static func time(_ date: Date?) -> Any {
        guard let date else { return NSNull() }
        return ExplainTime.iso(date)
    }

    static func optional(_ value: Any?) -> Any { value ?? NSNull() }

    /// Stored JSON text as a value to embed; text that does not parse is embedded as a string.
    static func embedded(_ json: String?) -> Any {
        guard let json else { return NSNull() }
        guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        else {
            return json
        }
        return value
    }

    static func job(_ job: JobRecord) -> [String: Any] {
        [
            "id": job.id.rawValue,
            "namespace": job.namespace,
            "queue": job.queue,
            "kind": job.kind,
            "args": Self.embedded(job.argumentsJSON),
            "state": job.state.rawValue,
            "priority": job.priority,
            "attempt": job.attempt,
            "max_attempts": job.maxAttempts,
            "run_at": Self.time(job.runAt),
            "created_at": Self.time(job.createdAt),
            "finished_at": Self.time(job.finishedAt),
            "lease_owner": Self.optional(job.leaseOwner),
            "lease_expires_at": Self.time(job.leaseExpiresAt),
            "unique_key": Self.optional(job.uniqueKey),
            "tags": job.tags,
            "timeout_ms": Self.optional(job.timeoutMilliseconds),
            "replay_of": Self.optional(job.replayOf?.rawValue),
            "dead_reason": Self.optional(job.deadReason?.rawValue),
            "cancel_requested_at": Self.time(job.cancelRequestedAt),
            "last_error": Self.optional(job.lastError),
            "attempts": job.attempts.map(Self.attempt),
        ]
    }

    static func attempt(_ attempt: AttemptRecord) -> [String: Any] {
        [
            "attempt": attempt.attempt,
            "worker": attempt.worker,
            "started_at": Self.time(attempt.startedAt),
            "finished_at": Self.time(attempt.finishedAt),
            "outcome": attempt.outcome.rawValue,
            "error_code": Self.optional(attempt.errorCode?.rawValue),
            "error": Self.optional(attempt.error),
            "duration_us": attempt.durationMicroseconds,
        ]
    }

    static func explanation(_ explanation: JobExplanation) -> [String: Any] {
        [
            "job_id": explanation.jobID.rawValue,
            "state": explanation.state.rawValue,
            "reason": explanation.reason.rawValue,
            "sentence": explanation.sentence,
            "facts": explanation.facts,
            "next_at": Self.time(explanation.nextAt),
            "suggested_action": Self.optional(explanation.suggestedAction),
        ]
    }

    static func timeline(_ timeline: JobTimeline) -> [String: Any] {
        [
            "job_id": timeline.jobID.rawValue,
            "entries": timeline.entries.map { entry -> [String: Any] in
                [
                    "kind": entry.kind.rawValue,
                    "at": Self.time(entry.at),
                    "from_state": Self.optional(entry.fromState),
                    "to_state": Self.optional(entry.toState),
                    "attempt": Self.optional(entry.attempt),
                    "worker": Self.optional(entry.worker),
                    "started_at": Self.time(entry.startedAt),
                    "outcome": Self.optional(entry.outcome),
                    "error_code": Self.optional(entry.errorCode),
                    "error": Self.optional(entry.error),
                    "duration_us": Self.optional(entry.durationMicroseconds),
                    "action": Self.optional(entry.action),
                    "performed_by": Self.optional(entry.performedBy),
                    "details": entry.details,
                    "summary": entry.summary,
                ]
            },
        ]
    }

    static func event(_ event: EventRecord) -> [String: Any] {
        [
            "id": event.id,
            "at": Self.time(event.at),
            "subject": event.subject.kind,
            "subject_id": event.subject.id,
            "action": event.action.rawValue,
            "from_state": Self.optional(event.fromState),
            "to_state": Self.optional(event.toState),
            "performed_by": Self.optional(event.performedBy),
            "details": event.details,
        ]
    }

    static func queue(_ queue: QueueInfo) -> [String: Any] {
        var counts: [String: Int] = [:]
        for state in [JobState.available, .scheduled, .retryable, .running, .discarded] {
            counts[state.rawValue] = queue.counts[state] ?? 0
        }
        return [
            "name": queue.name,
            "paused": queue.isPaused,
            "paused_at": Self.time(queue.pausedAt),
            "paused_by": Self.optional(queue.pausedBy),
            "max_running": Self.optional(queue.maxRunning),
            "fair": queue.isFair,
            "counts": counts,
            "capped": queue.cappedStates.map(\.rawValue).sorted(),
        ]
    }

    static func metrics(_ queue: QueueMetrics) -> [String: Any] {
        [
            "queue": queue.queue,
            "paused": queue.isPaused,
            "available": queue.available,
            "waiting": queue.waiting,
            "running": queue.running,
            "dead_lettered": queue.deadLettered,
            "completed_per_second": queue.completedPerSecond,
            "failed_per_second": queue.failedPerSecond,
            "success_rate": queue.successRate,
            "retry_rate": queue.retryRate,
            "completed_per_minute": queue.completedPerMinute,
            "capped": Self.cappedFigures(queue.cappedStates),
            "start_latency_ms": queue.startLatency.map { latency -> Any in
                ["samples": latency.samples, "p50": latency.p50, "p95": latency.p95, "p99": latency.p99]
            } ?? NSNull(),
        ]
    }

    /// The figures of ``metrics(_:)`` that are lower bounds because a count they add up stopped at its cap.
    static func cappedFigures(_ states: Set<JobState>) -> [String] {
        [
            ("available", [JobState.available]), ("waiting", [.scheduled, .retryable]), ("running", [.running]),
            ("dead_lettered", [.discarded]),
        ]
        .filter { _, counted in !states.isDisjoint(with: counted) }.map(\.0)
    }

    static func decision(_ decision: IngestDecision) -> [String: Any] {
        [
            "id": Self.optional(decision.id),
            "at": Self.time(decision.at),
            "code": decision.code,
            "reason": decision.reason,
            "queue": Self.optional(decision.queue),
            "namespace": Self.optional(decision.namespace),
            "kind": Self.optional(decision.kind),
            "jobs": decision.jobs,
            "source": Self.optional(decision.source),
        ]
    }

    static func limit(_ limit: EnqueueLimit) -> [String: Any] {
        ["scope": limit.scope.rawValue, "name": limit.name, "per_second": limit.perSecond, "burst": limit.burst]
    }

    static func schedule(_ record: CronScheduleRecord) -> [String: Any] {
        let schedule = record.schedule
        let options = schedule.options
        return [
            "name": schedule.name,
            "cron": schedule.expression.source,
            "time_zone": schedule.timeZone.identifier,
            "catch_up": schedule.catchUp.rawValue,
            "kind": schedule.kind,
            "args": Self.embedded(schedule.argumentsJSON),
            "queue": options.queue ?? NewJob.Defaults.queue,
            "namespace": options.namespace ?? NewJob.Defaults.namespace,
            "priority": options.priority ?? NewJob.Defaults.priority,
            "max_attempts": options.maxAttempts ?? NewJob.Defaults.maxAttempts,
            "timeout_ms": Self.optional(options.timeout?.wholeMilliseconds),
            "tags": options.tags ?? [],
            "next_tick_at": Self.time(record.nextTickAt),
            "last_tick_at": Self.time(record.lastTickAt),
            "last_job_id": Self.optional(record.lastJobID?.rawValue),
            "paused": record.isPaused,
            "paused_at": Self.time(record.pausedAt),
            "paused_by": Self.optional(record.pausedBy),
            "created_at": Self.time(record.createdAt),
            "updated_at": Self.time(record.updatedAt),
        ]
    }

    static func worker(_ worker: WorkerPresence) -> [String: Any] {
        [
            "id": worker.id,
            "pool": worker.pool,
            "queues": worker.queues,
            "running": worker.running,
            "kinds": worker.kinds,
            "workflows": worker.workflows,
            "started_at": Self.time(worker.startedAt),
            "heartbeat_at": Self.time(worker.heartbeatAt),
        ]
    }

    static func pool(_ pool: PoolInfo) -> [String: Any] {
        [
            "name": pool.name,
            "workers": pool.workers,
            "slots": pool.slots,
            "running": pool.running,
            "paused": pool.isPaused,
            "paused_at": Self.time(pool.pausedAt),
            "paused_by": Self.optional(pool.pausedBy),
        ]
    }

    static func tenant(_ tenant: TenantInfo) -> [String: Any] {
        [
            "name": tenant.name,
            "weight": tenant.weight,
            "max_running": Self.optional(tenant.maxRunning),
            "running": Self.optional(tenant.running),
            "updated_at": Self.time(tenant.updatedAt),
            "updated_by": Self.optional(tenant.updatedBy),
        ]
    }

    static func run(_ run: WorkflowRunRecord) -> [String: Any] {
        [
            "id": run.id.rawValue,
            "name": run.name,
            "version": run.version,
            "namespace": run.namespace,
            "queue": run.queue,
            "status": run.status.rawValue,
            "input": Self.embedded(run.inputJSON),
            "output": Self.embedded(run.outputJSON),
            "error_code": Self.optional(run.errorCode),
            "error_message": Self.optional(run.errorMessage),
            "job_id": run.jobID.rawValue,
            "parent_id": Self.optional(run.parentID?.rawValue),
            "forked_from": Self.optional(run.forkedFrom?.rawValue),
            "forked_at_step": Self.optional(run.forkedAtStep),
            "deadline": Self.time(run.deadline),
            "waits_for_version": run.waitsForVersion,
            "cancel_requested_at": Self.time(run.cancelRequestedAt),
            "created_at": Self.time(run.createdAt),
            "updated_at": Self.time(run.updatedAt),
            "finished_at": Self.time(run.finishedAt),
            "steps": run.steps.map { step -> [String: Any] in
                [
                    "name": step.name,
                    "position": step.position,
                    "kind": step.kind.rawValue,
                    "status": step.status.rawValue,
                    "attempts": step.attempts,
                    "output_bytes": step.outputBytes,
                    "error_code": Self.optional(step.errorCode),
                    "error_message": Self.optional(step.errorMessage),
                    "wait_for": Self.optional(step.waitFor),
                    "wake_at": Self.time(step.wakeAt),
                    "started_at": Self.time(step.startedAt),
                    "finished_at": Self.time(step.finishedAt),
                ]
            },
        ]
    }
}

/// A request body: a JSON object whose members are read with the checks that give a clear error per field.
struct APIBody {
    let object: [String: Any]

    init(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else {
            self.object = [:]
            return
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw ConveyorHTTPError.malformed("the body is not valid JSON")
        }
        guard let object = value as? [String: Any] else {
            throw ConveyorHTTPError.malformed("the body must be a JSON object")
        }
        self.object = object
    }

    func string(_ key: String) throws -> String? {
        guard let value = self.object[key], !(value is NSNull) else { return nil }
        guard let text = value as? String else { throw ConveyorHTTPError.malformed("\(key) must be a string") }
        return text
    }

    func requiredString(_ key: String) throws -> String {
        guard let text = try self.string(key) else { throw ConveyorHTTPError.malformed("\(key) is required") }
        return text
    }

    func int(_ key: String) throws -> Int? {
        guard let value = self.object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !Self.isBool(number), number.doubleValue == number.doubleValue.rounded(),
            abs(number.doubleValue) < 9.0e15
        else {
            throw ConveyorHTTPError.malformed("\(key) must be an integer")
        }
        return number.intValue
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = self.object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, Self.isBool(number) else {
            throw ConveyorHTTPError.malformed("\(key) must be true or false")
        }
        return number.boolValue
    }

    func strings(_ key: String) throws -> [String]? {
        guard let value = self.object[key], !(value is NSNull) else { return nil }
        guard let array = value as? [Any], let texts = array as? [String], texts.count == array.count else {
            throw ConveyorHTTPError.malformed("\(key) must be an array of strings")
        }
        return texts
    }

    func double(_ key: String) throws -> Double? {
        guard let value = self.object[key], !(value is NSNull) else { return nil }
        guard let number = value as? NSNumber, !Self.isBool(number) else {
            throw ConveyorHTTPError.malformed("\(key) must be a number")
        }
        return number.doubleValue
    }

    func date(_ key: String) throws -> Date? {
        guard let text = try self.string(key) else { return nil }
        guard let date = APIQuery.parseDate(text) else {
            throw ConveyorHTTPError.malformed("\(key) must be an ISO 8601 time such as 2026-12-02T10:00:00Z")
        }
        return date
    }

    /// A member as JSON text (any JSON value); `nil` when absent.
    func json(_ key: String) throws -> String? {
        guard let value = self.object[key] else { return nil }
        let data = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private static func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }
}

/// Query parameters, read with clear errors.
struct APIQuery {
    let values: [String: [String]]

    init(_ pairs: some Sequence<(key: Substring, value: Substring)>) {
        var values: [String: [String]] = [:]
        for (key, value) in pairs {
            values[String(key), default: []].append(String(value))
        }
        self.values = values
    }

    func string(_ key: String) throws -> String? {
        guard let all = self.values[key], let first = all.first else { return nil }
        guard all.count == 1 else { throw ConveyorHTTPError.parameter("\(key) is given more than once") }
        return first.isEmpty ? nil : first
    }

    /// Repeated or comma-separated values.
    func list(_ key: String) -> [String] {
        (self.values[key] ?? []).flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
    }

    /// The page size, clamped to 1…1000 (default 50).
    func limit() throws -> Int {
        guard let text = try self.string("limit") else { return 50 }
        guard let value = Int(text) else { throw ConveyorHTTPError.parameter("limit must be an integer") }
        return min(max(value, 1), 1000)
    }

    func date(_ key: String) throws -> Date? {
        guard let text = try self.string(key) else { return nil }
        guard let date = Self.parseDate(text) else {
            throw ConveyorHTTPError.parameter("\(key) must be an ISO 8601 time such as 2026-12-02T10:00:00Z")
        }
        return date
    }

    static func parseDate(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) {
            return date
        }
        return try? Date(text, strategy: Date.ISO8601FormatStyle())
    }
}
