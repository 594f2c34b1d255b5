import ArgumentParser
import Edda
import EddaHTTP
import Foundation

/// What `--json` prints: one JSON object per line on standard output, keys sorted and named as the
/// HTTP API names them (`instance_id`, `created_at`…), stored payloads as JSON values, times as
/// ISO 8601 in UTC. Errors stay text on standard error, and the exit status is not 0.
enum JSONOutput {
    /// Prints `document` as one line.
    static func print(_ document: [String: Any]) {
        out(line(document))
    }

    static func line(_ document: [String: Any]) -> String {
        // Only strings, numbers, booleans, NSNull, arrays and dictionaries go in: it cannot fail.
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func instance(_ instance: WorkflowInstance) -> [String: Any] {
        [
            "instance_id": instance.instanceID,
            "workflow_name": instance.workflowName,
            "service_name": instance.serviceName,
            "status": instance.displayStatus.rawValue,
            "waiting_for": instance.waitingFor.map(WaitText.document) ?? NSNull(),
            "run": instance.runNumber,
            "input": value(instance.input),
            "output": instance.output.map(value) ?? NSNull(),
            "error": instance.error.map(error) ?? NSNull(),
            "created_at": time(instance.createdAt),
            "updated_at": time(instance.updatedAt),
            "ready_at": instance.readyAt.map(time) ?? NSNull(),
            "cancel_requested": instance.cancelRequested,
            "parent_instance_id": instance.parentInstanceID ?? NSNull(),
            "unreadable": instance.unreadable ?? NSNull(),
            "queue": instance.queue ?? NSNull(),
            "priority": instance.priority,
            "partition_key": instance.partitionKey ?? NSNull(),
        ].merging(WaitText.deadlineDocument(of: instance)) { $1 }
    }

    /// A history record: `failed` for a step's final failure, `retried` for a failed attempt after
    /// which the step was tried again.
    static func history(_ event: HistoryEvent) -> [String: Any] {
        [
            "sequence": event.sequence,
            "step_id": event.stepID,
            "name": event.name,
            "kind": event.kind.rawValue,
            "failed": event.isFinalFailure,
            "retried": event.isRetriedAttempt,
            "attempts": event.retry?.totalAttempts ?? 1,
            "payload": event.payload.map(value) ?? NSNull(),
            "error": event.error.map(error) ?? NSNull(),
            "recorded_at": time(event.recordedAt),
        ]
    }

    static func outboxEvent(_ event: OutboxEvent) -> [String: Any] {
        [
            "sequence": event.sequence,
            "id": event.event.id,
            "type": event.event.type,
            "source": event.event.source,
            "status": event.status.rawValue,
            "attempts": event.attempts,
            "instance_id": event.instanceID ?? NSNull(),
            "step_id": event.stepID ?? NSNull(),
            "last_error": event.lastError ?? NSNull(),
            "created_at": time(event.createdAt),
            "published_at": event.publishedAt.map(time) ?? NSNull(),
        ]
    }

    static func error(_ record: ErrorRecord) -> [String: Any] {
        ["error_type": record.type, "message": record.message]
    }

    /// A stored payload as a JSON value (as text if it is not JSON, which only a hand-edited database holds).
    static func value(_ payload: JSONPayload) -> Any {
        (try? JSONSerialization.jsonObject(with: payload.data, options: [.fragmentsAllowed])) ?? payload.json
    }

    static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}

/// The `--json` flag of a command that prints one result.
struct JSONFlag: ParsableArguments {
    @Flag(help: "Print the result as one JSON object (errors stay text on standard error).")
    var json = false
}
