@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Schedules on the file, one row each, written by compare-and-set on their revision.
extension SQLiteStore {
    public func schedules() async throws -> [ScheduleRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM workflow_schedules ORDER BY name").map(Self.schedule(from:))
        }
    }

    public func schedule(named name: String) async throws -> ScheduleRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM workflow_schedules WHERE name = ?", arguments: [name]).map(Self.schedule(from:))
        }
    }

    @_spi(EddaStores) public func insertSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        try await write { db in
            let columns = ScheduleRecord.storedColumns
            try db.execute(
                sql: """
                    INSERT INTO workflow_schedules (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))
                    ON CONFLICT (name) DO NOTHING
                    """,
                arguments: StatementArguments(Self.storedValues(schedule, revision: 1))
            )
            return db.changesCount > 0
        }
    }

    @_spi(EddaStores) public func updateSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        try await write { db in
            let assignments = ScheduleRecord.storedColumns.dropFirst().map { "\($0) = ?" }.joined(separator: ", ")
            var arguments = Array(Self.storedValues(schedule, revision: schedule.revision + 1).dropFirst())
            arguments += [schedule.name, schedule.revision]
            try db.execute(
                sql: "UPDATE workflow_schedules SET \(assignments) WHERE name = ? AND revision = ?", arguments: StatementArguments(arguments))
            return db.changesCount > 0
        }
    }

    @_spi(EddaStores) public func deleteSchedule(named name: String) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM workflow_schedules WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    /// The row's values, in ``ScheduleRecord/storedColumns`` order.
    private static func storedValues(_ schedule: ScheduleRecord, revision: Int64) -> [(any DatabaseValueConvertible)?] {
        [
            schedule.name, schedule.workflowName, schedule.expression, schedule.timeZone, schedule.input?.json, schedule.overlap.rawValue,
            schedule.catchUpWindowMilliseconds, schedule.paused, schedule.nextTick?.millisecondsSince1970, schedule.lastTick?.millisecondsSince1970,
            schedule.lastInstanceID, ScheduleRecord.encodeTicks(schedule.bufferedTicks), ScheduleRecord.encodeTicks(schedule.requestedTicks),
            revision, schedule.updatedAt.millisecondsSince1970, schedule.queue, schedule.priority,
        ]
    }

    private static func schedule(from row: Row) -> ScheduleRecord {
        ScheduleRecord(
            storedName: row["name"], workflowName: row["workflow_name"], expression: row["expression"], timeZone: row["time_zone"],
            input: row["input"], overlap: row["overlap"], catchUpWindow: row["catch_up_window"], paused: row["paused"], nextTick: row["next_tick"],
            lastTick: row["last_tick"], lastInstanceID: row["last_instance_id"], bufferedTicks: row["buffered_ticks"],
            requestedTicks: row["requested_ticks"], revision: row["revision"], updatedAt: row["updated_at"], queue: row["queue_name"],
            priority: row["priority"]
        )
    }
}
