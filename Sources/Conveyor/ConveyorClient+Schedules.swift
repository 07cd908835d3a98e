import Foundation

extension ConveyorClient {
    /// Cron schedules: define, list, pause, resume and delete them. Workers fire them (see
    /// ``ConveyorWorker/Configuration/schedules``).
    public var schedules: Schedules { Schedules(client: self) }

    public struct Schedules: Sendable {
        let client: ConveyorClient

        /// Creates or replaces `schedule`. Redefining it with the same expression and time zone (as every worker
        /// does at start) keeps its next tick and its pause, so restarts neither skip nor repeat a tick; a new
        /// expression or time zone starts from its first tick after now.
        ///
        /// A definition that is new or differs from the stored one is recorded as a `defined` event by
        /// `performer`.
        ///
        /// - Throws: ``ConveyorError`` with a validation code of the job's options before anything is written.
        public func define(_ schedule: CronSchedule, by performer: String? = nil) async throws {
            let store = self.client.store
            let logger = self.client.logger
            _ = try schedule.job(at: Date(), maximumArgumentBytes: self.client.configuration.maximumArgumentBytes)
            let now = try await store.databaseNow(logger: logger)
            let first = schedule.expression.nextTick(after: now, in: schedule.timeZone)
            try await store.defineSchedule(schedule, firstTick: first, by: performer, logger: logger)
        }

        /// Every schedule by name, with its next and latest tick and its pause.
        public func list() async throws -> [CronScheduleRecord] {
            try await self.client.store.schedules(named: nil, logger: self.client.logger)
        }

        /// The schedule named `name`, or `nil`.
        public func get(_ name: String) async throws -> CronScheduleRecord? {
            try await self.client.store.schedules(named: name, logger: self.client.logger).first
        }

        /// Stops enqueuing ticks of `name`; ticks that pass while it is paused are skipped.
        ///
        /// - Throws: `SCHEDULE_NOT_FOUND`.
        public func pause(_ name: String, by performer: String? = nil) async throws {
            let found = try await self.client.store.setSchedulePaused(
                name,
                paused: true,
                nextTick: nil,
                by: performer,
                logger: self.client.logger
            )
            guard found else { throw ConveyorError(.scheduleNotFound, "no schedule is named \(name)") }
        }

        /// Enqueues ticks of `name` again, from its first tick after now.
        ///
        /// - Throws: `SCHEDULE_NOT_FOUND`.
        public func resume(_ name: String, by performer: String? = nil) async throws {
            guard let record = try await self.get(name) else {
                throw ConveyorError(.scheduleNotFound, "no schedule is named \(name)")
            }
            let now = try await self.client.store.databaseNow(logger: self.client.logger)
            let schedule = record.schedule
            let found = try await self.client.store.setSchedulePaused(
                name,
                paused: false,
                nextTick: schedule.expression.nextTick(after: now, in: schedule.timeZone),
                by: performer,
                logger: self.client.logger
            )
            guard found else { throw ConveyorError(.scheduleNotFound, "no schedule is named \(name)") }
        }

        /// Removes `name`; jobs it enqueued stay. Returns whether it existed.
        @discardableResult
        public func delete(_ name: String, by performer: String? = nil) async throws -> Bool {
            try await self.client.store.deleteSchedule(name, by: performer, logger: self.client.logger)
        }

        /// The schedule's definitions, pauses, resumptions and deletion, oldest first (at most `limit`, the newest).
        public func events(_ name: String, limit: Int = 100) async throws -> [EventRecord] {
            try await self.client.store.events(for: .schedule(name), limit: limit, logger: self.client.logger)
        }

        /// One scheduler pass: enqueues the due ticks of up to `limit` schedules that no other scheduler is firing.
        /// Workers call it every ``ConveyorWorker/Configuration/scheduleInterval``; returns what it enqueued.
        @discardableResult
        public func fireDue(limit: Int = 10) async throws -> [(name: String, jobs: [EnqueuedJob])] {
            let maximum = self.client.configuration.maximumArgumentBytes
            return try await self.client.store.fireDueSchedules(
                limit: limit,
                plan: { record, now in
                    guard let next = record.nextTickAt else {
                        return ScheduleFiring(jobs: [], lastTick: nil, nextTick: nil)
                    }
                    let (ticks, following) = record.schedule.plan(next: next, now: now)
                    let jobs = ticks.compactMap { try? record.schedule.job(at: $0, maximumArgumentBytes: maximum) }
                    return ScheduleFiring(jobs: jobs, lastTick: ticks.last, nextTick: following)
                },
                logger: self.client.logger
            )
        }
    }
}
