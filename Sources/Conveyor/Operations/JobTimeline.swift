import ConveyorCore
import Foundation

/// Everything that happened to a job, in order: its enqueue, every attempt with its worker, outcome, error and
/// duration, and every operator action with who did it.
///
/// Attempts come from the job's attempt history and actions from the `events` table; both are written in the
/// transaction of the change. Staging a due job from `scheduled` or `retryable` to `available` writes no row (it is
/// on the hot path): the next attempt's start shows when it ran.
public struct JobTimeline: Sendable, Hashable {
    /// One entry.
    public struct Entry: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable, Codable {
            /// The job was inserted.
            case enqueued
            /// An attempt ended.
            case attempt
            /// The attempt running now.
            case running
            /// An operator action or recorded state change (see ``EventRecord``).
            case event
        }

        public var kind: Kind
        /// When it happened (for ``Kind/attempt``, when the attempt ended).
        public var at: Date
        public var fromState: String?
        public var toState: String?
        /// Attempt entries: the attempt's number, worker, start, outcome, error and duration.
        public var attempt: Int?
        public var worker: String?
        public var startedAt: Date?
        public var outcome: String?
        public var errorCode: String?
        public var error: String?
        public var durationMicroseconds: Int64?
        /// Event entries: the action and who performed it.
        public var action: String?
        public var performedBy: String?
        public var details: [String: String]
        /// The entry in one line.
        public var summary: String

        public init(kind: Kind, at: Date, summary: String) {
            self.kind = kind
            self.at = at
            self.details = [:]
            self.summary = summary
        }
    }

    public var jobID: JobID
    public var entries: [Entry]

    public init(jobID: JobID, entries: [Entry]) {
        self.jobID = jobID
        self.entries = entries
    }

    /// Merges a job's history and its events in time order.
    public init(job: JobRecord, events: [EventRecord]) {
        var entries: [Entry] = []
        var enqueued = Entry(
            kind: .enqueued,
            at: job.createdAt,
            summary: job.replayOf.map { "enqueued as a replay of job \($0.rawValue)" } ?? "enqueued"
        )
        let initial: JobState = job.runAt > job.createdAt.addingTimeInterval(0.001) ? .scheduled : .available
        enqueued.toState = initial.rawValue
        if let replayOf = job.replayOf { enqueued.details["replay_of"] = "\(replayOf.rawValue)" }
        entries.append(enqueued)

        for (index, attempt) in job.attempts.enumerated() {
            let isLast = index == job.attempts.count - 1
            var entry = Entry(kind: .attempt, at: attempt.finishedAt, summary: "")
            entry.attempt = attempt.attempt
            entry.worker = attempt.worker
            entry.startedAt = attempt.startedAt
            entry.outcome = attempt.outcome.rawValue
            entry.errorCode = attempt.errorCode?.rawValue
            entry.error = attempt.error
            entry.durationMicroseconds = attempt.durationMicroseconds
            entry.fromState = JobState.running.rawValue
            entry.toState = Self.state(after: attempt, isLast: isLast, job: job)?.rawValue
            let milliseconds = Double(attempt.durationMicroseconds) / 1000
            var summary = "attempt \(attempt.attempt) on \(attempt.worker): \(attempt.outcome.rawValue)"
            if let code = attempt.errorCode { summary += " (\(code.rawValue))" }
            summary += String(format: " after %.1f ms", milliseconds)
            if let to = entry.toState { summary += " → \(to)" }
            entry.summary = summary
            entries.append(entry)
        }

        if job.state == .running, let worker = job.leaseOwner {
            var entry = Entry(
                kind: .running,
                at: job.leaseExpiresAt ?? job.runAt,
                summary: "attempt \(job.attempt) running on \(worker)"
                    + (job.leaseExpiresAt.map { ", lease until \(ExplainTime.clock($0))" } ?? "")
            )
            entry.attempt = job.attempt
            entry.worker = worker
            entry.toState = JobState.running.rawValue
            entries.append(entry)
        }

        for event in events {
            var entry = Entry(kind: .event, at: event.at, summary: "")
            entry.action = event.action.rawValue
            entry.fromState = event.fromState
            entry.toState = event.toState
            entry.performedBy = event.performedBy
            entry.details = event.details
            var summary = event.action.rawValue.replacingOccurrences(of: "_", with: " ")
            if let by = event.performedBy { summary += " by \(by)" }
            if let replay = event.details["replay"] { summary += " as job \(replay)" }
            if let from = event.fromState, let to = event.toState, from != to { summary += " (\(from) → \(to))" }
            entry.summary = summary
            entries.append(entry)
        }
        // Stable: entries at the same moment keep the order above (enqueue, attempts, events).
        self.init(
            jobID: job.id,
            entries: entries.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(
                \.element
            )
        )
    }

    /// The state an attempt's result led to, as far as the history tells.
    private static func state(after attempt: AttemptRecord, isLast: Bool, job: JobRecord) -> JobState? {
        switch attempt.outcome {
        case .completed: return .completed
        case .snoozed: return .scheduled
        case .cancelled: return .cancelled
        case .discarded: return .discarded
        case .released: return .available
        case .suspended: return isLast && job.state != .running ? job.state : .scheduled
        case .failed:
            if isLast, job.state == .discarded { return .discarded }
            return .retryable
        }
    }
}
