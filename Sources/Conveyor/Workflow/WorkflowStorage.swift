import ConveyorCore
import Foundation

// The values the engine and a storage driver exchange about workflow runs (see the workflow part of ``JobStore``).
// Applications do not use them; they use `client.workflows` and ``WorkflowContext``.

/// The job kind that executes workflow runs: its arguments are `{"run": id}`.
public enum WorkflowJob {
    public static let kind = "conveyor.workflow"

    /// The wait before a run whose worker died resumes elsewhere, after its lease expired: 100 ms doubling to a
    /// minute with each lost lease, so a run whose code crashes its worker does not take workers down in a loop.
    public static let resumePolicy = RetryPolicy(base: .milliseconds(100), multiplier: 2, maximum: .seconds(60))

    /// Decodes the run id from a workflow job's arguments.
    public static func runID(fromArguments json: String) -> WorkflowRunID? {
        struct Arguments: Decodable { var run: String }
        return (try? JSONDecoder().decode(Arguments.self, from: Data(json.utf8))).map { WorkflowRunID($0.run) }
    }
}

/// What a durable call of a workflow is.
public enum WorkflowStepKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// ``WorkflowContext/step(_:retryPolicy:maxAttempts:timeout:_:)``.
    case step
    /// ``WorkflowContext/sleep(_:for:)``.
    case sleep
    /// ``WorkflowContext/waitForSignal(_:as:timeout:step:)``.
    case signal
    /// ``WorkflowContext/child(_:input:id:)``.
    case child
    /// ``WorkflowContext/patched(_:)``.
    case patch
}

/// Where a stored step stands.
public enum WorkflowStepStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case completed
    case failed
    /// A sleep, signal wait or child that has not ended yet.
    case waiting
}

/// A run to insert, with the job that executes it.
public struct NewWorkflowRun: Sendable {
    public var id: WorkflowRunID
    public var name: String
    public var version: Int
    public var namespace: String
    public var queue: String
    public var inputJSON: String
    public var deadline: Date?
    public var parentID: WorkflowRunID?
    /// For a fork: the run it copies and the first step it runs again.
    public var forkedFrom: WorkflowRunID?
    public var forkedAtStep: String?

    public init(
        id: WorkflowRunID,
        name: String,
        version: Int,
        namespace: String,
        queue: String,
        inputJSON: String,
        deadline: Date? = nil,
        parentID: WorkflowRunID? = nil,
        forkedFrom: WorkflowRunID? = nil,
        forkedAtStep: String? = nil
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.namespace = namespace
        self.queue = queue
        self.inputJSON = inputJSON
        self.deadline = deadline
        self.parentID = parentID
        self.forkedFrom = forkedFrom
        self.forkedAtStep = forkedAtStep
    }
}

/// The result of starting a run.
public struct StartedWorkflowRun: Sendable, Hashable {
    public var id: WorkflowRunID
    /// The job that executes the run.
    public var jobID: JobID
    /// `true` when a run with this id existed already: nothing was started, and this is that run.
    public var isExisting: Bool

    public init(id: WorkflowRunID, jobID: JobID, isExisting: Bool) {
        self.id = id
        self.jobID = jobID
        self.isExisting = isExisting
    }
}

/// A run as its executor loads it: the row, every stored step, the signals not yet received, and its children.
public struct WorkflowExecutionState: Sendable {
    public var id: WorkflowRunID
    public var name: String
    public var version: Int
    public var namespace: String
    public var status: WorkflowRunStatus
    public var inputJSON: String
    /// The run's deadline has passed, by the database's clock.
    public var deadlinePassed: Bool
    public var cancelRequested: Bool
    public var steps: [StoredWorkflowStep]
    /// Signals sent and not yet received, oldest first.
    public var signals: [PendingWorkflowSignal]
    public var children: [WorkflowChildState]

    public init(
        id: WorkflowRunID,
        name: String,
        version: Int,
        namespace: String,
        status: WorkflowRunStatus,
        inputJSON: String,
        deadlinePassed: Bool,
        cancelRequested: Bool,
        steps: [StoredWorkflowStep],
        signals: [PendingWorkflowSignal],
        children: [WorkflowChildState]
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.namespace = namespace
        self.status = status
        self.inputJSON = inputJSON
        self.deadlinePassed = deadlinePassed
        self.cancelRequested = cancelRequested
        self.steps = steps
        self.signals = signals
        self.children = children
    }
}

/// A stored step, as a resumed run replays it.
public struct StoredWorkflowStep: Sendable, Hashable {
    public var name: String
    public var position: Int
    public var kind: WorkflowStepKind
    public var status: WorkflowStepStatus
    public var outputJSON: String?
    public var errorCode: String?
    public var errorMessage: String?
    public var attempts: Int
    /// The step ran beside others of its run (`async let`, task groups): its position may differ on replay.
    public var concurrent: Bool
    /// For a signal wait, the signal's name; for a child, its run id.
    public var waitFor: String?
    /// For a waiting sleep or signal wait: its time has come, by the database's clock.
    public var isDue: Bool

    public init(
        name: String,
        position: Int,
        kind: WorkflowStepKind,
        status: WorkflowStepStatus,
        outputJSON: String?,
        errorCode: String?,
        errorMessage: String?,
        attempts: Int,
        concurrent: Bool,
        waitFor: String?,
        isDue: Bool
    ) {
        self.name = name
        self.position = position
        self.kind = kind
        self.status = status
        self.outputJSON = outputJSON
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.attempts = attempts
        self.concurrent = concurrent
        self.waitFor = waitFor
        self.isDue = isDue
    }
}

/// A signal sent to a run and not yet received.
public struct PendingWorkflowSignal: Sendable, Hashable {
    public var id: Int64
    public var name: String
    public var payloadJSON: String

    public init(id: Int64, name: String, payloadJSON: String) {
        self.id = id
        self.name = name
        self.payloadJSON = payloadJSON
    }
}

/// A child run, as its parent sees it.
public struct WorkflowChildState: Sendable, Hashable {
    public var id: WorkflowRunID
    public var status: WorkflowRunStatus
    public var outputJSON: String?
    public var errorCode: String?
    public var errorMessage: String?

    public init(
        id: WorkflowRunID,
        status: WorkflowRunStatus,
        outputJSON: String?,
        errorCode: String?,
        errorMessage: String?
    ) {
        self.id = id
        self.status = status
        self.outputJSON = outputJSON
        self.errorCode = errorCode
        self.errorMessage = errorMessage
    }
}

/// Writes of running workflow executions that commit together, in one transaction (DESIGN.md invariant 4).
///
/// Every write names the lease of the execution that makes it: a write whose lease is no longer held (it expired
/// and another worker took the run over) is skipped, and reported in ``WorkflowCommitResult/fenced``.
public struct WorkflowUnitOfWork: Sendable {
    /// Steps to store (new ones, or waiting ones that ended).
    public var steps: [WorkflowStepWrite] = []
    /// Children to start, each with its parent's lease.
    public var childStarts: [(lease: JobLease, run: NewWorkflowRun)] = []
    /// Runs that suspend: their job waits until the earliest timer among their waiting steps (or their
    /// deadline), or until a signal or child they wait for makes it runnable (at once when one already did).
    public var suspensions: [WorkflowSuspension] = []
    /// Runs that ended: their job is finished and their parent, if waiting, becomes runnable.
    public var endings: [WorkflowRunEnding] = []
    /// Results of workflow jobs written after the writes above (an execution released at shutdown).
    public var completions: [JobCompletion] = []

    public init() {}

    public var isEmpty: Bool {
        self.steps.isEmpty && self.childStarts.isEmpty && self.suspensions.isEmpty && self.endings.isEmpty
            && self.completions.isEmpty
    }

    /// Appends `other`'s writes after these.
    public mutating func append(_ other: WorkflowUnitOfWork) {
        self.steps += other.steps
        self.childStarts += other.childStarts
        self.suspensions += other.suspensions
        self.endings += other.endings
        self.completions += other.completions
    }

    /// Every lease the writes present.
    public var leases: Set<JobLease> {
        var leases = Set(self.steps.map(\.lease))
        leases.formUnion(self.childStarts.map(\.lease))
        leases.formUnion(self.suspensions.map(\.lease))
        leases.formUnion(self.endings.map(\.lease))
        leases.formUnion(self.completions.map(\.lease))
        return leases
    }
}

/// One step to store.
public struct WorkflowStepWrite: Sendable {
    public var lease: JobLease
    public var runID: WorkflowRunID
    public var name: String
    public var position: Int
    public var kind: WorkflowStepKind
    public var status: WorkflowStepStatus
    public var outputJSON: String?
    public var errorCode: String?
    public var errorMessage: String?
    public var attempts: Int
    public var concurrent: Bool
    public var waitFor: String?
    /// For a waiting sleep or signal wait with a timeout: how long from now until it is due.
    public var wakeAfter: Duration?
    public var durationMicroseconds: Int64
    /// The signal this step received: it is marked received in the same transaction.
    public var receivedSignal: Int64?

    public init(
        lease: JobLease,
        runID: WorkflowRunID,
        name: String,
        position: Int,
        kind: WorkflowStepKind,
        status: WorkflowStepStatus,
        outputJSON: String? = nil,
        errorCode: String? = nil,
        errorMessage: String? = nil,
        attempts: Int = 1,
        concurrent: Bool = false,
        waitFor: String? = nil,
        wakeAfter: Duration? = nil,
        durationMicroseconds: Int64 = 0,
        receivedSignal: Int64? = nil
    ) {
        self.lease = lease
        self.runID = runID
        self.name = name
        self.position = position
        self.kind = kind
        self.status = status
        self.outputJSON = outputJSON
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.attempts = attempts
        self.concurrent = concurrent
        self.waitFor = waitFor
        self.wakeAfter = wakeAfter
        self.durationMicroseconds = durationMicroseconds
        self.receivedSignal = receivedSignal
    }
}

/// A run that suspends.
public struct WorkflowSuspension: Sendable {
    public var lease: JobLease
    public var runID: WorkflowRunID
    public var durationMicroseconds: Int64
    /// No worker that fetched it has the run's workflow version: it waits until one starts.
    public var waitsForVersion: Bool

    public init(
        lease: JobLease,
        runID: WorkflowRunID,
        durationMicroseconds: Int64,
        waitsForVersion: Bool = false
    ) {
        self.lease = lease
        self.runID = runID
        self.durationMicroseconds = durationMicroseconds
        self.waitsForVersion = waitsForVersion
    }
}

/// A run that ended.
public struct WorkflowRunEnding: Sendable {
    public var lease: JobLease
    public var runID: WorkflowRunID
    /// `completed`, `failed` or `cancelled`.
    public var status: WorkflowRunStatus
    public var outputJSON: String?
    public var errorCode: String?
    public var errorMessage: String?
    public var durationMicroseconds: Int64

    public init(
        lease: JobLease,
        runID: WorkflowRunID,
        status: WorkflowRunStatus,
        outputJSON: String? = nil,
        errorCode: String? = nil,
        errorMessage: String? = nil,
        durationMicroseconds: Int64
    ) {
        self.lease = lease
        self.runID = runID
        self.status = status
        self.outputJSON = outputJSON
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.durationMicroseconds = durationMicroseconds
    }
}

/// What a ``WorkflowUnitOfWork`` commit did.
public struct WorkflowCommitResult: Sendable {
    /// Leases that were not held: every write presenting one was skipped.
    public var fenced: Set<JobLease>
    /// Children that were not started because a run with their id exists and is not a child of the parent.
    public var conflictingChildren: Set<WorkflowRunID>
    /// For each suspended run, how long until its job runs again by its own timers (a sleep, a timeout, the
    /// deadline); absent when only a signal, a child or a worker with its version can wake it.
    public var wakeAfter: [WorkflowRunID: Duration]

    public init(
        fenced: Set<JobLease> = [],
        conflictingChildren: Set<WorkflowRunID> = [],
        wakeAfter: [WorkflowRunID: Duration] = [:]
    ) {
        self.fenced = fenced
        self.conflictingChildren = conflictingChildren
        self.wakeAfter = wakeAfter
    }
}
