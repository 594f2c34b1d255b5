package import Edda
package import Foundation

/// What an instance waits for, in words: one sentence the viewer, the API's consumers and
/// `edda show` all read the same way ("Waiting for event payment.completed · timeout in 4 min 12 s").
package enum WaitText {
    /// The sentence for `wait`, with times relative to `now`. `code` wraps each name (an event
    /// type, a channel, an ID): the viewer passes one that escapes and marks it up.
    package static func summary(_ wait: InstanceWait, now: Date, code: (String) -> String = { $0 }) -> String {
        var text: String
        switch wait.kind {
        case .event: text = "Waiting for event \(code(wait.awaited ?? "?"))"
        case .channel: text = "Waiting for a message on channel \(code(wait.awaited ?? "?"))"
        case .child: text = "Waiting for child \(code(wait.awaited ?? "?")) to finish"
        case .retry:
            text = "Waiting to retry step \(code(wait.stepID ?? "?"))" + (wait.attempt.map { " (attempt \($0 + 1))" } ?? "")
        default: text = "Waiting for timer" + (wait.stepID.map { " \(code($0))" } ?? "")
        }
        guard let deadline = wait.deadline else {
            return wait.kind == .timer ? text : text + " · no timeout"
        }
        let when = relative(deadline, now: now)
        switch wait.kind {
        case .timer: text += deadline > now ? " · fires \(when)" : " · due \(when)"
        case .retry: text += deadline > now ? " · next attempt \(when)" : " · due \(when)"
        default: text += deadline > now ? " · timeout \(when)" : " · timed out \(when)"
        }
        if let timeout = wait.timeout { text += " (of \(duration(timeout)))" }
        return text
    }

    /// `date` relative to `now`: "in 4 min 12 s", "3 s ago", "now".
    package static func relative(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        guard abs(seconds) >= 1 else { return "now" }
        let text = duration(.milliseconds(Int64(abs(seconds) * 1000)))
        return seconds > 0 ? "in \(text)" : "\(text) ago"
    }

    /// A duration as its two largest units: "4 min 12 s", "2 h 5 min", "3 d 4 h", "12 s", "250 ms".
    package static func duration(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        guard milliseconds >= 1000 else { return "\(milliseconds) ms" }
        let seconds = milliseconds / 1000
        let units: [(Int64, String)] = [(86_400, "d"), (3600, "h"), (60, "min"), (1, "s")]
        var parts: [String] = []
        var rest = seconds
        for (size, name) in units where parts.count < 2 {
            let count = rest / size
            rest %= size
            if count > 0 {
                parts.append("\(count) \(name)")
            } else if !parts.isEmpty {
                break   // "2 h", not "2 h 0 min"
            }
        }
        return parts.joined(separator: " ")
    }

    /// A time in this server's time zone, as people read it: `2026-12-05 14:23:10 CET`.
    package static func localTime(_ date: Date, timeZone: TimeZone = .current) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let zone = timeZone.abbreviation(for: date) ?? timeZone.identifier
        let day = String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
        return day + " " + String(format: "%02d:%02d:%02d", parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0) + " " + zone
    }

    /// The JSON document of a wait, as the API and `--json` print it.
    package static func document(_ wait: InstanceWait) -> [String: Any] {
        [
            "kind": wait.kind.rawValue,
            "awaited": wait.awaited ?? NSNull(),
            "step_id": wait.stepID ?? NSNull(),
            "deadline": wait.deadline.map(timestamp) ?? NSNull(),
            "since": wait.since.map(timestamp) ?? NSNull(),
            "timeout_seconds": wait.timeout.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? NSNull(),
            "attempt": wait.attempt ?? NSNull(),
        ]
    }

    /// An instance's timeouts and, while it runs, when the first passes: "workflow timeout 30 s,
    /// run timeout 10 s · deadline in 12 s". `nil` for an instance with no deadline.
    package static func deadline(of instance: WorkflowInstance, now: Date) -> String? {
        guard instance.deadline != nil || instance.workflowTimeout != nil || instance.runTimeout != nil else { return nil }
        var parts = [("workflow timeout", instance.workflowTimeout), ("run timeout", instance.runTimeout)].compactMap { name, timeout in
            timeout.map { "\(name) \(duration($0))" }
        }
        if instance.deadlineExceeded?.kind == .inherited { parts.append("the parent's deadline, which is earlier") }
        var text = parts.joined(separator: ", ")
        if let deadline = instance.deadline, !instance.status.isTerminal {
            text += deadline > now ? " · deadline \(relative(deadline, now: now))" : " · deadline passed \(relative(deadline, now: now))"
        }
        return text
    }

    /// Why a cancelled instance was cancelled, when a deadline did it: `deadline exceeded: …`.
    package static func cancellationReason(of instance: WorkflowInstance) -> String? {
        instance.status == .cancelled ? instance.error?.deadlineExceeded?.description : nil
    }

    /// The deadline members of an instance's JSON document (the API's and `edda show --json`'s), and
    /// its application version: the members both documents share beyond their own.
    package static func deadlineDocument(of instance: WorkflowInstance) -> [String: Any] {
        [
            "deadline": instance.deadline.map(timestamp) ?? NSNull(),
            "workflow_deadline": instance.workflowDeadline.map(timestamp) ?? NSNull(),
            "workflow_timeout_ms": instance.workflowTimeout.map { Int64($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }
                ?? NSNull(),
            "run_timeout_ms": instance.runTimeout.map { Int64($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }
                ?? NSNull(),
            "queue_deadline": instance.queueDeadline.map(timestamp) ?? NSNull(),
            "queue_timeout_ms": instance.queueTimeout.map { Int64($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }
                ?? NSNull(),
            "cancellation_reason": cancellationReason(of: instance) ?? NSNull(),
            "app_version": instance.applicationVersion ?? NSNull(),
        ]
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
