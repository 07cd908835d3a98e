/// The jobs of one insert, built a range at a time.
///
/// A store inserts a large batch as several statements in one transaction and builds (encodes and validates) the
/// jobs of each statement while the database inserts the ones before, so that building a batch overlaps writing
/// it. What the client needs before the insert (which queues to wake, what to count) is known from the requests
/// without building any job.
public struct NewJobBatch: Sendable {
    /// Jobs of one queue and kind in the batch.
    public struct Group: Hashable, Sendable {
        public var queue: String
        public var kind: String
        /// Whether they can run as soon as the insert commits (no run time and no delay).
        public var runsAtOnce: Bool
        /// Whether they have no unique key and no replay link: plain rows that no insert needs to check.
        public var isPlain: Bool

        /// The group of jobs of `kind` with `options` (already merged over the type's defaults), known without
        /// building a job.
        init(kind: String, options: JobOptions) {
            self.queue = options.queue ?? NewJob.Defaults.queue
            self.kind = kind
            self.runsAtOnce = options.runAt == nil && (options.delay?.wholeMilliseconds ?? 0) == 0
            self.isPlain = options.uniqueKey == nil
        }

        init(_ job: NewJob) {
            self.queue = job.queue
            self.kind = job.kind
            self.runsAtOnce = job.runsAtOnce
            self.isPlain = job.isPlain
        }
    }

    /// The number of jobs.
    public let count: Int
    /// Each group of the batch with its number of jobs.
    public let groups: [Group: Int]
    private let build: @Sendable (Range<Int>) throws -> [NewJob]

    /// A batch of jobs already built.
    public init(_ jobs: [NewJob]) {
        self.count = jobs.count
        var groups: [Group: Int] = [:]
        for job in jobs { groups[Group(job), default: 0] += 1 }
        self.groups = groups
        self.build = { range in Array(jobs[range]) }
    }

    /// A batch whose jobs `build` makes on demand; `groups` must describe what it makes.
    init(count: Int, groups: [Group: Int], build: @escaping @Sendable (Range<Int>) throws -> [NewJob]) {
        self.count = count
        self.groups = groups
        self.build = build
    }

    /// Builds the jobs at `range`, in order.
    ///
    /// - Throws: The validation ``ConveyorError`` of the first job in the range that is invalid.
    public func jobs(in range: Range<Int>) throws -> [NewJob] {
        try self.build(range)
    }

    /// Whether every job can run at once and is plain: the batch is rows with nothing to compute or check at
    /// insert time, which a store may copy in rather than insert.
    public var isPlainAndRunsAtOnce: Bool {
        self.groups.keys.allSatisfy { $0.runsAtOnce && $0.isPlain }
    }

    /// The queues that a notification should wake when the batch commits.
    public var queuesToWake: Set<String> {
        Set(self.groups.keys.lazy.filter(\.runsAtOnce).map(\.queue))
    }
}

extension NewJob {
    /// Whether the job can run as soon as its insert commits: no run time and no delay. Only such jobs need a
    /// wake-up; scheduled ones are found by polling when due.
    public var runsAtOnce: Bool { self.runAt == nil && self.delayMilliseconds == 0 }

    /// Whether the job has no unique key and no replay link.
    public var isPlain: Bool { self.uniqueKey == nil && self.replayOf == nil }
}
