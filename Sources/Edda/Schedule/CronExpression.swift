public import Foundation

/// A cron expression: when a ``Schedule`` ticks, as local times in a time zone.
///
/// Five fields — minute, hour, day of month, month, day of week — or six, with seconds first:
///
/// ```
/// ┌ second (0–59, only with six fields)
/// │ ┌ minute (0–59)
/// │ │ ┌ hour (0–23)
/// │ │ │ ┌ day of month (1–31)
/// │ │ │ │ ┌ month (1–12 or JAN–DEC)
/// │ │ │ │ │ ┌ day of week (0–7 or SUN–SAT; 0 and 7 are Sunday)
/// * * * * * *
/// ```
///
/// Each field is `*`, a value, a range `a-b`, a step `*/n` or `a-b/n` or `a/n`, or a comma-separated
/// list of those. `?` means `*`. As in Vixie cron, when both the day of month and the day of week
/// are restricted (neither is `*`), a day matches if either does. `@yearly`, `@monthly`, `@weekly`,
/// `@daily` (or `@midnight`) and `@hourly` stand for their usual expressions.
///
/// Daylight saving time: a local time that does not exist on a day (clocks go forward over it) does
/// not tick that day; a local time that happens twice (clocks go back) ticks once, at its first
/// occurrence.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let description: String
    let seconds: [Int]
    let minutes: [Int]
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let daysOfMonthRestricted: Bool
    let daysOfWeekRestricted: Bool

    /// Parses `expression`.
    ///
    /// - Throws: ``ScheduleSpecError`` saying which field is wrong and how to write it.
    public init(_ expression: String) throws(ScheduleSpecError) {
        let text = expression.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[text.lowercased()] ?? text
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 5 || fields.count == 6 else {
            throw ScheduleSpecError(
                expression,
                "it has \(fields.count) field\(fields.count == 1 ? "" : "s"); write 5 (minute hour day-of-month month day-of-week, "
                    + "as in '0 2 * * *') or 6 with seconds first (as in '30 0 2 * * *')"
            )
        }
        let offset = fields.count - 5
        let parse = { (index: Int, field: CronField) throws(ScheduleSpecError) -> [Int] in
            try field.values(of: fields[index], in: expression)
        }
        self.description = text
        self.seconds = try offset == 1 ? parse(0, .second) : [0]
        self.minutes = try parse(offset, .minute)
        self.hours = try parse(offset + 1, .hour)
        self.daysOfMonth = Set(try parse(offset + 2, .dayOfMonth))
        self.months = Set(try parse(offset + 3, .month))
        self.daysOfWeek = Set(try parse(offset + 4, .dayOfWeek).map { $0 % 7 })
        self.daysOfMonthRestricted = !CronField.isWildcard(fields[offset + 2])
        self.daysOfWeekRestricted = !CronField.isWildcard(fields[offset + 4])
    }

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// The first time after `date` that the expression matches in `timeZone`, or `nil` if none comes
    /// within eight years (an expression such as `0 0 30 2 *` never matches).
    public func nextMatch(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let start = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        guard let startHour = start.hour, let startMinute = start.minute, let startSecond = start.second,
            var noon = calendar.date(from: DateComponents(year: start.year, month: start.month, day: start.day, hour: 12))
        else { return nil }
        for dayIndex in 0..<(366 * 8) {
            let day = calendar.dateComponents([.year, .month, .day, .weekday], from: noon)
            if let month = day.month, let dayOfMonth = day.day, let weekday = day.weekday,
                matchesDay(month: month, day: dayOfMonth, weekday: weekday - 1)
            {
                let firstDay = dayIndex == 0
                for hour in hours where !firstDay || hour >= startHour {
                    let firstHour = firstDay && hour == startHour
                    for minute in minutes where !firstHour || minute >= startMinute {
                        let firstMinute = firstHour && minute == startMinute
                        for second in seconds where !firstMinute || second >= startSecond {
                            let wanted = DateComponents(year: day.year, month: month, day: dayOfMonth, hour: hour, minute: minute, second: second)
                            guard let candidate = calendar.date(from: wanted), candidate > date else { continue }
                            // A local time skipped by a change to daylight saving time comes back as another time.
                            let found = calendar.dateComponents([.day, .hour, .minute, .second], from: candidate)
                            if found.day == dayOfMonth, found.hour == hour, found.minute == minute, found.second == second { return candidate }
                        }
                    }
                }
            }
            guard let next = calendar.date(byAdding: .day, value: 1, to: noon) else { return nil }
            noon = next
        }
        return nil
    }

    private func matchesDay(month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        switch (daysOfMonthRestricted, daysOfWeekRestricted) {
        case (true, true): return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    /// Two expressions are equal when they are written the same.
    public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool { lhs.description == rhs.description }

    /// Hashes the expression as written.
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }
}

/// One field of a cron expression: its name, its range and the names its values may have.
struct CronField {
    let name: String
    let range: ClosedRange<Int>
    let names: [String]
    /// The value of the first name (`JAN` is 1, `SUN` is 0).
    let firstNamed: Int

    static let second = CronField(name: "second", range: 0...59, names: [], firstNamed: 0)
    static let minute = CronField(name: "minute", range: 0...59, names: [], firstNamed: 0)
    static let hour = CronField(name: "hour", range: 0...23, names: [], firstNamed: 0)
    static let dayOfMonth = CronField(name: "day-of-month", range: 1...31, names: [], firstNamed: 1)
    static let month = CronField(
        name: "month", range: 1...12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], firstNamed: 1
    )
    static let dayOfWeek = CronField(name: "day-of-week", range: 0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], firstNamed: 0)

    static func isWildcard(_ text: Substring) -> Bool { text == "*" || text == "?" }

    /// The values `text` selects, sorted.
    func values(of text: Substring, in expression: String) throws(ScheduleSpecError) -> [Int] {
        var values = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            var body = part
            var step: Int?
            if let slash = part.firstIndex(of: "/") {
                let stepText = part[part.index(after: slash)...]
                guard let parsed = Int(stepText), parsed > 0 else {
                    throw ScheduleSpecError(
                        expression, "the step '\(stepText)' in the \(name) field is not a whole number of at least 1; write it as '*/5'")
                }
                step = parsed
                body = part[..<slash]
            }
            let bounds: ClosedRange<Int>
            if Self.isWildcard(body) {
                bounds = range
            } else if let dash = body.firstIndex(of: "-") {
                let low = try value(of: body[..<dash], in: expression)
                let high = try value(of: body[body.index(after: dash)...], in: expression)
                guard low <= high else {
                    throw ScheduleSpecError(expression, "the range \(body) in the \(name) field runs backwards; write the smaller value first")
                }
                bounds = low...high
            } else {
                let single = try value(of: body, in: expression)
                bounds = single...(step == nil ? single : range.upperBound)
            }
            values.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step ?? 1))
        }
        return values.sorted()
    }

    private func value(of text: Substring, in expression: String) throws(ScheduleSpecError) -> Int {
        if let index = names.firstIndex(of: text.uppercased()) { return index + firstNamed }
        guard let number = Int(text) else {
            let named = names.isEmpty ? "" : " or a name (\(names.first!)–\(names.last!))"
            throw ScheduleSpecError(
                expression,
                "'\(text)' in the \(name) field is not a number\(named); each field is *, a value, a range a-b, a step */n, or a list of these"
            )
        }
        guard range.contains(number) else {
            throw ScheduleSpecError(expression, "\(number) is out of range for the \(name) field; use \(range.lowerBound)–\(range.upperBound)")
        }
        return number
    }
}

/// A schedule's spec — a cron expression, an interval or a time zone — cannot be used.
///
/// Its ``description`` says what is wrong and how to write it instead:
/// `Invalid schedule spec '0 25 * * *': 25 is out of range for the hour field; use 0–23.`
public struct ScheduleSpecError: Error, Hashable, CustomStringConvertible {
    /// The spec as given.
    public let spec: String
    /// What is wrong with it, and how to fix it.
    public let problem: String

    /// An error about `spec`.
    public init(_ spec: String, _ problem: String) {
        self.spec = spec
        self.problem = problem
    }

    /// `Invalid schedule spec '<spec>': <problem>.`
    public var description: String { "Invalid schedule spec '\(spec)': \(problem)." }
}
