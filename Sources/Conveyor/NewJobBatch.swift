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
        /// Whether any of them can run as soon as the insert commits (no run time and no delay).
        public var runsAtOnce: Bool
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
        for job in jobs {
            let group = Group(
                queue: job.queue,
                kind: job.kind,
                runsAtOnce: job.runAt == nil && job.delayMilliseconds == 0
            )
            groups[group, default: 0] += 1
        }
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

    /// The queues that a notification should wake when the batch commits.
    public var queuesToWake: Set<String> {
        Set(self.groups.keys.lazy.filter(\.runsAtOnce).map(\.queue))
    }
}

extension JobOptions {
    /// Whether a job with these options (already merged over its type's defaults) may run as soon as it is
    /// inserted, as ``NewJob`` decides it.
    var runsAtOnce: Bool {
        self.runAt == nil && (self.delay?.wholeMilliseconds ?? 0) == 0
    }
}
