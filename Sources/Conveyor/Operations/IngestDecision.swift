import Foundation

/// A refused enqueue, recorded in `ingest_decisions` with its stable code and reason.
public struct IngestDecision: Sendable, Hashable {
    public var id: Int64?
    public var at: Date?
    /// The refusal's ``ConveyorError/Code`` (`ARGUMENTS_TOO_LARGE`, `INVALID_QUEUE_NAME`, `RATE_LIMITED`, …).
    public var code: String
    public var reason: String
    public var queue: String?
    public var namespace: String?
    public var kind: String?
    /// How many jobs the refused call held.
    public var jobs: Int
    /// Where the enqueue came from (`api`, `client`, `transaction`), if known.
    public var source: String?

    public init(
        id: Int64? = nil,
        at: Date? = nil,
        code: String,
        reason: String,
        queue: String?,
        namespace: String?,
        kind: String?,
        jobs: Int,
        source: String?
    ) {
        self.id = id
        self.at = at
        self.code = code
        self.reason = reason
        self.queue = queue
        self.namespace = namespace
        self.kind = kind
        self.jobs = jobs
        self.source = source
    }
}

/// Filters for listing ingest decisions, newest first.
public struct IngestDecisionFilter: Sendable, Hashable {
    public var code: String?
    public var queue: String?
    public var namespace: String?
    /// Page size, 1–1000 (default 50).
    public var limit: Int
    /// The ``IngestDecisionPage/nextCursor`` of the previous page.
    public var cursor: String?

    public init(
        code: String? = nil,
        queue: String? = nil,
        namespace: String? = nil,
        limit: Int = 50,
        cursor: String? = nil
    ) {
        self.code = code
        self.queue = queue
        self.namespace = namespace
        self.limit = limit
        self.cursor = cursor
    }
}

/// One page of ingest decisions.
public struct IngestDecisionPage: Sendable, Hashable {
    public var decisions: [IngestDecision]
    public var nextCursor: String?

    public init(decisions: [IngestDecision], nextCursor: String?) {
        self.decisions = decisions
        self.nextCursor = nextCursor
    }
}

/// An enqueue rate limit on a queue or a namespace: a token bucket of `burst` tokens refilled at `perSecond`,
/// kept in the database so that it holds across every process that enqueues.
public struct EnqueueLimit: Sendable, Hashable {
    public enum Scope: String, Sendable, Hashable, CaseIterable, Codable {
        case queue
        case namespace
    }

    public var scope: Scope
    public var name: String
    public var perSecond: Double
    public var burst: Int

    public init(scope: Scope, name: String, perSecond: Double, burst: Int) {
        self.scope = scope
        self.name = name
        self.perSecond = perSecond
        self.burst = burst
    }
}
