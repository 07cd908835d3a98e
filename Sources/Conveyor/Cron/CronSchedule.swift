import ConveyorCore
import Foundation

/// A job enqueued on every tick of a cron expression, once per tick across every process that schedules.
///
/// ```swift
/// let nightly = try CronSchedule(
///     "nightly-report", cron: "0 3 * * *", timeZone: "Europe/Berlin", job: SendReport(), catchUp: .latest
/// )
/// configuration.schedules = [nightly]   // defined when the worker starts; or client.schedules.define(nightly)
/// ```
///
/// Each tick's job runs at the tick's time and carries the unique key `cron:<name>:<tick in Unix seconds>` (the
/// options' own unique key is replaced). Ticks bypass enqueue limits, as replays do.
public struct CronSchedule: Sendable, Hashable {
    /// What happens to ticks that passed while no scheduler ran (every worker is one unless told otherwise).
    public enum CatchUp: String, Sendable, Hashable, CaseIterable, Codable {
        /// Only a tick at most ``CronSchedule/onTimeWindow`` old is enqueued; older ones are skipped.
        case none
        /// The latest missed tick is enqueued, once, however many were missed.
        case latest
        /// Every missed tick is enqueued, oldest first, at most ``CronSchedule/catchUpBatch`` per scheduler pass.
        case all
    }

    /// 1–128 characters from `A-Z a-z 0-9 _ - . :`.
    public var name: String
    public var expression: CronExpression
    public var timeZone: TimeZone
    public var catchUp: CatchUp
    public var kind: String
    /// The job's arguments as a JSON text.
    public var argumentsJSON: String
    /// The job's options (queue, namespace, priority, max attempts, timeout, tags); run time, delay and unique key
    /// are set per tick.
    public var options: JobOptions

    /// How late a tick may be enqueued under ``CatchUp/none``.
    public static let onTimeWindow: Duration = .seconds(60)
    /// Ticks one scheduler pass enqueues per schedule under ``CatchUp/all``; the next pass goes on from there.
    public static let catchUpBatch = 100

    /// A schedule of a typed job.
    ///
    /// - Throws: ``ConveyorError`` `INVALID_CRON`, `INVALID_TIME_ZONE`, `CRON_NEVER_FIRES`, `INVALID_OPTION` (the
    ///   name) or `MALFORMED_ARGUMENTS`. The job's options are checked when the schedule is defined.
    public init<Arguments: JobArguments>(
        _ name: String,
        cron: String,
        timeZone: String = "UTC",
        job: Arguments,
        options: JobOptions = JobOptions(),
        catchUp: CatchUp = .latest
    ) throws {
        let encoded: Data
        do {
            encoded = try Self.encoder.encode(job)
        } catch {
            throw ConveyorError(.malformedArguments, "cannot encode \(Arguments.kind) arguments", underlying: error)
        }
        try self.init(
            name: name,
            cron: cron,
            timeZone: timeZone,
            kind: Arguments.kind,
            argumentsJSON: String(decoding: encoded, as: UTF8.self),
            options: options.merged(over: Arguments.defaultOptions),
            catchUp: catchUp
        )
    }

    /// A schedule of a job given by kind and raw JSON arguments (the API's and the CLI's form).
    public init(
        name: String,
        cron: String,
        timeZone: String = "UTC",
        kind: String,
        argumentsJSON: String,
        options: JobOptions = JobOptions(),
        catchUp: CatchUp = .latest
    ) throws {
        if let violation = NameValidation.checkLabel(name) {
            throw ConveyorError(.invalidOption, "invalid schedule name: \(violation.explanation)")
        }
        guard let zone = TimeZone(identifier: timeZone) else {
            throw ConveyorError(.invalidTimeZone, "unknown time zone '\(timeZone.prefix(64))'")
        }
        let expression = try CronExpression(cron)
        guard expression.nextTick(after: Date(), in: zone) != nil else {
            throw ConveyorError(
                .cronNeverFires,
                "the cron expression '\(cron)' has no tick within \(CronExpression.horizonYears) years"
            )
        }
        self.name = name
        self.expression = expression
        self.timeZone = zone
        self.catchUp = catchUp
        self.kind = kind
        self.argumentsJSON = argumentsJSON
        // As stored: every default filled in, and the per-tick fields left out.
        self.options = JobOptions(
            queue: options.queue ?? NewJob.Defaults.queue,
            priority: options.priority ?? NewJob.Defaults.priority,
            maxAttempts: options.maxAttempts ?? NewJob.Defaults.maxAttempts,
            timeout: options.timeout.map { .milliseconds($0.wholeMilliseconds) },
            tags: options.tags ?? [],
            namespace: options.namespace ?? NewJob.Defaults.namespace
        )
    }

    /// The job of one tick: the template at the tick's time, under the tick's unique key.
    func job(at tick: Date, maximumArgumentBytes: Int) throws -> NewJob {
        var options = self.options
        options.runAt = tick
        options.delay = nil
        options.uniqueKey = Self.uniqueKey(name: self.name, tick: tick)
        return try NewJob(
            kind: self.kind,
            argumentsJSON: self.argumentsJSON,
            options: options,
            maximumArgumentBytes: maximumArgumentBytes
        )
    }

    /// `cron:<name>:<tick in Unix seconds>`.
    public static func uniqueKey(name: String, tick: Date) -> String {
        "cron:\(name):\(Int64(tick.timeIntervalSince1970.rounded(.down)))"
    }

    /// What a scheduler pass does with a due schedule whose next tick is `next`, at `now`: the ticks to enqueue
    /// (by ``catchUp``) and the next tick to wait for (`nil`: none comes within the horizon).
    public func plan(next: Date, now: Date) -> (ticks: [Date], next: Date?) {
        let zone = self.timeZone
        switch self.catchUp {
        case .all:
            let ticks =
                [next] + self.expression.ticks(after: next, through: now, in: zone, limit: Self.catchUpBatch - 1)
            return (ticks, self.expression.nextTick(after: ticks.last ?? next, in: zone))
        case .latest, .none:
            let latest = self.latestTick(from: next, through: now) ?? next
            let following = self.expression.nextTick(after: max(latest, now), in: zone)
            if self.catchUp == .none, now.timeIntervalSince(latest) > Double(Self.onTimeWindow.components.seconds) {
                return ([], following)
            }
            return ([latest], following)
        }
    }

    /// The last tick in `[start, end]`, found by looking back over growing windows so that a frequent expression
    /// after a long outage costs a few ticks, not every tick missed.
    func latestTick(from start: Date, through end: Date) -> Date? {
        let zone = self.timeZone
        for window in [60.0, 3600, 86_400, 31 * 86_400, 366 * 86_400, .infinity] {
            let from = max(start.addingTimeInterval(-1), end.addingTimeInterval(-window))
            var latest: Date?
            var cursor = from
            while let tick = self.expression.nextTick(after: cursor, in: zone), tick <= end {
                latest = tick
                cursor = tick
            }
            if let latest { return latest }
            if from <= start.addingTimeInterval(-1) { return nil }
        }
        return nil
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// A stored schedule, as ``ConveyorClient/Schedules/list()`` returns it.
public struct CronScheduleRecord: Sendable, Hashable {
    public var schedule: CronSchedule
    /// The next tick a scheduler will enqueue; `nil` when none comes within the horizon.
    public var nextTickAt: Date?
    /// The latest tick enqueued, and its job.
    public var lastTickAt: Date?
    public var lastJobID: JobID?
    public var pausedAt: Date?
    public var pausedBy: String?
    public var createdAt: Date
    public var updatedAt: Date

    public var isPaused: Bool { self.pausedAt != nil }

    public init(
        schedule: CronSchedule,
        nextTickAt: Date?,
        lastTickAt: Date?,
        lastJobID: JobID?,
        pausedAt: Date?,
        pausedBy: String?,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.schedule = schedule
        self.nextTickAt = nextTickAt
        self.lastTickAt = lastTickAt
        self.lastJobID = lastJobID
        self.pausedAt = pausedAt
        self.pausedBy = pausedBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What a scheduler pass decided for one due schedule: the jobs of its ticks and the next tick.
public struct ScheduleFiring: Sendable {
    public var jobs: [NewJob]
    public var lastTick: Date?
    public var nextTick: Date?

    public init(jobs: [NewJob], lastTick: Date?, nextTick: Date?) {
        self.jobs = jobs
        self.lastTick = lastTick
        self.nextTick = nextTick
    }
}
