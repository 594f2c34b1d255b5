import Edda
import EddaHTTP
import Foundation
import Testing

/// The instance page's timeline, built from history records: times from the records and their
/// retry metadata, runs of similar steps grouped, roles marked, user data escaped.
@Suite("HTTP: the viewer's timeline")
struct TimelineTests {
    static let origin = Date(timeIntervalSince1970: 1_800_000_000)

    /// A record written `at` seconds after the origin.
    static func record(
        _ sequence: Int64, _ stepID: String, _ name: String, _ kind: HistoryEventKind, at seconds: Double,
        payload: String? = nil, retry: RetryMetadata? = nil
    ) -> HistoryEvent {
        HistoryEvent(
            sequence: sequence, instanceID: "t", stepID: stepID, position: Int(sequence), name: name, kind: kind,
            payload: payload.map { JSONPayload(json: $0) }, error: kind == .activityFailed ? ErrorRecord(type: "E", message: "no") : nil,
            retry: retry, recordedAt: origin.addingTimeInterval(seconds)
        )
    }

    static func milliseconds(_ seconds: Double) -> Int64 { Int64((origin.timeIntervalSince1970 + seconds) * 1000) }

    @Test func eachStepStartsWhereItsRecordsSay() throws {
        let history = [
            Self.record(1, "reserve:1", "reserve", .activityCompleted, at: 1),
            // Two failed attempts with their backoffs, then the outcome with the retry metadata.
            Self.record(2, "charge:2", "charge", .attemptFailed, at: 1.5, payload: #"{"attempt":1,"first_attempt_at_ms":\#(Self.milliseconds(1.2)),"next_attempt_at_ms":\#(Self.milliseconds(2))}"#),
            Self.record(3, "charge:2", "charge", .attemptFailed, at: 2.5, payload: #"{"attempt":2,"first_attempt_at_ms":\#(Self.milliseconds(1.2)),"next_attempt_at_ms":\#(Self.milliseconds(3.5))}"#),
            Self.record(4, "charge:2", "charge", .activityCompleted, at: 4, retry: RetryMetadata(totalAttempts: 3, totalDurationMilliseconds: 2_800, exhausted: false, lastError: nil, errors: [])),
            Self.record(5, "edda.sleep:3", "edda.sleep", .timerScheduled, at: 4.1, payload: #"{"deadline_ms":\#(Self.milliseconds(10))}"#),
            Self.record(6, "ship:4", "ship", .activityCompleted, at: 10.5),
            // Only its retry metadata tells when it began: its end less the attempts' duration.
            Self.record(7, "bill:5", "bill", .activityFailed, at: 20, retry: RetryMetadata(totalAttempts: 2, totalDurationMilliseconds: 4_000, exhausted: true, lastError: nil, errors: [])),
            Self.record(8, "compensate:reserve:1", "release", .compensationCompleted, at: 21),
        ]
        let steps = Timeline.steps(history, createdAt: Self.origin, claimed: nil, now: Self.origin.addingTimeInterval(60))
        #expect(steps.map(\.id) == ["reserve:1", "charge:2", "edda.sleep:3", "ship:4", "bill:5", "compensate:reserve:1"])
        func offsets(_ step: Timeline.Step) -> [Double] { [step.start, step.end].map { ($0.timeIntervalSince(Self.origin) * 10).rounded() / 10 } }
        #expect(offsets(steps[0]) == [0, 1], "the first step starts when the instance was created")
        #expect(offsets(steps[1]) == [1.2, 4], "the first attempt's start, from the retry schedule")
        #expect(steps[1].attempts == 3 && !steps[1].open && steps[1].kind == .activityCompleted)
        let segments = steps[1].segments.map { [($0.start.timeIntervalSince(Self.origin) * 10).rounded() / 10, ($0.end.timeIntervalSince(Self.origin) * 10).rounded() / 10, $0.backoff ? 1 : 0] }
        #expect(segments == [[1.2, 1.5, 0], [1.5, 2, 1], [2, 2.5, 0], [2.5, 3.5, 1], [3.5, 4, 0]], "attempts and the backoffs between them")
        #expect(offsets(steps[2]) == [4.1, 10] && steps[2].role == .wait, "a timer lasts from its record to its deadline")
        #expect(offsets(steps[3]) == [10, 10.5], "the step after a timer starts when it fired")
        #expect(offsets(steps[4]) == [16, 20] && steps[4].failed)
        #expect(steps[5].role == .compensation && offsets(steps[5]) == [20, 21])
    }

    @Test func aStepWrittenByTheLatestRunStartsNoEarlierThanThatRun() {
        let history = [
            Self.record(1, "a:1", "a", .activityCompleted, at: 1),
            Self.record(2, "b:2", "b", .activityCompleted, at: 30),
        ]
        let steps = Timeline.steps(history, createdAt: Self.origin, claimed: Self.origin.addingTimeInterval(29), now: Self.origin.addingTimeInterval(60))
        #expect(steps[1].start == Self.origin.addingTimeInterval(29), "not at the crashed run's last record")
    }

    @Test func aStepBetweenAttemptsAndATimerNotYetFiredAreOpen() {
        let history = [
            Self.record(1, "edda.sleep:1", "edda.sleep", .timerScheduled, at: 1, payload: #"{"deadline_ms":\#(Self.milliseconds(100))}"#),
        ]
        let now = Self.origin.addingTimeInterval(5)
        let timer = Timeline.steps(history, createdAt: Self.origin, claimed: nil, now: now)[0]
        #expect(timer.open && timer.end == now, "a timer not fired yet lasts until now")
        let retrying = Timeline.steps(
            [Self.record(1, "c:1", "c", .attemptFailed, at: 1, payload: #"{"attempt":1,"first_attempt_at_ms":\#(Self.milliseconds(0.5)),"next_attempt_at_ms":\#(Self.milliseconds(9))}"#)],
            createdAt: Self.origin, claimed: nil, now: now
        )[0]
        #expect(retrying.open && retrying.kind == .attemptFailed && retrying.end == now && retrying.segments.last?.backoff == true)
    }

    @Test func runsOfSimilarStepsCollapseIntoGroups() {
        var history: [HistoryEvent] = []
        func add(_ name: String, _ kind: HistoryEventKind = .activityCompleted, count: Int) {
            for _ in 0..<count {
                let sequence = Int64(history.count + 1)
                history.append(Self.record(sequence, "\(name):\(sequence)", name, kind, at: Double(sequence) / 10))
            }
        }
        add("validate", count: 3)
        add("charge_card", count: 120)
        add("ship", count: 1)
        add("charge_card", count: 2)
        add("charge_card", .compensationCompleted, count: 2)   // same name, another role: a group of its own
        let rows = Timeline.rows(Timeline.steps(history, createdAt: Self.origin, claimed: nil, now: Self.origin.addingTimeInterval(100)))
        #expect(rows.map(\.label) == ["validate ×3", "charge_card ×120", "ship", "charge_card ×2", "charge_card ×2"])
        #expect(rows.map(\.isGroup) == [true, true, false, true, true])
        #expect(rows[4].steps.allSatisfy { $0.role == .compensation })
        #expect(rows[1].steps.first?.id == "charge_card:4" && rows[1].steps.last?.id == "charge_card:123")
    }

    @Test func fiveHundredStepsRenderAsAFewGroupsWithTheirStepIDsOnHover() throws {
        var history: [HistoryEvent] = []
        for (name, count) in [("validate_item", 250), ("charge_card", 120), ("ship", 130)] {
            for _ in 0..<count {
                let sequence = Int64(history.count + 1)
                history.append(Self.record(sequence, "\(name):\(sequence)", name, .activityCompleted, at: Double(sequence) / 100))
            }
        }
        let instance = WorkflowInstance(
            instanceID: "big", workflowName: "bulk", serviceName: "test", status: .completed, input: JSONPayload(json: "{}"),
            createdAt: Self.origin, updatedAt: Self.origin.addingTimeInterval(5)
        )
        let html = Timeline.html(history, instance: instance, now: Self.origin.addingTimeInterval(10), complete: true)
        #expect(html.contains("500 steps over 5.0 s"), "\(html.prefix(300))")
        #expect(html.components(separatedBy: "<details class=\"tl-group tl-role-activity\">").count - 1 == 3)
        #expect(html.contains(">charge_card ×120<"))
        #expect(html.contains("<title>charge_card ×120, 1.2 s: charge_card:251 … charge_card:370</title>"))
        #expect(html.contains("<title>charge_card:300 · ActivityCompleted · 10 ms · "), "each step's ID on hover")
        #expect(html.components(separatedBy: "<rect ").count - 1 == 503 + 500, "a bar a step in its group's row and in its own")
    }

    @Test func compensationsAndWaitsAreMarkedAndNamesEscaped() {
        let history = [
            Self.record(1, "<b>x</b>:1", "<script>", .activityCompleted, at: 1),
            Self.record(2, "go:2", "edda.wait_event", .messageReceived, at: 2, payload: #"{"type":"go"}"#),
            Self.record(3, "compensate:a:1", "undo", .compensationFailed, at: 3),
        ]
        let instance = WorkflowInstance(
            instanceID: "m", workflowName: "w", serviceName: "test", status: .failed, input: JSONPayload(json: "{}"),
            createdAt: Self.origin, updatedAt: Self.origin
        )
        let html = Timeline.html(history, instance: instance, now: Self.origin.addingTimeInterval(4), complete: true)
        #expect(!html.contains("<script>") && !html.contains("<b>x"))
        #expect(html.contains("&lt;script&gt;") && html.contains("title=\"&lt;b&gt;x&lt;/b&gt;:1\""))
        #expect(html.contains("<div class=\"tl-row tl-role-wait\">") && html.contains("<span class=\"tag tag-wait\">wait</span>"))
        #expect(html.contains("<div class=\"tl-row tl-role-compensation\">") && html.contains("<span class=\"tag tag-compensation\">compensation</span>"))
        #expect(html.contains("class=\"tl-failed\""), "a failed compensation is drawn failed")
    }

    @Test func durationsReadAsPeopleSayThem() {
        #expect(Timeline.duration(0.25) == "250 ms")
        #expect(Timeline.duration(3.21) == "3.2 s")
        #expect(Timeline.duration(252) == "4 min 12 s")
        #expect(Timeline.duration(-1) == "0 ms")
    }
}
