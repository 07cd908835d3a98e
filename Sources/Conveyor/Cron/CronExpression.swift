import Foundation

/// A cron expression: five fields, `minute hour day-of-month month day-of-week`, or six with `second` first.
///
/// Each field takes `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and comma-separated lists of
/// those; months take `JAN`–`DEC` and weekdays `SUN`–`SAT` (0 and 7 are both Sunday). `?` is `*`. When both the
/// day of month and the day of week are restricted, a day matching either fires (as in Vixie cron). The macros
/// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` stand for their five fields.
///
/// ```swift
/// let weekdays = try CronExpression("30 9 * * MON-FRI")      // 09:30 on weekdays
/// let often = try CronExpression("*/10 * * * * *")           // every ten seconds
/// ```
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as given.
    public let source: String
    let seconds: [Int]
    let minutes: [Int]
    let hours: [Int]
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    /// How far ``nextTick(after:in:)`` looks: an expression with no tick within this many years never fires
    /// (February 29 comes at least every eight).
    public static let horizonYears = 10

    /// Parses `text`.
    ///
    /// - Throws: ``ConveyorError`` `INVALID_CRON`, naming the field and what is wrong with it.
    public init(_ text: String) throws {
        self.source = text
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[trimmed.lowercased()] ?? trimmed
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw ConveyorError(
                .invalidCron,
                "a cron expression has 5 fields (minute hour day month weekday) or 6 (with seconds first), got \(fields.count)"
            )
        }
        let withSeconds = fields.count == 6 ? fields : ["0"] + fields
        var parsed: [(values: Set<Int>, restricted: Bool)] = []
        for (field, text) in zip(Field.allCases, withSeconds) {
            parsed.append(try field.parse(text))
        }
        self.seconds = parsed[0].values.sorted()
        self.minutes = parsed[1].values.sorted()
        self.hours = parsed[2].values.sorted()
        self.days = parsed[3].values
        self.months = parsed[4].values
        self.weekdays = Set(parsed[5].values.map { $0 % 7 })
        self.daysRestricted = parsed[3].restricted
        self.weekdaysRestricted = parsed[5].restricted
    }

    public var description: String { self.source }

    public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool { lhs.source == rhs.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(self.source) }

    /// The first tick strictly after `date`, in whole seconds of `timeZone`'s wall clock; `nil` when none comes
    /// within ``horizonYears``.
    ///
    /// A tick in a daylight-saving gap (02:30 on the night clocks go forward) fires at the same wall time shifted
    /// past the gap; in the hour that repeats when clocks go back, ticks fire in its first pass only.
    public func nextTick(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = Date(timeIntervalSince1970: (date.timeIntervalSince1970 + 1).rounded(.down))
        let local = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: start)
        guard let year = local.year, let month = local.month, let day = local.day else { return nil }
        var civil = CivilDay(year: year, month: month, day: day)
        var earliest = (local.hour ?? 0, local.minute ?? 0, local.second ?? 0)
        while civil.year <= year + Self.horizonYears {
            if self.matches(civil) {
                for time in self.times(from: earliest) {
                    let components = DateComponents(
                        year: civil.year,
                        month: civil.month,
                        day: civil.day,
                        hour: time.0,
                        minute: time.1,
                        second: time.2
                    )
                    if let tick = calendar.date(from: components), tick > date { return tick }
                }
            }
            civil = civil.next()
            earliest = (0, 0, 0)
        }
        return nil
    }

    /// Every tick in `(after, through]`, oldest first, at most `limit` of them.
    public func ticks(after date: Date, through end: Date, in timeZone: TimeZone, limit: Int) -> [Date] {
        var ticks: [Date] = []
        var last = date
        while ticks.count < limit, let tick = self.nextTick(after: last, in: timeZone), tick <= end {
            ticks.append(tick)
            last = tick
        }
        return ticks
    }

    func matches(_ day: CivilDay) -> Bool {
        guard self.months.contains(day.month) else { return false }
        let dayOfMonth = self.days.contains(day.day)
        let dayOfWeek = self.weekdays.contains(day.weekday)
        switch (self.daysRestricted, self.weekdaysRestricted) {
        case (true, true): return dayOfMonth || dayOfWeek
        case (true, false): return dayOfMonth
        case (false, true): return dayOfWeek
        case (false, false): return true
        }
    }

    /// The times of day this expression fires at, from `earliest` on, in order.
    func times(from earliest: (Int, Int, Int)) -> some Sequence<(Int, Int, Int)> {
        self.hours.lazy.filter { $0 >= earliest.0 }.flatMap { hour in
            self.minutes.lazy.filter { hour > earliest.0 || $0 >= earliest.1 }.flatMap { minute in
                self.seconds.lazy.filter { hour > earliest.0 || minute > earliest.1 || $0 >= earliest.2 }
                    .map { (hour, minute, $0) }
            }
        }
    }

    static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    enum Field: CaseIterable {
        case second, minute, hour, day, month, weekday

        var name: String {
            switch self {
            case .second: "second"
            case .minute: "minute"
            case .hour: "hour"
            case .day: "day of month"
            case .month: "month"
            case .weekday: "day of week"
            }
        }

        var range: ClosedRange<Int> {
            switch self {
            case .second, .minute: 0...59
            case .hour: 0...23
            case .day: 1...31
            case .month: 1...12
            case .weekday: 0...7
            }
        }

        var names: [String] {
            switch self {
            case .month: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
            case .weekday: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
            default: []
            }
        }

        func parse(_ text: String) throws -> (values: Set<Int>, restricted: Bool) {
            var values = Set<Int>()
            // As in Vixie cron, a field that starts with `*` (`*/2` included) leaves the day unrestricted.
            let restricted = !(text.hasPrefix("*") || text.hasPrefix("?"))
            for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                guard parts.count <= 2, let base = parts.first, !base.isEmpty else {
                    throw self.error("'\(item)' is not a value, a range or a step")
                }
                var step = 1
                if parts.count == 2 {
                    guard let parsed = Int(parts[1]), parsed > 0, parsed <= self.range.upperBound else {
                        throw self.error(
                            "the step in '\(item)' must be a whole number from 1 to \(self.range.upperBound)"
                        )
                    }
                    step = parsed
                }
                let bounds: ClosedRange<Int>
                if base == "*" || base == "?" {
                    bounds = self.range
                } else if let dash = base.firstIndex(of: "-") {
                    let low = try self.value(String(base[..<dash]), in: item)
                    let high = try self.value(String(base[base.index(after: dash)...]), in: item)
                    guard low <= high else { throw self.error("the range '\(item)' runs backwards") }
                    bounds = low...high
                } else {
                    let low = try self.value(base, in: item)
                    bounds = low...(parts.count == 2 ? self.range.upperBound : low)
                }
                values.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step))
            }
            return (values, restricted)
        }

        func value(_ text: String, in item: String) throws -> Int {
            if let index = self.names.firstIndex(of: text.uppercased()) {
                return index + (self == .month ? 1 : 0)
            }
            guard let value = Int(text), text.allSatisfy(\.isASCII) else {
                throw self.error("'\(text)' in '\(item)' is not a number\(self.names.isEmpty ? "" : " or a name")")
            }
            guard self.range.contains(value) else {
                throw self.error("\(value) is outside \(self.range.lowerBound)–\(self.range.upperBound)")
            }
            return value
        }

        func error(_ message: String) -> ConveyorError {
            ConveyorError(.invalidCron, "cron field \(self.name): \(message)")
        }
    }
}

/// A day of the proleptic Gregorian calendar, independent of any time zone.
struct CivilDay: Hashable {
    var year: Int
    var month: Int
    var day: Int

    var daysInMonth: Int {
        switch self.month {
        case 2: (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// 0 is Sunday.
    var weekday: Int {
        // Days since 1970-01-01 (a Thursday), by the days-from-civil algorithm.
        let y = self.month <= 2 ? self.year - 1 : self.year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (self.month + (self.month > 2 ? -3 : 9)) + 2) / 5 + self.day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return ((days % 7) + 7 + 4) % 7
    }

    func next() -> CivilDay {
        if self.day < self.daysInMonth { return CivilDay(year: self.year, month: self.month, day: self.day + 1) }
        if self.month < 12 { return CivilDay(year: self.year, month: self.month + 1, day: 1) }
        return CivilDay(year: self.year + 1, month: 1, day: 1)
    }
}
