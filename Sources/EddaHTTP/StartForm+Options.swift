import Edda
import Foundation

/// The start form's options besides the input, posted under `edda_` names: the queue to start on
/// (one the app registers, or none), its priority, deduplication ID and partition key, and the
/// workflow timeout. They go into the same start the JSON API makes, and the engine's refusals
/// (an unknown queue, a missing partition key, a deduplication ID in use) show next to them.
extension StartForm {
    /// The options as read from the form.
    struct Options: Equatable {
        var queue: String?
        var priority = 0
        var deduplicationID: String?
        var partitionKey: String?
        var timeout: Duration?
    }

    /// The options' field names.
    enum OptionField {
        static let queue = "edda_queue"
        static let priority = "edda_priority"
        static let deduplicationID = "edda_deduplication_id"
        static let partitionKey = "edda_partition_key"
        static let timeout = "edda_timeout"
        static let all = [queue, priority, deduplicationID, partitionKey, timeout]
    }

    // MARK: - Rendering

    /// The options' fields: the queue ones only when the app registers a queue.
    func optionFields(queues: [Queue]) -> String {
        var html = "<fieldset class=\"options\"><legend>Options <small>(optional)</small></legend>"
        if !queues.isEmpty {
            let chosen = options[OptionField.queue] ?? ""
            var select = "<select name=\"\(OptionField.queue)\"><option value=\"\">none: start at once</option>"
            for queue in queues {
                let label = HTML.escape(queue.name) + (queue.partitioned ? " (partitioned)" : "")
                select += "<option value=\"\(HTML.escape(queue.name))\"\(queue.name == chosen ? " selected" : "")>\(label)</option>"
            }
            html += optionField(OptionField.queue, "Queue", select + "</select>")
            html += optionField(
                OptionField.priority, "Priority <small>(on the queue: lower is admitted first; 0 by default)</small>",
                input(OptionField.priority, mode: "numeric"))
            html += optionField(
                OptionField.deduplicationID, "Deduplication ID <small>(refused while a queued or running instance on the queue holds it)</small>",
                input(OptionField.deduplicationID)
            )
            html += optionField(
                OptionField.partitionKey, "Partition key <small>(required on a partitioned queue)</small>", input(OptionField.partitionKey))
        }
        html += optionField(
            OptionField.timeout, "Timeout <small>(seconds from now, queued time included; the workflow's own if empty)</small>",
            input(OptionField.timeout, mode: "decimal")
        )
        return html + "</fieldset>"
    }

    private func input(_ name: String, mode: String? = nil) -> String {
        "<input name=\"\(name)\"\(mode.map { " inputmode=\"\($0)\"" } ?? "") value=\"\(HTML.escape(options[name] ?? ""))\">"
    }

    private func optionField(_ name: String, _ caption: String, _ control: String) -> String {
        var html = "<div class=\"field\"><label>\(caption) \(control)</label>"
        if let message = errors[name] { html += " <span class=\"field-error\">\(HTML.escape(message))</span>" }
        return html + "</div>"
    }

    // MARK: - Reading

    /// The posted options, or `nil` with an error per field that cannot be read.
    mutating func readOptions() -> Options? {
        func text(_ name: String) -> String? {
            let value = (options[name] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return value.isEmpty ? nil : value
        }
        var read = Options(
            queue: text(OptionField.queue), deduplicationID: text(OptionField.deduplicationID), partitionKey: text(OptionField.partitionKey))
        var valid = true
        if let priority = text(OptionField.priority) {
            if let value = Int(priority) {
                read.priority = value
            } else {
                errors[OptionField.priority] = "must be a whole number, not '\(priority)'"
                valid = false
            }
        }
        if let timeout = text(OptionField.timeout) {
            if let seconds = Double(timeout), seconds.isFinite, seconds >= 0.001, seconds < 1e12 {
                read.timeout = .milliseconds(Int64((seconds * 1000).rounded()))
            } else {
                errors[OptionField.timeout] = "must be a number of seconds above zero, such as 30 or 0.5, not '\(timeout)'"
                valid = false
            }
        }
        return valid ? read : nil
    }

    /// The option field a refused start's error is about, if it is about one.
    func optionField(of error: EngineError) -> String? {
        switch error.code {
        case .unknownQueue: OptionField.queue
        case .invalidQueueOptions: (options[OptionField.queue] ?? "").isEmpty ? OptionField.queue : OptionField.partitionKey
        case .deduplicationIDInUse: OptionField.deduplicationID
        default: nil
        }
    }
}
