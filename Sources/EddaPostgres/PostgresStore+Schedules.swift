@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Schedules, one row each, written by compare-and-set on their revision: an update names the
/// revision it read, so of two workers that read the same one, one writes.
extension PostgresStore {
    public func schedules() async throws -> [ScheduleRecord] {
        try await readSchedules("SELECT \(unescaped: Self.scheduleColumns) FROM \(unescaped: tables.schedules) ORDER BY name")
    }

    public func schedule(named name: String) async throws -> ScheduleRecord? {
        try await readSchedules("SELECT \(unescaped: Self.scheduleColumns) FROM \(unescaped: tables.schedules) WHERE name = \(name)").first
    }

    @_spi(EddaStores) public func insertSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        try await writesRow(
            "insert a schedule",
            """
            INSERT INTO \(unescaped: tables.schedules) (\(unescaped: Self.scheduleColumns))
            VALUES (\(schedule.name), \(schedule.workflowName), \(schedule.expression), \(schedule.timeZone), \(schedule.input?.json),
                    \(schedule.overlap.rawValue), \(schedule.catchUpWindowMilliseconds), \(schedule.paused),
                    \(schedule.nextTick?.millisecondsSince1970), \(schedule.lastTick?.millisecondsSince1970), \(schedule.lastInstanceID),
                    \(ScheduleRecord.encodeTicks(schedule.bufferedTicks)), \(ScheduleRecord.encodeTicks(schedule.requestedTicks)),
                    1, \(schedule.updatedAt.millisecondsSince1970), \(schedule.queue), \(schedule.priority))
            ON CONFLICT (name) DO NOTHING
            RETURNING name
            """
        )
    }

    @_spi(EddaStores) public func updateSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        try await writesRow(
            "update a schedule",
            """
            UPDATE \(unescaped: tables.schedules) SET workflow_name = \(schedule.workflowName), expression = \(schedule.expression),
                time_zone = \(schedule.timeZone), input = \(schedule.input?.json), overlap = \(schedule.overlap.rawValue),
                catch_up_window = \(schedule.catchUpWindowMilliseconds), paused = \(schedule.paused),
                next_tick = \(schedule.nextTick?.millisecondsSince1970), last_tick = \(schedule.lastTick?.millisecondsSince1970),
                last_instance_id = \(schedule.lastInstanceID), buffered_ticks = \(ScheduleRecord.encodeTicks(schedule.bufferedTicks)),
                requested_ticks = \(ScheduleRecord.encodeTicks(schedule.requestedTicks)), revision = revision + 1,
                updated_at = \(schedule.updatedAt.millisecondsSince1970), queue_name = \(schedule.queue), priority = \(schedule.priority)
            WHERE name = \(schedule.name) AND revision = \(schedule.revision)
            RETURNING name
            """
        )
    }

    @_spi(EddaStores) public func deleteSchedule(named name: String) async throws -> Bool {
        try await writesRow("delete a schedule", "DELETE FROM \(unescaped: tables.schedules) WHERE name = \(name) RETURNING name")
    }

    private static let scheduleColumns = ScheduleRecord.storedColumns.joined(separator: ", ")

    /// Runs `query` and tells whether it returned a row: whether its write took place.
    private func writesRow(_ what: String, _ query: PostgresQuery) async throws -> Bool {
        try await perform(what) { [self] in
            for try await _ in try await client.query(query, logger: logger) { return true }
            return false
        }
    }

    private func readSchedules(_ query: PostgresQuery) async throws -> [ScheduleRecord] {
        try await perform("read schedules") { [self] in
            var schedules: [ScheduleRecord] = []
            for try await row in try await client.query(query, logger: logger) {
                let (
                    name, workflow, expression, zone, input, overlap, window, paused, next, last, lastInstance, buffered, requested, revision,
                    updated, queue, priority
                ) =
                    try row.decode(
                        (String, String, String, String, String?, String, Int64, Bool, Int64?, Int64?, String?, String, String, Int64, Int64, String?,
                         Int64).self)
                schedules.append(
                    ScheduleRecord(
                        storedName: name, workflowName: workflow, expression: expression, timeZone: zone, input: input, overlap: overlap,
                        catchUpWindow: window, paused: paused, nextTick: next, lastTick: last, lastInstanceID: lastInstance, bufferedTicks: buffered,
                        requestedTicks: requested, revision: revision, updatedAt: updated, queue: queue, priority: priority
                    )
                )
            }
            return schedules
        }
    }
}
