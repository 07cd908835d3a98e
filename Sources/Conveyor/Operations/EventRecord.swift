import Foundation

/// What an event is about.
public enum EventSubject: Sendable, Hashable {
    case job(JobID)
    case queue(String)
    case workflow(WorkflowRunID)
    /// A cron schedule, by name.
    case schedule(String)
    /// A worker pool, by name.
    case pool(String)
    /// A tenant (a namespace with settings), by name.
    case tenant(String)

    /// The subject's kind as stored: `job`, `queue`, `workflow`, `schedule`, `pool` or `tenant`.
    public var kind: String {
        switch self {
        case .job: "job"
        case .queue: "queue"
        case .workflow: "workflow"
        case .schedule: "schedule"
        case .pool: "pool"
        case .tenant: "tenant"
        }
    }

    /// The subject's id as stored (a job id in decimal, a queue name, a run id, a schedule, pool or tenant name).
    public var id: String {
        switch self {
        case .job(let id): "\(id.rawValue)"
        case .queue(let name): name
        case .workflow(let id): id.rawValue
        case .schedule(let name): name
        case .pool(let name): name
        case .tenant(let name): name
        }
    }
}

/// An operator action or a state change recorded in the `events` table, in the transaction of the change.
///
/// Attempts are not events: they stay in the job's attempt history (``JobRecord/attempts``), written with the
/// result. ``JobTimeline`` merges both.
public struct EventRecord: Sendable, Hashable {
    /// Stable action names.
    public enum Action: String, Sendable, Hashable, CaseIterable, Codable {
        /// A job that was not running was cancelled.
        case cancelled
        /// A running job (or a run) was asked to stop; its worker sees it at the next heartbeat.
        case cancelRequested = "cancel_requested"
        /// A dead-lettered or cancelled job was made available again.
        case retried
        /// A finished job was copied into a new job (`details.replay` holds the new id).
        case replayed
        /// A queue, a schedule or a worker pool was paused or resumed.
        case paused, resumed
        /// A signal was sent to a run (`details.name`).
        case signalled
        /// A run was forked (`details.fork` holds the new run, `details.step` the step).
        case forked
        /// A dead-lettered job was deleted by a bulk discard, or a schedule was deleted.
        case deleted
        /// A schedule was created, or replaced with a different definition (`details` holds its cron and zone).
        case defined
        /// A queue's concurrency limit was set or removed (`details.max_running`: the limit, or `none`).
        case limitChanged = "limit_changed"
        /// A queue was made fair or first-come (`details.fair`: `true` or `false`).
        case fairnessChanged = "fairness_changed"
        /// A tenant's settings were set (`details.weight`) or removed (`details.weight`: `default`).
        case settingsChanged = "settings_changed"
    }

    public var id: Int64
    public var at: Date
    public var subject: EventSubject
    public var action: Action
    public var fromState: String?
    public var toState: String?
    /// Who did it: `token:<name>` for the HTTP API, `cli` for the command line, what the application passed, or
    /// `nil` for the engine itself.
    public var performedBy: String?
    /// Facts of the event as a flat JSON object (string values).
    public var details: [String: String]

    public init(
        id: Int64,
        at: Date,
        subject: EventSubject,
        action: Action,
        fromState: String?,
        toState: String?,
        performedBy: String?,
        details: [String: String]
    ) {
        self.id = id
        self.at = at
        self.subject = subject
        self.action = action
        self.fromState = fromState
        self.toState = toState
        self.performedBy = performedBy
        self.details = details
    }
}
