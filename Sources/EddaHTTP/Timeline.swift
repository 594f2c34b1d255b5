package import Edda
package import Foundation

/// An instance's steps on a time axis, rendered by the server: one row a step, each with a bar
/// from its start to its end (its attempts solid, the backoffs between them light), the step ID on
/// hover, and its duration. Runs of consecutive steps of the same activity (and the same role)
/// collapse into one row, "charge_card ×120", that opens — a `<details>`, no script — onto its
/// steps, so that 500 steps stay readable. Compensations and waits (timers, events, messages) have
/// their own colours and are tagged.
///
/// History records carry the time they were written, not a start: a step's end is its record's,
/// and its start is known from its retry schedule (the first attempt's start), from its retry
/// metadata (its end less the attempts' total duration), from a timer's record (when it was set)
/// or, for the rest, is the previous record's time (the workflow's code ran between), never before
/// the latest run began when the step was written in it. A timer ends at its deadline. Every step
/// is built in one pass over the records, and rendered in one more.
package enum Timeline {
    /// What a step is, beyond running an activity: how its bar is drawn and tagged.
    package enum Role: String, Sendable {
        case activity, compensation, wait, child, value, message

        init(_ kind: HistoryEventKind) {
            switch kind {
            case .compensationCompleted, .compensationFailed: self = .compensation
            case .timerScheduled, .messageReceived, .waitTimedOut: self = .wait
            case .childStarted: self = .child
            case .valueRecorded, .patchMarker: self = .value
            case .messagePublished: self = .message
            default: self = .activity
            }
        }
    }

    /// A span of a step's time: an attempt, or the backoff before the next one.
    package struct Segment: Equatable, Sendable {
        package var start: Date
        package var end: Date
        package var backoff: Bool
    }

    /// One step, from its records.
    package struct Step: Sendable {
        package var id: String
        package var name: String
        package var role: Role
        /// The kind of its latest record: its outcome, or ``HistoryEventKind/attemptFailed`` while it retries.
        package var kind: HistoryEventKind
        package var start: Date
        package var end: Date
        package var attempts: Int = 1
        /// Its attempts and backoffs, when its records tell them (empty for one attempt).
        package var segments: [Segment] = []
        /// A step still running: waiting now, or between attempts.
        package var open = false
        /// What its hover text says instead of its kind (the row for what the instance waits for now).
        package var note: String?

        package var failed: Bool { kind == .activityFailed || kind == .compensationFailed }
        package var duration: TimeInterval { end.timeIntervalSince(start) }
    }

    /// A row: one step, or a run of similar steps collapsed into a group.
    package struct Row: Sendable {
        package var steps: [Step]
        package var isGroup: Bool { steps.count > 1 }
        package var start: Date { steps.map(\.start).min() ?? .distantPast }
        package var end: Date { steps.map(\.end).max() ?? .distantPast }
        package var label: String { isGroup ? "\(steps[0].name) ×\(steps.count)" : steps[0].name }
    }

    /// Rows shown at most; the rest are counted (the history below lists them).
    package static let maxRows = 300

    // MARK: - Steps

    private struct Deadline: Decodable {
        var deadline_ms: Int64
    }

    /// The steps `history` records, in the order they began, with their times (see ``Timeline``).
    /// `claimed` is when the latest run began; `now` ends a wait that has not ended yet.
    package static func steps(_ history: [HistoryEvent], createdAt: Date, claimed: Date?, now: Date) -> [Step] {
        var steps: [Step] = []
        var index: [String: Int] = [:]
        /// Where the next attempt of a retrying step starts.
        var attemptStarts: [Int: Date] = [:]
        var cursor = createdAt   // the previous record's time: when the workflow's code went on
        for event in history where event.kind != .retried {
            let at = event.recordedAt
            if let position = index[event.stepID] {
                // A later record of a step: its next failed attempt, or its outcome.
                var step = steps[position]
                let attemptStart = attemptStarts[position] ?? step.start
                step.segments.append(Segment(start: attemptStart, end: max(at, attemptStart), backoff: false))
                step.kind = event.kind
                step.end = max(at, step.start)
                step.attempts = event.retry?.totalAttempts ?? step.attempts + 1
                step.open = false
                if event.kind == .attemptFailed { retrying(&step, event, position: position, now: now, attemptStarts: &attemptStarts) }
                steps[position] = step
                cursor = max(cursor, step.end)
                continue
            }
            var start = cursor
            if let claimed, at >= claimed, start < claimed { start = claimed }   // written by the latest run, after it began
            if event.kind == .attemptFailed, let schedule = try? event.payload?.decode(AttemptRecord.self) {
                start = Date(timeIntervalSince1970: Double(schedule.firstAttemptAtMilliseconds) / 1000)
            } else if event.kind == .timerScheduled {
                start = at
            } else if let retry = event.retry, retry.totalAttempts > 1 {
                start = at.addingTimeInterval(-Double(retry.totalDurationMilliseconds) / 1000)
            }
            start = min(start, at)
            var step = Step(id: event.stepID, name: event.name, role: Role(event.kind), kind: event.kind, start: start, end: at)
            step.attempts = event.retry?.totalAttempts ?? 1
            if event.kind == .attemptFailed {
                step.segments.append(Segment(start: start, end: at, backoff: false))
                retrying(&step, event, position: steps.count, now: now, attemptStarts: &attemptStarts)
            } else if event.kind == .timerScheduled, let deadline = try? event.payload?.decode(Deadline.self) {
                // A timer lasts until its deadline (until now, while it has not fired).
                let fires = Date(timeIntervalSince1970: Double(deadline.deadline_ms) / 1000)
                step.end = max(at, min(fires, now))
                step.open = fires > now
            }
            index[event.stepID] = steps.count
            steps.append(step)
            cursor = max(cursor, step.end)
        }
        return steps
    }

    /// A failed attempt: the backoff after it, up to the next attempt's start (or now).
    private static func retrying(_ step: inout Step, _ event: HistoryEvent, position: Int, now: Date, attemptStarts: inout [Int: Date]) {
        guard let schedule = try? event.payload?.decode(AttemptRecord.self) else { return }
        let next = Date(timeIntervalSince1970: Double(schedule.nextAttemptAtMilliseconds) / 1000)
        let backoffEnd = max(event.recordedAt, min(next, now))
        step.segments.append(Segment(start: event.recordedAt, end: backoffEnd, backoff: true))
        step.end = backoffEnd
        step.open = true
        attemptStarts[position] = next
    }

    /// The steps as rows: each run of consecutive steps with the same name and role is one group.
    package static func rows(_ steps: [Step]) -> [Row] {
        var rows: [Row] = []
        for step in steps {
            if let last = rows.last?.steps.last, last.name == step.name, last.role == step.role, !step.open, !last.open {
                rows[rows.count - 1].steps.append(step)
            } else {
                rows.append(Row(steps: [step]))
            }
        }
        return rows
    }

    // MARK: - HTML

    /// The timeline section: a legend with the span, the axis, and a row a step or group. `wait`
    /// adds a last row, "waiting now", from the last record to `now`.
    package static func html(_ history: [HistoryEvent], instance: WorkflowInstance, now: Date, complete: Bool) -> String {
        var steps = Self.steps(history, createdAt: instance.createdAt, claimed: instance.lastClaimedAt, now: now)
        if let wait = instance.waitingFor, wait.kind != .timer, wait.kind != .retry, complete {
            let since = max(wait.since ?? steps.last?.end ?? instance.createdAt, steps.last?.end ?? instance.createdAt)
            var step = Step(id: wait.stepID ?? wait.awaited ?? "", name: "waiting now", role: .wait, kind: .messageReceived, start: min(since, now), end: now)
            step.open = true
            step.note = WaitText.summary(wait, now: now)
            steps.append(step)
        }
        guard let first = steps.first else { return "<p class=\"empty\">No steps yet.</p>" }
        let origin = min(instance.createdAt, first.start)
        let finish = steps.map(\.end).max() ?? origin
        let scale = Scale(origin: origin, span: max(finish.timeIntervalSince(origin), 0.001))
        let rows = Self.rows(steps)

        var html = "<div class=\"tl\" id=\"timeline\"><p class=\"tl-note\">\(steps.count) step\(steps.count == 1 ? "" : "s")"
        html += " over \(duration(finish.timeIntervalSince(origin))) from \(HTML.timeTag(origin, now: now))"
        if !complete { html += " (the first \(history.count) records)" }
        html += ". <span class=\"tl-key tl-ok\"></span> activity <span class=\"tl-key tl-failed\"></span> failed "
        html += "<span class=\"tl-key tl-backoff\"></span> backoff <span class=\"tl-key tl-compensation\"></span> compensation "
        html += "<span class=\"tl-key tl-wait\"></span> wait <span class=\"tl-key tl-child\"></span> child or message. "
        html += "Hover a bar for its step ID; open a group (▸) for its steps.</p>"
        html += "<div class=\"tl-row tl-axis\" aria-hidden=\"true\"><span></span><span class=\"tl-ticks\">"
        for quarter in 0...4 { html += "<span>\(duration(scale.span * Double(quarter) / 4))</span>" }
        html += "</span><span></span></div>"
        for row in rows.prefix(maxRows) {
            if row.isGroup {
                html += group(row, scale)
            } else {
                html += "<div class=\"tl-row tl-role-\(row.steps[0].role.rawValue)\">" + cells(row.steps[0], scale) + "</div>"
            }
        }
        if rows.count > maxRows {
            let rest = rows.dropFirst(maxRows).reduce(0) { $0 + $1.steps.count }
            html += "<p class=\"tl-note\">… and \(rest) more step\(rest == 1 ? "" : "s"): the history below lists them.</p>"
        }
        return html + "</div>"
    }

    /// Maps times to the bars' 0–1000 coordinates.
    struct Scale {
        var origin: Date
        var span: TimeInterval

        func x(_ date: Date) -> Double { date.timeIntervalSince(origin) / span * 1000 }
    }

    /// A collapsed group: its summary row (the run's span, a tick a step), then its steps' rows.
    static func group(_ row: Row, _ scale: Scale) -> String {
        let role = row.steps[0].role
        let failures = row.steps.count(where: \.failed)
        let (start, end) = (row.start, row.end)
        let ids = "\(row.steps[0].id) … \(row.steps[row.steps.count - 1].id)"
        let title = "\(row.label), \(duration(end.timeIntervalSince(start))): \(ids)" + (failures > 0 ? ", \(failures) failed" : "")
        var html = "<details class=\"tl-group tl-role-\(role.rawValue)\"><summary class=\"tl-row\">"
        html += "<span class=\"tl-label\" title=\"\(HTML.escape(ids))\">\(HTML.escape(row.label))\(tag(role))"
        if failures > 0 { html += " <span class=\"tag error\">\(failures) failed</span>" }
        html += "</span><svg class=\"tl-bar\" viewBox=\"0 0 1000 12\" preserveAspectRatio=\"none\" role=\"img\"><title>\(HTML.escape(title))</title>"
        html += rect(scale.x(start), scale.x(end), "tl-span \(colour(role, failed: false))", full: true)
        for step in row.steps { html += rect(scale.x(step.start), scale.x(step.end), colour(role, failed: step.failed), full: true) }
        html += "</svg><span class=\"tl-dur\">\(duration(end.timeIntervalSince(start)))</span></summary><div class=\"tl-members\">"
        for step in row.steps { html += "<div class=\"tl-row tl-role-\(role.rawValue)\">" + cells(step, scale) + "</div>" }
        return html + "</div></details>"
    }

    /// A step's label (its ID on hover), bar and duration.
    static func cells(_ step: Step, _ scale: Scale) -> String {
        var title = "\(step.id) · \(step.note ?? step.kind.rawValue)"
        if step.attempts > 1 { title += " · \(step.attempts) attempts" }
        title += " · \(duration(step.duration))" + (step.open ? " so far" : "")
        title += " · \(HTML.time(step.start)) → \(HTML.time(step.end))"
        var html = "<span class=\"tl-label\" title=\"\(HTML.escape(step.id))\">\(HTML.escape(step.name))\(tag(step.role))"
        if step.attempts > 1 { html += " <small>\(step.attempts) attempts</small>" }
        html += "</span><svg class=\"tl-bar\" viewBox=\"0 0 1000 12\" preserveAspectRatio=\"none\" role=\"img\"><title>\(HTML.escape(title))</title>"
        let fill = colour(step.role, failed: step.failed)
        if step.segments.isEmpty {
            html += rect(scale.x(step.start), scale.x(step.end), fill + (step.open ? " tl-open" : ""), full: true)
        } else {
            for segment in step.segments {
                html += rect(scale.x(segment.start), scale.x(segment.end), segment.backoff ? "tl-backoff" : fill, full: !segment.backoff)
            }
        }
        return html + "</svg><span class=\"tl-dur\">\(duration(step.duration))\(step.open ? "…" : "")</span>"
    }

    static func colour(_ role: Role, failed: Bool) -> String {
        if failed { return "tl-failed" }
        switch role {
        case .activity: return "tl-ok"
        case .compensation: return "tl-compensation"
        case .wait: return "tl-wait"
        case .child, .message: return "tl-child"
        case .value: return "tl-value"
        }
    }

    static func tag(_ role: Role) -> String {
        role == .activity ? "" : " <span class=\"tag tag-\(role.rawValue)\">\(role.rawValue)</span>"
    }

    /// A bar from `x1` to `x2` (at least 2 units wide, so that an instant shows); a backoff is thinner.
    static func rect(_ x1: Double, _ x2: Double, _ classes: String, full: Bool) -> String {
        let x = min(max(x1, 0), 998)
        let width = max(x2 - x, 2)
        let (y, height) = full ? (1, 10) : (4, 4)
        return "<rect x=\"\(rounded(x))\" y=\"\(y)\" width=\"\(rounded(width))\" height=\"\(height)\" class=\"\(classes)\"/>"
    }

    static func rounded(_ value: Double) -> String {
        let tenths = (value * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
    }

    /// A duration as people read it: "250 ms", "3.2 s", "4 min 12 s".
    package static func duration(_ seconds: TimeInterval) -> String {
        let milliseconds = (max(seconds, 0) * 1000).rounded()
        if milliseconds < 1000 { return "\(Int(milliseconds)) ms" }
        if milliseconds < 60_000 {
            let tenths = Int((milliseconds / 100).rounded())
            return "\(tenths / 10).\(tenths % 10) s"
        }
        return WaitText.duration(.milliseconds(Int64(milliseconds)))
    }
}
