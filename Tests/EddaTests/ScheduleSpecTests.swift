import Foundation
import Testing

@_spi(EddaStores) @testable import Edda

/// Cron parsing and tick computation, and the planning of one pass (no store, no clock).
@Suite("Schedules: specs and plans")
struct ScheduleSpecTests {
    let paris = TimeZone(identifier: "Europe/Paris")!

    func utc(_ text: String) -> Date {
        try! Date(text, strategy: .iso8601)
    }

    @Test func fiveFieldCronTicksInUTCAndInAZone() throws {
        let quarter = try ScheduleSpec.cron("*/15 * * * *")
        #expect(quarter.nextTick(after: utc("2026-01-05T10:07:30Z")) == utc("2026-01-05T10:15:00Z"))
        #expect(quarter.nextTick(after: utc("2026-01-05T10:15:00Z")) == utc("2026-01-05T10:30:00Z"), "strictly after")
        #expect(quarter.nextTick(after: utc("2026-01-05T23:59:00Z")) == utc("2026-01-06T00:00:00Z"))
        // 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer; weekdays by name, Monday to Friday.
        let weekdays = try ScheduleSpec.cron("0 9 * * MON-FRI", timeZone: paris)
        #expect(weekdays.nextTick(after: utc("2026-01-09T09:00:00Z")) == utc("2026-01-12T08:00:00Z"), "Friday after 9:00 → Monday")
        #expect(weekdays.nextTick(after: utc("2026-07-01T00:00:00Z")) == utc("2026-07-01T07:00:00Z"))
        #expect(weekdays.description == "0 9 * * MON-FRI (Europe/Paris)")
    }

    @Test func sixFieldsStartWithSeconds() throws {
        let spec = try ScheduleSpec.cron("*/10 * * * * *")
        #expect(spec.nextTick(after: utc("2026-01-05T10:00:05Z")) == utc("2026-01-05T10:00:10Z"))
        #expect(spec.nextTick(after: utc("2026-01-05T10:00:50Z")) == utc("2026-01-05T10:01:00Z"))
        let once = try ScheduleSpec.cron("30 0 2 * * *")
        #expect(once.nextTick(after: utc("2026-01-05T02:00:30Z")) == utc("2026-01-06T02:00:30Z"))
    }

    @Test func dayOfMonthAndDayOfWeekBothRestrictedMatchEither() throws {
        // The 13th, or any Friday: 2026-02-06 is a Friday, before the 13th.
        let spec = try ScheduleSpec.cron("0 0 13 * FRI")
        #expect(spec.nextTick(after: utc("2026-02-01T00:00:00Z")) == utc("2026-02-06T00:00:00Z"))
        #expect(spec.nextTick(after: utc("2026-02-10T00:00:00Z")) == utc("2026-02-13T00:00:00Z"))
        #expect(try ScheduleSpec.cron("@monthly").nextTick(after: utc("2026-02-10T00:00:00Z")) == utc("2026-03-01T00:00:00Z"))
        // Sunday is 0 and 7.
        #expect(try ScheduleSpec.cron("0 0 * * 7").nextTick(after: utc("2026-02-01T00:00:00Z")) == utc("2026-02-08T00:00:00Z"))
    }

    @Test func aLocalTimeSkippedByDaylightSavingDoesNotTickAndARepeatedOneTicksOnce() throws {
        let spec = try ScheduleSpec.cron("30 2 * * *", timeZone: paris)
        // 2026-03-29: clocks go from 02:00 to 03:00 in Paris; 02:30 does not exist that day.
        #expect(spec.nextTick(after: utc("2026-03-28T12:00:00Z")) == utc("2026-03-30T00:30:00Z"))
        // 2026-10-25: clocks go from 03:00 back to 02:00; 02:30 happens at 00:30 UTC and at 01:30 UTC.
        let first = try #require(spec.nextTick(after: utc("2026-10-24T12:00:00Z")))
        #expect(first == utc("2026-10-25T00:30:00Z"))
        #expect(spec.nextTick(after: first) == utc("2026-10-26T01:30:00Z"), "the second 02:30 does not tick again")
        // The day's other times keep their offset: 04:00 is 03:00 UTC after the change.
        #expect(try ScheduleSpec.cron("0 4 * * *", timeZone: paris).nextTick(after: first) == utc("2026-10-25T03:00:00Z"))
    }

    @Test(arguments: [
        ("0 2 * *", "4 fields"),
        ("0 25 * * *", "out of range for the hour field; use 0–23"),
        ("*/0 * * * *", "step '0' in the minute field"),
        ("0 0 * * FUNDAY", "'FUNDAY' in the day-of-week field is not a number or a name (SUN–SAT)"),
        ("0 0 5-1 * *", "runs backwards"),
        ("0 0 30 2 *", "matches no day"),
        ("1,,2 * * * *", "'' in the minute field"),
    ])
    func invalidCronExpressionsSayWhatIsWrong(_ expression: String, _ expected: String) {
        do {
            _ = try ScheduleSpec.cron(expression)
            Issue.record("'\(expression)' was accepted")
        } catch {
            #expect(error.spec == expression)
            #expect(error.description.hasPrefix("Invalid schedule spec '\(expression)': "))
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func storedTextReadsBackAndBadTextIsRefused() throws {
        let interval = try ScheduleSpec(expression: "@every 15m")
        #expect(interval.expression == "@every 900s")
        #expect(try ScheduleSpec(expression: interval.expression) == interval)
        let cron = try ScheduleSpec(expression: "0 2 * * *", timeZone: "Europe/Paris")
        #expect(cron.timeZone == paris)
        #expect(throws: ScheduleSpecError.self) { try ScheduleSpec(expression: "0 2 * * *", timeZone: "Mars/Olympus") }
        do {
            _ = try ScheduleSpec(expression: "@every 5x")
            Issue.record("'@every 5x' was accepted")
        } catch {
            #expect(error.description.contains("as in '@every 15m'"))
        }
    }

    @Test func anIntervalTicksAtItsMultiplesSince1970() {
        let spec = ScheduleSpec.every(.seconds(300))
        #expect(spec.nextTick(after: utc("2026-01-05T10:07:30Z")) == utc("2026-01-05T10:10:00Z"))
        #expect(spec.nextTick(after: utc("2026-01-05T10:10:00Z")) == utc("2026-01-05T10:15:00Z"))
        #expect(
            spec.ticks(from: utc("2026-01-05T10:00:00Z"), through: utc("2026-01-05T10:10:00Z"), limit: 10)
                == [utc("2026-01-05T10:00:00Z"), utc("2026-01-05T10:05:00Z"), utc("2026-01-05T10:10:00Z")]
        )
        #expect(Schedule.instanceID(schedule: "often", tick: utc("2026-01-05T10:05:00Z")) == "sched:often:2026-01-05T10:05:00Z")
    }

    @Test func theReadmesScheduleDeclarationsBuild() throws {
        let report = Workflow("nightly_report") { (_, day: String) -> Int in day.count }
        let nightly = Schedule(
            "nightly-report", report, try .cron("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Paris")!),
            overlap: .skip, catchUpWindow: .seconds(3600),
            input: { scheduledTime in scheduledTime.formatted(.iso8601) }
        )
        #expect(nightly.workflowName == "nightly_report" && nightly.spec.description == "0 2 * * * (Europe/Paris)")
        #expect(nightly.record(now: utc("2026-01-05T12:00:00Z")).input == nil, "an input built from the tick is not stored")
        let fixed = Schedule("fixed", report, .every(.seconds(60)), input: "all")
        #expect(fixed.record(now: utc("2026-01-05T12:00:00Z")).input == JSONPayload(json: #"["all"]"#))
    }

    // MARK: - Plans

    func record(_ overlap: Schedule.OverlapPolicy, next: String, window: Duration = .seconds(60)) -> ScheduleRecord {
        ScheduleRecord(
            name: "s", workflowName: "w", spec: .every(.seconds(60)), input: nil, overlap: overlap, catchUpWindow: window,
            nextTick: utc(next), updatedAt: utc(next)
        )
    }

    func plan(_ record: ScheduleRecord, now: String, running: Bool) -> SchedulePlan {
        SchedulePlan(record, spec: .every(.seconds(60)), now: utc(now), grace: .zero, previousRunning: running, limit: 100)
    }

    @Test func overlapPoliciesDecideWhatADueTickDoesWhileThePreviousRuns() {
        let next = "2026-01-05T10:01:00Z"
        let now = "2026-01-05T10:02:00Z"
        let ticks = [utc("2026-01-05T10:01:00Z"), utc("2026-01-05T10:02:00Z")]
        // Nothing runs: every policy starts the first; the second overlaps it.
        #expect(plan(record(.skip, next: next), now: now, running: false).starts == [ticks[0]])
        #expect(plan(record(.skip, next: next), now: now, running: false).skippedOverlapping == [ticks[1]])
        #expect(plan(record(.allowAll, next: next), now: now, running: true).starts == ticks)
        #expect(plan(record(.skip, next: next), now: now, running: true).starts.isEmpty)
        let one = plan(record(.bufferOne, next: next), now: now, running: true)
        #expect(one.starts.isEmpty && one.record.bufferedTicks == [ticks[0]] && one.skippedOverlapping == [ticks[1]])
        let all = plan(record(.bufferAll, next: next), now: now, running: true)
        #expect(all.starts.isEmpty && all.record.bufferedTicks == ticks)
        let cancel = plan(record(.cancelOther, next: next), now: now, running: true)
        #expect(cancel.starts == [ticks[1]] && cancel.cancelPrevious && cancel.skippedOverlapping == [ticks[0]])
        #expect(!plan(record(.cancelOther, next: next), now: now, running: false).cancelPrevious)
        // Every plan moves the next tick past now and names the instance it started last.
        #expect(all.record.nextTick == utc("2026-01-05T10:03:00Z"))
        #expect(cancel.record.lastInstanceID == "sched:s:2026-01-05T10:02:00Z")
        // A buffered tick starts once the previous has finished, before the due ones.
        var buffered = record(.bufferAll, next: "2026-01-05T10:03:00Z")
        buffered.bufferedTicks = ticks
        let drained = plan(buffered, now: now, running: false)
        #expect(drained.starts == [ticks[0]] && drained.record.bufferedTicks == [ticks[1]])
        #expect(plan(buffered, now: now, running: true).starts.isEmpty)
    }

    @Test func ticksOlderThanTheCatchUpWindowAreSkippedAndRequestedOnesStartEvenPaused() {
        // Down from 10:01 to 12:00 with a five-minute window: 11:55 through 12:00 start.
        let late = plan(record(.allowAll, next: "2026-01-05T10:01:00Z", window: .seconds(300)), now: "2026-01-05T12:00:00Z", running: false)
        #expect(late.starts.first == utc("2026-01-05T11:55:00Z"))
        #expect(late.starts.count == 6)
        #expect(late.skippedLate == 114)
        #expect(late.firstSkippedLate == utc("2026-01-05T10:01:00Z"))
        #expect(late.record.nextTick == utc("2026-01-05T12:01:00Z"))
        var paused = record(.skip, next: "2026-01-05T10:01:00Z")
        paused.paused = true
        paused.requestedTicks = [utc("2026-01-05T09:00:00Z")]
        let pausedPlan = plan(paused, now: "2026-01-05T12:00:00Z", running: true)
        #expect(pausedPlan.starts == [utc("2026-01-05T09:00:00Z")])
        #expect(pausedPlan.record.requestedTicks.isEmpty)
        #expect(pausedPlan.record.nextTick == utc("2026-01-05T10:01:00Z"), "a paused schedule does not move on")
    }
}
