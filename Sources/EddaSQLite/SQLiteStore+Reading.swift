@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Reads: instances, history, pages and counts, on a reader that never blocks the writer.
extension SQLiteStore {
    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        try await read { db in
            guard let instance = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM workflow_instances WHERE instance_id = ?"), arguments: [instanceID])
                .map(Self.instance(from:))
            else { return nil }
            return try Self.withWaits([instance], db).first
        }
    }

    public func history(of instanceID: String) async throws -> [HistoryEvent] {
        try await read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM workflow_history WHERE instance_id = ? ORDER BY sequence"), arguments: [instanceID])
                .map(Self.historyEvent(from:))
        }
    }

    public func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent] {
        var sql = "SELECT * FROM workflow_history WHERE instance_id = ? AND sequence > ?"
        var arguments: StatementArguments = [instanceID, query.after]
        if let kinds = query.kinds {
            sql += " AND kind IN (\(kinds.map { _ in "?" }.joined(separator: ", ")))"
            arguments += StatementArguments(kinds.map(\.rawValue).sorted())
        }
        if let before = query.before {
            sql += " AND sequence < ?"
            arguments += [before]
        }
        // A page before a record reads backwards from it, then turns to append order.
        let backwards = query.before != nil
        sql += " ORDER BY sequence\(backwards ? " DESC" : "") LIMIT ?"
        arguments += [max(query.limit, 0)]
        let finalArguments = arguments
        let events = try await read { [sql] db in
            try Row.fetchAll(db, sql: sql, arguments: finalArguments).map(Self.historyEvent(from:))
        }
        return backwards ? events.reversed() : events
    }

    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        var (conditions, arguments) = Self.conditions(of: query)
        if let status = query.status {
            if status == .waiting {
                conditions.append(Self.waiting)
            } else {
                conditions.append("status = ?")
                arguments += [status.rawValue]
            }
        }
        // Paging back reads the other way: the instances just newer than the cursor, oldest first.
        let backwards = query.after == nil && query.before != nil
        if let cursor = query.after {
            conditions.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            arguments += [cursor.createdAtMilliseconds, cursor.createdAtMilliseconds, cursor.instanceID]
        } else if let cursor = query.before {
            conditions.append("(created_at > ? OR (created_at = ? AND instance_id > ?))")
            arguments += [cursor.createdAtMilliseconds, cursor.createdAtMilliseconds, cursor.instanceID]
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let limit = max(query.limit, 0)
        // One more than asked: tells whether a next page exists.
        arguments += [limit + 1]
        let order = backwards ? "created_at ASC, instance_id ASC" : "created_at DESC, instance_id DESC"
        let sql = "SELECT * FROM workflow_instances \(whereClause) ORDER BY \(order) LIMIT ?"
        let finalArguments = arguments
        let rows = try await read { db in
            try Self.withWaits(Row.fetchAll(db, sql: sql, arguments: finalArguments).map(Self.instance(from:)), db)
        }
        return InstancePage(rows: rows, limit: limit, query: query)
    }

    /// The query's filters but its status and page position, as SQL conditions.
    private static func conditions(of query: InstanceQuery) -> ([String], StatementArguments) {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let name = query.workflowName {
            conditions.append("workflow_name = ?")
            arguments += [name]
        }
        if let parent = query.parentInstanceID {
            conditions.append("parent_instance_id = ?")
            arguments += [parent]
        }
        if let original = query.forkedFrom {
            conditions.append("forked_from = ?")
            arguments += [original]
        }
        if let service = query.serviceName {
            conditions.append("service_name = ?")
            arguments += [service]
        }
        if let queue = query.queue {
            conditions.append("queue_name = ?")
            arguments += [queue]
        }
        if let (versions, unversioned) = query.versionFilter {
            let marks = versions.map { _ in "?" }.joined(separator: ", ")
            conditions.append("(app_version IN (\(marks))\(unversioned ? " OR app_version IS NULL" : ""))")
            arguments += StatementArguments(versions)
        }
        if !query.excludingWorkflowNames.isEmpty {
            conditions.append("workflow_name NOT IN (\(query.excludingWorkflowNames.map { _ in "?" }.joined(separator: ", ")))")
            arguments += StatementArguments(query.excludingWorkflowNames.sorted())
        }
        if let key = query.inputKey, let value = query.inputValue {
            conditions.append(
                """
                EXISTS (SELECT 1 FROM json_each(workflow_instances.input) AS a WHERE a.type = 'object' AND
                    CASE json_type(a.value, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                        ELSE CAST(json_extract(a.value, ?) AS TEXT) END = ?)
                """
            )
            arguments += ["$." + key, "$." + key, value]
        }
        if let from = query.createdFrom {
            conditions.append("created_at >= ?")
            arguments += [from.millisecondsSince1970]
        }
        if let before = query.createdBefore {
            conditions.append("created_at < ?")
            arguments += [before.millisecondsSince1970]
        }
        return (conditions, arguments)
    }

    public func applicationVersions() async throws -> [ApplicationVersionSummary] {
        try await read { db in
            // Through the status index: the unfinished instances only.
            try Row.fetchAll(
                db,
                sql: """
                    SELECT app_version, count(*) AS unfinished, sum(status = 'queued') AS queued, min(created_at) AS oldest
                    FROM workflow_instances WHERE status IN ('queued', 'running', 'compensating')
                    GROUP BY app_version ORDER BY app_version IS NOT NULL, app_version
                    """
            ).map { row in
                ApplicationVersionSummary(
                    version: row["app_version"], unfinished: row["unfinished"], queued: row["queued"],
                    oldestCreatedAt: Date(storedMilliseconds: row["oldest"])
                )
            }
        }
    }

    public func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int] {
        let (conditions, arguments) = Self.conditions(of: query)
        let sql = "SELECT status, COUNT(*) AS n FROM workflow_instances \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) GROUP BY status"
        // Waiting instances are counted among the running ones, and apart: through the index of
        // waiting instances, so that the status index still counts the rest on its own.
        let waitingSQL = "SELECT COUNT(*) FROM workflow_instances WHERE \((conditions + [Self.waiting]).joined(separator: " AND "))"
        let (rows, waiting) = try await read { db -> ([(String, Int)], Int) in
            (
                try Row.fetchAll(db, sql: sql, arguments: arguments).map { ($0["status"], $0["n"]) },
                try Int.fetchOne(db, sql: waitingSQL, arguments: arguments) ?? 0
            )
        }
        var counts: [InstanceStatus: Int] = [:]
        for (text, count) in rows {
            counts[InstanceStatus(stored: text), default: 0] += count   // an unknown status is counted as it is stored
        }
        if waiting > 0 { counts[.waiting] = waiting }
        return counts
    }

    // MARK: - Waits

    /// A running instance parked on a wait (``InstanceStatus/waiting``), as an SQL condition on
    /// `workflow_instances`: the same test as ``InstanceWait``'s, on what the engine writes anyway
    /// (no lease, a time to be resumed at), so that nothing more is written for it. The partial
    /// index `workflow_instances_waiting` holds these rows (and compensating ones).
    static let waiting = "(status = 'running' AND lease_owner IS NULL AND ready_at IS NOT NULL)"

    /// `instances` with ``WorkflowInstance/waitingFor`` filled in for each one parked on a wait: its
    /// wait rows, or else its latest history record (a timer, a failed attempt), read in the
    /// transaction that read the instances.
    static func withWaits(_ instances: [WorkflowInstance], _ db: Database) throws -> [WorkflowInstance] {
        let unleased = instances.filter(InstanceWait.isParked)
        guard !unleased.isEmpty else { return instances }
        var rows: [String: [StoredWait]] = [:]
        let placeholders = unleased.map { _ in "?" }.joined(separator: ", ")
        for row in try Row.fetchAll(
            db, sql: "SELECT instance_id, step_id, channel, kind, deadline, created_at FROM workflow_waits WHERE instance_id IN (\(placeholders))",
            arguments: StatementArguments(unleased.map(\.instanceID))
        ) {
            let wait = StoredWait(
                instanceID: row["instance_id"], stepID: row["step_id"], channel: row["channel"], kind: row["kind"], deadline: row["deadline"],
                createdAt: row["created_at"]
            )
            rows[wait.instanceID, default: []].append(wait)
        }
        let latest = try db.cachedStatement(sql: "SELECT * FROM workflow_history WHERE instance_id = ? ORDER BY sequence DESC LIMIT 1")
        return try instances.map { instance in
            let waits = rows[instance.instanceID] ?? []
            guard InstanceWait.isParked(instance) else { return instance }
            var instance = instance
            // A record this version cannot read only costs the wait's detail (a timer is assumed).
            let last = waits.isEmpty ? try Row.fetchOne(latest, arguments: [instance.instanceID]).flatMap { try? Self.historyEvent(from: $0) } : nil
            instance.waitingFor = InstanceWait.derived(readyAt: instance.readyAt, waits: waits, latest: last)
            return instance
        }
    }
}
