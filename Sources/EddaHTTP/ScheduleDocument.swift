@_spi(EddaStores) package import Edda
package import Foundation

/// A schedule as JSON, the same for the API and `edda schedules --json`: its definition, where its
/// ticking stands and its next ticks. Times are ISO 8601 in UTC; the input is the stored JSON
/// (`null` when the app that declared the schedule builds it from each tick).
package enum ScheduleDocument {
    /// How many next ticks a document lists.
    package static let upcoming = 5

    package static func document(_ schedule: ScheduleRecord) -> [String: Any] {
        [
            "name": schedule.name,
            "workflow_name": schedule.workflowName,
            "spec": schedule.expression,
            "time_zone": schedule.timeZone,
            "input": schedule.input.flatMap { try? JSONSerialization.jsonObject(with: Data($0.json.utf8), options: [.fragmentsAllowed]) } ?? NSNull(),
            "overlap": schedule.overlap.rawValue,
            "catch_up_window_seconds": Double(schedule.catchUpWindowMilliseconds) / 1000,
            "queue": schedule.queue ?? NSNull(),
            "priority": schedule.priority,
            "paused": schedule.paused,
            "next_ticks": schedule.upcomingTicks(upcoming).map(time),
            "last_tick": schedule.lastTick.map(time) ?? NSNull(),
            "last_instance_id": schedule.lastInstanceID ?? NSNull(),
            "buffered_ticks": schedule.bufferedTicks.map(time),
            "requested_ticks": schedule.requestedTicks.map(time),
            "updated_at": time(schedule.updatedAt),
        ]
    }

    /// The keys of ``document(_:)``.
    package static let keys: Set<String> = [
        "name", "workflow_name", "spec", "time_zone", "input", "overlap", "catch_up_window_seconds", "queue", "priority", "paused", "next_ticks",
        "last_tick",
        "last_instance_id", "buffered_ticks", "requested_ticks", "updated_at",
    ]

    package static func time(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }
}
