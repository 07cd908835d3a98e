import Conveyor
import Foundation
import Testing

/// Cron expressions and the catch-up plan, without a database: fields, time zones, daylight saving, leap days,
/// and every refusal with its code.
@Suite struct CronTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!

    /// A UTC instant from its ISO 8601 text.
    static func at(_ text: String) -> Date {
        (try? Date(text, strategy: .iso8601)) ?? .distantPast
    }

    struct Report: JobArguments {
        static let kind = "report"
    }

    @Test(
        "the next tick follows each field: lists, ranges, steps, names, seconds and macros",
        arguments: [
            ("30 9 * * MON-FRI", "2026-12-04T10:00:00Z", "2026-12-07T09:30:00Z"),
            ("*/10 * * * * *", "2026-12-01T12:00:05Z", "2026-12-01T12:00:10Z"),
            ("0 0-6/3,22 * * *", "2026-12-01T06:00:00Z", "2026-12-01T22:00:00Z"),
            ("0 0 13 * FRI", "2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z"),
            ("0 0 13 * FRI", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"),
            ("15 10 * JAN,jul *", "2026-12-01T00:00:00Z", "2027-01-01T10:15:00Z"),
            ("0 12 * * 7", "2026-12-01T00:00:00Z", "2026-12-06T12:00:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("5/20 * * * *", "2026-12-01T10:06:00Z", "2026-12-01T10:25:00Z"),
            ("@hourly", "2026-12-01T10:59:59Z", "2026-12-01T11:00:00Z"),
            ("@weekly", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z"),
            ("@yearly", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            // Strictly after: a tick at the given instant is not the next one.
            ("0 * * * *", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z"),
        ]
    )
    func nextTick(expression: String, after: String, expected: String) throws {
        let cron = try CronExpression(expression)
        #expect(cron.nextTick(after: Self.at(after), in: Self.utc) == Self.at(expected))
    }

    @Test("ticks follow the schedule's time zone, through both daylight-saving changes")
    func timeZones() throws {
        let three = try CronExpression("0 3 * * *")
        // 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer.
        #expect(
            three.nextTick(after: Self.at("2026-12-01T00:00:00Z"), in: Self.berlin) == Self.at("2026-12-01T02:00:00Z")
        )
        #expect(
            three.nextTick(after: Self.at("2026-07-01T00:00:00Z"), in: Self.berlin) == Self.at("2026-07-01T01:00:00Z")
        )
        // 02:30 does not exist on 29 March 2026 in Berlin: the tick moves past the gap, to 03:30 CEST.
        let gap = try CronExpression("30 2 * * *")
        #expect(
            gap.nextTick(after: Self.at("2026-03-28T12:00:00Z"), in: Self.berlin) == Self.at("2026-03-29T01:30:00Z")
        )
        // 02:30 happens twice on 25 October 2026: the tick fires in the first pass only, then the next day.
        let first = try #require(gap.nextTick(after: Self.at("2026-10-24T12:00:00Z"), in: Self.berlin))
        #expect(first == Self.at("2026-10-25T00:30:00Z"))
        #expect(gap.nextTick(after: first, in: Self.berlin) == Self.at("2026-10-26T01:30:00Z"))
    }

    @Test(
        "a malformed expression is refused with INVALID_CRON, naming what is wrong",
        arguments: [
            "", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
            "5-1 * * * *", "*/0 * * * *", "*/61 * * * *", "a * * * *", "1,,2 * * * *", "1/2/3 * * * *", "- * * * *",
            "\u{0661} * * * *", "@every 5m", "* * * FOO *",
        ]
    )
    func malformed(expression: String) {
        #expect(throws: ConveyorError.self) { try CronExpression(expression) }
        do {
            _ = try CronExpression(expression)
        } catch let error as ConveyorError {
            #expect(error.code == .invalidCron)
            #expect(error.message.hasPrefix("cron field") || error.message.contains("fields"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("a schedule refuses a time zone, a name or an expression that never fires, each with its code")
    func refusedSchedules() {
        func code(_ make: () throws -> CronSchedule) -> ConveyorError.Code? {
            do {
                _ = try make()
                return nil
            } catch {
                return (error as? ConveyorError)?.code
            }
        }
        #expect(
            code { try CronSchedule("r", cron: "0 3 * * *", timeZone: "Mars/Olympus", job: Report()) }
                == .invalidTimeZone
        )
        #expect(code { try CronSchedule("r", cron: "0 0 30 2 *", job: Report()) } == .cronNeverFires)
        #expect(code { try CronSchedule("r", cron: "0 0 31 4,6,9,11 *", job: Report()) } == .cronNeverFires)
        #expect(code { try CronSchedule("bad name!", cron: "0 3 * * *", job: Report()) } == .invalidOption)
        #expect(code { try CronSchedule("r", cron: "0 3 * *", job: Report()) } == .invalidCron)
        // February 30 never comes, but with a weekday as well the weekday fires (either matches).
        #expect(code { try CronSchedule("r", cron: "0 0 30 2 MON", job: Report()) } == nil)
    }

    @Test("catch-up: all enqueues every missed tick, latest the last one, none only a tick that is on time")
    func catchUp() throws {
        func plan(_ cron: String, _ policy: CronSchedule.CatchUp, next: String, now: String) throws -> ([Date], Date?) {
            try CronSchedule("r", cron: cron, job: Report(), catchUp: policy).plan(
                next: Self.at(next),
                now: Self.at(now)
            )
        }
        let minutes = (0...5).map { Self.at("2026-12-01T10:0\($0):00Z") }
        let all = try plan("* * * * *", .all, next: "2026-12-01T10:00:00Z", now: "2026-12-01T10:05:30Z")
        #expect(all.0 == minutes && all.1 == Self.at("2026-12-01T10:06:00Z"))
        let latest = try plan("* * * * *", .latest, next: "2026-12-01T10:00:00Z", now: "2026-12-01T10:05:30Z")
        #expect(latest.0 == [minutes[5]] && latest.1 == Self.at("2026-12-01T10:06:00Z"))
        // 30 s late is on time; an hourly tick 30 minutes late is not.
        let onTime = try plan("* * * * *", .none, next: "2026-12-01T10:00:00Z", now: "2026-12-01T10:05:30Z")
        #expect(onTime.0 == [minutes[5]])
        let missed = try plan("0 * * * *", .none, next: "2026-12-01T08:00:00Z", now: "2026-12-01T10:30:00Z")
        #expect(missed.0.isEmpty && missed.1 == Self.at("2026-12-01T11:00:00Z"))
        // A long outage of a frequent schedule: all goes on a batch at a time, latest finds the last tick.
        let backlog = try plan("* * * * * *", .all, next: "2026-12-01T00:00:00Z", now: "2026-12-02T00:00:00Z")
        #expect(backlog.0.count == CronSchedule.catchUpBatch)
        #expect(backlog.1 == Self.at("2026-12-01T00:01:40Z"))
        let last = try plan("* * * * * *", .latest, next: "2026-12-01T00:00:00Z", now: "2026-12-02T00:00:00Z")
        #expect(last.0 == [Self.at("2026-12-02T00:00:00Z")] && last.1 == Self.at("2026-12-02T00:00:01Z"))
    }
}
