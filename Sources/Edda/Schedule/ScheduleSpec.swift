public import Foundation

/// When a ``Schedule`` ticks: a cron expression in a time zone, or a fixed interval.
///
/// ```swift
/// let nightly = try ScheduleSpec.cron("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Paris")!)
/// let often = ScheduleSpec.every(.seconds(300))   // at :00, :05, :10… UTC
/// ```
///
/// An interval ticks at the whole multiples of itself since 1970-01-01 00:00 UTC, so that every
/// worker computes the same ticks (and so the same instance IDs) without agreeing on a start.
public struct ScheduleSpec: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable {
        case cron(CronExpression)
        /// Whole seconds.
        case interval(Int64)
    }

    let kind: Kind
    /// The time zone a cron expression is read in; UTC for an interval.
    public let timeZone: TimeZone

    private init(kind: Kind, timeZone: TimeZone) {
        self.kind = kind
        self.timeZone = timeZone
    }

    /// Ticks when `expression` (see ``CronExpression``) matches the local time in `timeZone`.
    ///
    /// - Throws: ``ScheduleSpecError`` when the expression is invalid or never matches.
    public static func cron(_ expression: String, timeZone: TimeZone = .gmt) throws(ScheduleSpecError) -> ScheduleSpec {
        let spec = ScheduleSpec(kind: .cron(try CronExpression(expression)), timeZone: timeZone)
        guard spec.nextTick(after: Date(timeIntervalSince1970: 0)) != nil || spec.nextTick(after: Date()) != nil else {
            throw ScheduleSpecError(expression, "it matches no day (such as February 30th); check the day-of-month and month fields")
        }
        return spec
    }

    /// Ticks every `interval` (at least a second, in whole seconds), at its multiples since 1970 UTC.
    public static func every(_ interval: Duration) -> ScheduleSpec {
        let seconds = interval.components.seconds
        precondition(seconds >= 1 && interval.components.attoseconds == 0, "A schedule's interval is whole seconds, at least 1; got \(interval).")
        return ScheduleSpec(kind: .interval(seconds), timeZone: .gmt)
    }

    /// Reads a spec as stored and as the CLI and the API take it: a cron expression, or `@every`
    /// followed by a number and a unit (`s`, `m`, `h` or `d`), as in `@every 15m`.
    ///
    /// - Parameters:
    ///   - expression: The cron expression or `@every` interval.
    ///   - timeZone: The time zone's identifier (`"Europe/Paris"`, `"UTC"`); ignored for an interval.
    /// - Throws: ``ScheduleSpecError`` saying what is wrong.
    public init(expression: String, timeZone: String = "UTC") throws(ScheduleSpecError) {
        let text = expression.trimmingCharacters(in: .whitespaces)
        if text.lowercased().hasPrefix("@every") {
            self = try Self.interval(text)
            return
        }
        guard let zone = TimeZone(identifier: timeZone) else {
            throw ScheduleSpecError(expression, "the time zone '\(timeZone)' is unknown; use an IANA name such as 'Europe/Paris' or 'UTC'")
        }
        self = try .cron(text, timeZone: zone)
    }

    private static func interval(_ text: String) throws(ScheduleSpecError) -> ScheduleSpec {
        let amount = text.dropFirst("@every".count).trimmingCharacters(in: .whitespaces)
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = amount.last, let factor = units[unit], let count = Int64(amount.dropLast()), count > 0 else {
            throw ScheduleSpecError(text, "write an interval as '@every' and a whole number with a unit s, m, h or d, as in '@every 15m'")
        }
        return ScheduleSpec(kind: .interval(count * factor), timeZone: .gmt)
    }

    /// The spec's text, as ``init(expression:timeZone:)`` reads it: the cron expression, or
    /// `@every <seconds>s`.
    public var expression: String {
        switch kind {
        case .cron(let cron): cron.description
        case .interval(let seconds): "@every \(seconds)s"
        }
    }

    /// ``expression``, with the time zone of a cron expression: `0 2 * * * (Europe/Paris)`.
    public var description: String {
        switch kind {
        case .cron: "\(expression) (\(timeZone.identifier))"
        case .interval: expression
        }
    }

    /// The first tick strictly after `date`, or `nil` if there is none (a cron expression that matches
    /// no more day).
    public func nextTick(after date: Date) -> Date? {
        switch kind {
        case .cron(let cron):
            return cron.nextMatch(after: date, in: timeZone)
        case .interval(let seconds):
            let now = date.timeIntervalSince1970.rounded(.down)
            let count = (Int64(now) / seconds) + 1
            let tick = Date(timeIntervalSince1970: Double(count * seconds))
            return tick > date ? tick : Date(timeIntervalSince1970: Double((count + 1) * seconds))
        }
    }

    /// The ticks from `start` (included, if it is one) through `end` (included), at most `limit`.
    public func ticks(from start: Date, through end: Date, limit: Int) -> [Date] {
        var ticks: [Date] = []
        var next = nextTick(after: start.addingTimeInterval(-0.001))
        while let tick = next, tick <= end, ticks.count < limit {
            ticks.append(tick)
            next = nextTick(after: tick)
        }
        return ticks
    }
}
