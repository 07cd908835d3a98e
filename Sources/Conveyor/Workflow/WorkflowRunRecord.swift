import Foundation

/// A workflow name and version.
public struct WorkflowVersion: Sendable, Hashable {
    public var name: String
    public var version: Int

    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }
}

/// A run as stored: what `client.workflows.get(_:)` and `list(_:)` return.
public struct WorkflowRunRecord: Sendable, Hashable {
    public var id: WorkflowRunID
    public var name: String
    public var version: Int
    public var namespace: String
    public var queue: String
    public var status: WorkflowRunStatus
    public var inputJSON: String
    public var outputJSON: String?
    public var errorCode: String?
    public var errorMessage: String?
    /// The job that executes the run.
    public var jobID: JobID
    public var parentID: WorkflowRunID?
    /// For a fork: the run it was forked from, and the step from which it ran again.
    public var forkedFrom: WorkflowRunID?
    public var forkedAtStep: String?
    public var deadline: Date?
    /// Set when the run waits because no worker that fetched it has its version.
    public var waitsForVersion: Bool
    public var cancelRequestedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var finishedAt: Date?
    /// Stored steps in position order (empty in lists).
    public var steps: [WorkflowStepRecord]

    public init(
        id: WorkflowRunID,
        name: String,
        version: Int,
        namespace: String,
        queue: String,
        status: WorkflowRunStatus,
        inputJSON: String,
        outputJSON: String?,
        errorCode: String?,
        errorMessage: String?,
        jobID: JobID,
        parentID: WorkflowRunID?,
        forkedFrom: WorkflowRunID?,
        forkedAtStep: String?,
        deadline: Date?,
        waitsForVersion: Bool,
        cancelRequestedAt: Date?,
        createdAt: Date,
        updatedAt: Date,
        finishedAt: Date?,
        steps: [WorkflowStepRecord]
    ) {
        self.id = id
        self.name = name
        self.version = version
        self.namespace = namespace
        self.queue = queue
        self.status = status
        self.inputJSON = inputJSON
        self.outputJSON = outputJSON
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.jobID = jobID
        self.parentID = parentID
        self.forkedFrom = forkedFrom
        self.forkedAtStep = forkedAtStep
        self.deadline = deadline
        self.waitsForVersion = waitsForVersion
        self.cancelRequestedAt = cancelRequestedAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
        self.steps = steps
    }

    /// Decodes the output of a completed run.
    public func output<Output: Decodable>(as type: Output.Type) throws -> Output? {
        guard let json = self.outputJSON else { return nil }
        return try WorkflowCoding.decoder.decode(Output.self, from: Data(json.utf8))
    }
}

/// A stored step of a run.
public struct WorkflowStepRecord: Sendable, Hashable {
    public var name: String
    /// The step's index among the run's durable calls (-1 for `patched` markers).
    public var position: Int
    public var kind: WorkflowStepKind
    public var status: WorkflowStepStatus
    public var attempts: Int
    public var outputJSON: String?
    /// The size of the stored output, in bytes.
    public var outputBytes: Int
    public var errorCode: String?
    public var errorMessage: String?
    /// For a signal wait, the signal's name; for a child, its run id.
    public var waitFor: String?
    /// For a waiting sleep or a signal wait with a timeout: when it is due.
    public var wakeAt: Date?
    public var startedAt: Date
    public var finishedAt: Date?

    public init(
        name: String,
        position: Int,
        kind: WorkflowStepKind,
        status: WorkflowStepStatus,
        attempts: Int,
        outputJSON: String?,
        outputBytes: Int,
        errorCode: String?,
        errorMessage: String?,
        waitFor: String?,
        wakeAt: Date?,
        startedAt: Date,
        finishedAt: Date?
    ) {
        self.name = name
        self.position = position
        self.kind = kind
        self.status = status
        self.attempts = attempts
        self.outputJSON = outputJSON
        self.outputBytes = outputBytes
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.waitFor = waitFor
        self.wakeAt = wakeAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// Filters for listing runs; values are matched exactly and sent as bound parameters.
public struct WorkflowRunFilter: Sendable, Hashable {
    public var statuses: [WorkflowRunStatus]
    public var name: String?
    public var namespace: String?
    public var parentID: WorkflowRunID?
    /// Page size, 1–1000 (default 50).
    public var limit: Int
    /// The ``WorkflowRunPage/nextCursor`` of the previous page.
    public var cursor: String?

    public init(
        statuses: [WorkflowRunStatus] = [],
        name: String? = nil,
        namespace: String? = nil,
        parentID: WorkflowRunID? = nil,
        limit: Int = 50,
        cursor: String? = nil
    ) {
        self.statuses = statuses
        self.name = name
        self.namespace = namespace
        self.parentID = parentID
        self.limit = limit
        self.cursor = cursor
    }
}

/// One page of runs.
public struct WorkflowRunPage: Sendable {
    public var runs: [WorkflowRunRecord]
    public var nextCursor: String?

    public init(runs: [WorkflowRunRecord], nextCursor: String?) {
        self.runs = runs
        self.nextCursor = nextCursor
    }
}
