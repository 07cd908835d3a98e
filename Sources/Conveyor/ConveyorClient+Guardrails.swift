import ConveyorCore
import Foundation
import Logging
import Synchronization

extension ConveyorClient {
    /// Enqueue rate limits per queue and namespace.
    public var limits: Limits { Limits(client: self) }

    /// The record of refused enqueues.
    public var ingest: Ingest { Ingest(client: self) }

    /// Set, remove and list enqueue rate limits: token buckets kept in `enqueue_limits`, which every process that
    /// enqueues draws from, so that a limit holds across processes. An enqueue into a limited queue or namespace
    /// takes one token per job, all of a batch's tokens or none; when too few are left it fails with
    /// `RATE_LIMITED`, writes nothing, and is recorded in `ingest_decisions`.
    ///
    /// A client reads the limits at most once per ``ConveyorClient/Configuration/enqueueLimitRefresh``, so other
    /// processes' clients apply a change within that interval; this client applies its own changes at once.
    public struct Limits: Sendable {
        let client: ConveyorClient

        /// Creates or replaces the limit of a queue or namespace (one row of `enqueue_limits`, upserted in its own
        /// transaction). The bucket starts full, with `burst` tokens, and refills at `perSecond`.
        ///
        /// - Throws: `INVALID_QUEUE_NAME` or `INVALID_NAMESPACE` for a name that breaks the naming rules;
        ///   `INVALID_OPTION` unless `perSecond` is finite, above 0 and at most 1,000,000 and `burst` is 1 to
        ///   1,000,000. Nothing is stored then.
        public func set(_ limit: EnqueueLimit) async throws {
            try limit.validate()
            defer { self.client.limitCache.invalidate() }
            try await self.client.store.setEnqueueLimit(limit, logger: self.client.logger)
        }

        /// Deletes the limit of a queue or namespace, whose enqueues are then no longer limited. Returns whether
        /// one existed.
        ///
        /// - Throws: `INVALID_QUEUE_NAME` or `INVALID_NAMESPACE` for a name that breaks the naming rules.
        @discardableResult
        public func remove(scope: EnqueueLimit.Scope, name: String) async throws -> Bool {
            try EnqueueLimit.validate(scope: scope, name: name)
            defer { self.client.limitCache.invalidate() }
            return try await self.client.store.removeEnqueueLimit(scope: scope, name: name, logger: self.client.logger)
        }

        /// Every configured limit, ordered by scope and name (read from `enqueue_limits`, not from this client's
        /// copy).
        public func list() async throws -> [EnqueueLimit] {
            try await self.client.store.enqueueLimits(logger: self.client.logger)
        }
    }

    /// Read the refused enqueues recorded in `ingest_decisions`: every enqueue that a guardrail refused (arguments
    /// too large or malformed, an invalid kind, queue, namespace or option, a rate limit), with its stable code, its
    /// reason and where it came from. A worker deletes decisions older than
    /// ``ConveyorWorker/Configuration/ingestDecisionRetention``.
    public struct Ingest: Sendable {
        let client: ConveyorClient

        /// Lists recorded refusals newest first, one page at a time: pass the returned `nextCursor` back in the
        /// filter for the next page. Reads only `ingest_decisions`.
        ///
        /// - Throws: `INVALID_FILTER` for a limit outside 1–1000, a cursor no page returned, or an invalid code;
        ///   `INVALID_QUEUE_NAME` or `INVALID_NAMESPACE` for an invalid name to filter on.
        public func decisions(
            _ filter: IngestDecisionFilter = IngestDecisionFilter()
        ) async throws
            -> IngestDecisionPage
        {
            try await self.client.store.ingestDecisions(matching: filter, logger: self.client.logger)
        }
    }
}

extension EnqueueLimit {
    /// The highest rate a limit may have, in tokens (jobs) per second.
    public static let maximumPerSecond: Double = 1_000_000
    /// The largest burst a limit may have, in tokens (jobs).
    public static let maximumBurst = 1_000_000

    /// Checks the limit before it is stored.
    ///
    /// - Throws: `INVALID_QUEUE_NAME` or `INVALID_NAMESPACE` for the name; `INVALID_OPTION` unless ``perSecond`` is
    ///   finite, above 0 and at most ``maximumPerSecond`` and ``burst`` is 1 to ``maximumBurst``.
    public func validate() throws {
        try Self.validate(scope: self.scope, name: self.name)
        guard self.perSecond.isFinite, self.perSecond > 0, self.perSecond <= Self.maximumPerSecond else {
            throw ConveyorError(
                .invalidOption,
                "per-second rate must be a finite number above 0 and at most 1000000, got \(self.perSecond)"
            )
        }
        guard (1...Self.maximumBurst).contains(self.burst) else {
            throw ConveyorError(.invalidOption, "burst must be between 1 and 1000000, got \(self.burst)")
        }
    }

    /// Checks a limit's name by the rules of its scope's names.
    ///
    /// - Throws: `INVALID_QUEUE_NAME` or `INVALID_NAMESPACE`.
    public static func validate(scope: Scope, name: String) throws {
        guard let violation = NameValidation.checkLabel(name) else { return }
        switch scope {
        case .queue: throw ConveyorError(.invalidQueueName, "invalid queue name: \(violation.explanation)")
        case .namespace: throw ConveyorError(.invalidNamespace, "invalid namespace: \(violation.explanation)")
        }
    }
}

extension IngestDecisionFilter {
    /// The id below which the page starts, decoded from ``cursor``.
    ///
    /// - Throws: `INVALID_FILTER` when the cursor is not one that a previous page returned, or the limit is out of
    ///   range.
    public func validatedCursor() throws -> Int64? {
        guard (1...1000).contains(self.limit) else {
            throw ConveyorError(.invalidFilter, "limit must be between 1 and 1000, got \(self.limit)")
        }
        guard let cursor = self.cursor else { return nil }
        guard cursor.hasPrefix("d"), let value = Int64(cursor.dropFirst()), value > 0 else {
            throw ConveyorError(.invalidFilter, "cursor is not one returned by a previous page")
        }
        return value
    }

    /// The cursor that continues after the decision with id `id`.
    public static func cursor(after id: Int64) -> String { "d\(id)" }
}

/// Why an enqueue limit refused an enqueue: the ``ConveyorError/underlying`` error of a `RATE_LIMITED` error, for
/// callers that act on when to retry (the HTTP layer's `Retry-After`).
public struct EnqueueLimitExceeded: Error, Sendable, Hashable, CustomStringConvertible {
    /// Every bucket that had too few tokens.
    public var refusals: [EnqueueLimitRefusal]
    /// How many jobs the refused call held.
    public var jobs: Int

    public init(refusals: [EnqueueLimitRefusal], jobs: Int) {
        self.refusals = refusals
        self.jobs = jobs
    }

    /// How long until every refusing bucket holds the tokens the call needs; `nil` when one never will (the call
    /// holds more jobs than a burst): such a call must be split.
    public var retryAfter: Duration? {
        var longest = Duration.zero
        for refusal in self.refusals {
            guard let wait = refusal.retryAfter else { return nil }
            longest = max(longest, wait)
        }
        return longest
    }

    /// What was refused and when to retry, naming the limits.
    public var description: String {
        let limits = self.refusals.map { refusal in
            "\(refusal.limit.scope.rawValue) \(refusal.limit.name) (\(Self.number(refusal.limit.perSecond)) per "
                + "second, burst \(refusal.limit.burst))"
        }
        .joined(separator: ", ")
        guard let retryAfter = self.retryAfter else {
            let burst = self.refusals.filter { $0.retryAfter == nil }.map(\.limit.burst).min() ?? 0
            return "enqueue rate limit of \(limits): \(self.jobs) jobs are more than the burst of \(burst) allows at "
                + "once; enqueue them in smaller batches"
        }
        return "enqueue rate limit of \(limits) reached for \(self.jobs) job(s); retry after "
            + "\(Self.number(retryAfter.inSeconds)) s"
    }

    /// A number as a person writes it: no trailing zeros, at most three decimals.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        if abs(value) < 0.001 { return "\(value)" }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// Where an enqueue came from, recorded with a refusal as ``IngestDecision/source``.
package enum EnqueueSource: String, Sendable {
    /// The library's enqueue calls.
    case client
    /// An enqueue inside a caller's transaction.
    case transaction
    /// The HTTP admin API.
    case api
}

// MARK: Enforcement

extension ConveyorClient {
    /// The codes of validation errors that the enqueue paths record as refusals.
    static let refusalCodes: Set<ConveyorError.Code> = [
        .argumentsTooLarge, .malformedArguments, .invalidKind, .invalidQueueName, .invalidNamespace, .invalidOption,
    ]

    /// Runs an enqueue; when it throws a validation error (a code of ``refusalCodes``), records the refusal in
    /// `ingest_decisions` before rethrowing it. Recording is best effort: a failure to record is logged at debug
    /// and the validation error is still what the caller gets.
    func recordingRefusals<Result>(
        _ source: EnqueueSource,
        _ subject: @autoclosure () -> RefusalSubject,
        _ body: () async throws -> Result
    ) async throws -> Result {
        do {
            return try await body()
        } catch let error as ConveyorError where Self.refusalCodes.contains(error.code) {
            let subject = subject()
            await self.record(
                IngestDecision(
                    code: error.code.rawValue,
                    reason: error.message,
                    queue: subject.queue,
                    namespace: subject.namespace,
                    kind: subject.kind,
                    jobs: subject.jobs,
                    source: source.rawValue
                )
            )
            throw error
        }
    }

    /// ``recordingRefusals(_:_:_:)`` for an enqueue of `requests` (the transactional path's).
    package func recordingRefusals<Result>(
        _ source: EnqueueSource,
        of requests: [JobRequest],
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await self.recordingRefusals(source, RefusalSubject(requests), body)
    }

    /// Enforces the enqueue limits on `jobs` before they are inserted (see
    /// ``checkEnqueueLimits(_:namespaces:source:readLimits:)``).
    package func checkEnqueueLimits(
        _ jobs: [NewJob],
        source: EnqueueSource,
        readLimits: (() async throws -> [EnqueueLimit])? = nil
    ) async throws {
        try await self.checkEnqueueLimits(
            NewJobBatch(jobs),
            namespaces: { jobs.reduce(into: [:]) { $0[$1.namespace, default: 0] += 1 } },
            source: source,
            readLimits: readLimits
        )
    }

    /// Enforces the enqueue limits on a batch before it is inserted: takes one token per job from the bucket of
    /// each limited queue and namespace of the batch, all or none, in one transaction of the store's (never the
    /// caller's: its row locks would be held until the caller commits, queueing every other enqueue of that queue
    /// behind the caller's transaction).
    ///
    /// When no limit covers the batch (the common case) this makes no database call beyond reading the limits once
    /// per ``Configuration/enqueueLimitRefresh``, through `readLimits` when given (the transactional path reads
    /// them on the caller's connection) or else the store. `namespaces` is asked for only when a namespace has a
    /// limit. Tokens taken for a batch that then fails (a job that does not validate, a database error) are not
    /// given back: the limit errs on the side of refusing.
    ///
    /// - Throws: `RATE_LIMITED`, with an ``EnqueueLimitExceeded`` as the underlying error, after recording the
    ///   refusal in `ingest_decisions`.
    func checkEnqueueLimits(
        _ batch: NewJobBatch,
        namespaces: () -> [String: Int],
        source: EnqueueSource,
        readLimits: (() async throws -> [EnqueueLimit])? = nil
    ) async throws {
        let limits = try await self.limitCache.current {
            if let readLimits { return try await readLimits() }
            do {
                return try await self.store.enqueueLimits(logger: self.logger)
            } catch let error as ConveyorError where error.code == .schemaMismatch {
                // A schema migrated before limits existed holds none. (Not so on a caller's connection: the failed
                // read has aborted the caller's transaction, which the caller must hear about.)
                self.logger.warning(
                    "cannot read enqueue limits; enqueues are not limited until the schema is migrated",
                    metadata: ["error": "\(error)"]
                )
                return []
            }
        }
        guard !limits.isEmpty else { return }
        var requests: [EnqueueLimitRequest] = []
        if !limits.queues.isEmpty {
            var perQueue: [String: Int] = [:]
            for (group, count) in batch.groups where limits.queues.contains(group.queue) {
                perQueue[group.queue, default: 0] += count
            }
            requests += perQueue.map { EnqueueLimitRequest(scope: .queue, name: $0.key, count: $0.value) }
        }
        var namespaceCounts: [String: Int]?
        if !limits.namespaces.isEmpty {
            let counts = namespaces()
            namespaceCounts = counts
            for (namespace, count) in counts where limits.namespaces.contains(namespace) {
                requests.append(EnqueueLimitRequest(scope: .namespace, name: namespace, count: count))
            }
        }
        guard !requests.isEmpty else { return }
        let refusals = try await self.store.takeEnqueueTokens(requests, logger: self.logger)
        guard !refusals.isEmpty else { return }

        let exceeded = EnqueueLimitExceeded(refusals: refusals, jobs: batch.count)
        let subject = RefusalSubject(batch, namespaces: namespaceCounts ?? namespaces())
        await self.record(
            IngestDecision(
                code: ConveyorError.Code.rateLimited.rawValue,
                reason: exceeded.description,
                queue: refusals.first { $0.limit.scope == .queue }?.limit.name ?? subject.queue,
                namespace: refusals.first { $0.limit.scope == .namespace }?.limit.name ?? subject.namespace,
                kind: subject.kind,
                jobs: batch.count,
                source: source.rawValue
            )
        )
        throw ConveyorError(.rateLimited, exceeded.description, underlying: exceeded)
    }

    /// Stores one refusal, best effort: the refusal is the caller's answer whether or not it is recorded.
    private func record(_ decision: IngestDecision) async {
        do {
            try await self.store.recordIngestDecisions([decision], logger: self.logger)
        } catch {
            self.logger.debug(
                "could not record a refused enqueue",
                metadata: ["code": "\(decision.code)", "error": "\(error)"]
            )
        }
    }
}

/// What a refusal is recorded against: the call's size, and its kind, queue and namespace when all its jobs share
/// one. A name that breaks the naming rules is left out (the reason says what is wrong with it): it may be long or
/// hold characters that do not belong in a table, a log or a terminal.
struct RefusalSubject {
    var jobs: Int
    var kind: String?
    var queue: String?
    var namespace: String?

    /// A call of `jobs` jobs of one kind with `options` (merged over the type's defaults).
    init(jobs: Int, kind: String, options: JobOptions) {
        self.jobs = jobs
        self.kind = Self.label(kind)
        self.queue = Self.label(options.queue ?? NewJob.Defaults.queue)
        self.namespace = Self.label(options.namespace ?? NewJob.Defaults.namespace)
    }

    init(_ requests: [JobRequest]) {
        self.jobs = requests.count
        self.kind = Self.label(Self.single(requests.lazy.map(\.group.kind)))
        self.queue = Self.label(Self.single(requests.lazy.map(\.group.queue)))
        self.namespace = Self.label(Self.single(requests.lazy.map(\.namespace)))
    }

    init(_ batch: NewJobBatch, namespaces: [String: Int]) {
        self.jobs = batch.count
        self.kind = Self.label(Self.single(batch.groups.keys.lazy.map(\.kind)))
        self.queue = Self.label(Self.single(batch.groups.keys.lazy.map(\.queue)))
        self.namespace = Self.label(Self.single(namespaces.keys))
    }

    /// The one value of `values`; `nil` when there are none or several.
    static func single<Values: Sequence<String>>(_ values: Values) -> String? {
        var iterator = values.makeIterator()
        guard let first = iterator.next() else { return nil }
        while let next = iterator.next() {
            if next != first { return nil }
        }
        return first
    }

    static func label(_ name: String?) -> String? {
        guard let name, NameValidation.checkLabel(name) == nil else { return nil }
        return name
    }
}

/// A client's copy of the enqueue limits, shared by every copy of the client: read from the store at most once
/// per refresh interval, so that an enqueue into a queue without a limit costs a lock and a clock read, not a
/// database call.
///
/// When the copy is stale, one enqueue reads the limits; enqueues that arrive meanwhile use the stale copy, or wait
/// for the read when there is no copy yet, so concurrent enqueues never read the table more than once per
/// interval. A failed read is not kept: the enqueue fails with its error and the next one reads again.
final class EnqueueLimitCache: Sendable {
    /// The names that have a limit.
    struct Snapshot: Sendable {
        var queues: Set<String> = []
        var namespaces: Set<String> = []

        var isEmpty: Bool { self.queues.isEmpty && self.namespaces.isEmpty }

        init() {}

        init(_ limits: [EnqueueLimit]) {
            for limit in limits {
                switch limit.scope {
                case .queue: self.queues.insert(limit.name)
                case .namespace: self.namespaces.insert(limit.name)
                }
            }
        }
    }

    private struct State {
        var snapshot = Snapshot()
        var loadedAt: ContinuousClock.Instant?
        /// Bumped by ``invalidate()``, so that a read begun before a change is not kept after it.
        var generation = 0
        var loading = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private enum Step {
        case use(Snapshot)
        case load(generation: Int)
        case wait
    }

    private let refresh: Duration
    private let state = Mutex(State())

    init(refresh: Duration) {
        self.refresh = max(.zero, refresh)
    }

    /// The limits, read through `read` when the copy is older than the refresh interval.
    func current(read: () async throws -> [EnqueueLimit]) async throws -> Snapshot {
        while true {
            let now = ContinuousClock.now
            let step = self.state.withLock { state -> Step in
                if let loadedAt = state.loadedAt, now - loadedAt < self.refresh { return .use(state.snapshot) }
                if !state.loading {
                    state.loading = true
                    return .load(generation: state.generation)
                }
                // Another enqueue is reading: a stale copy is good for that long; no copy at all is not.
                if state.loadedAt != nil { return .use(state.snapshot) }
                return .wait
            }
            switch step {
            case .use(let snapshot):
                return snapshot
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLock { state in
                        guard state.loading else { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            case .load(let generation):
                let result: Result<Snapshot, any Error>
                do {
                    result = .success(Snapshot(try await read()))
                } catch {
                    result = .failure(error)
                }
                let waiters = self.state.withLock { state in
                    state.loading = false
                    if case .success(let snapshot) = result, state.generation == generation {
                        state.snapshot = snapshot
                        state.loadedAt = now
                    }
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
                return try result.get()
            }
        }
    }

    /// Drops the copy, so that the next enqueue reads the limits (after this client changed one).
    func invalidate() {
        self.state.withLock { state in
            state.generation += 1
            state.loadedAt = nil
        }
    }
}
