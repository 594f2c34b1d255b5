@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Reads: instances, history, pages and counts, on a reader that never blocks the writer.
extension SQLiteStore {
    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        try await read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM workflow_instances WHERE instance_id = ?"), arguments: [instanceID])
                .map(Self.instance(from:))
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
        sql += " ORDER BY sequence LIMIT ?"
        arguments += [max(query.limit, 0)]
        let finalArguments = arguments
        return try await read { [sql] db in
            try Row.fetchAll(db, sql: sql, arguments: finalArguments).map(Self.historyEvent(from:))
        }
    }

    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        var (conditions, arguments) = Self.conditions(of: query)
        if let status = query.status {
            conditions.append("status = ?")
            arguments += [status.rawValue]
        }
        if let cursor = query.after {
            conditions.append("(created_at < ? OR (created_at = ? AND instance_id < ?))")
            arguments += [cursor.createdAtMilliseconds, cursor.createdAtMilliseconds, cursor.instanceID]
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let limit = max(query.limit, 0)
        // One more than asked: tells whether a next page exists.
        arguments += [limit + 1]
        let sql = "SELECT * FROM workflow_instances \(whereClause) ORDER BY created_at DESC, instance_id DESC LIMIT ?"
        let finalArguments = arguments
        let rows = try await read { db in
            try Row.fetchAll(db, sql: sql, arguments: finalArguments).map(Self.instance(from:))
        }
        let page = Array(rows.prefix(limit))
        return InstancePage(instances: page, nextCursor: rows.count > limit ? page.last.map(InstanceCursor.init(after:)) : nil)
    }

    /// The query's filters but its status and page position, as SQL conditions.
    private static func conditions(of query: InstanceQuery) -> ([String], StatementArguments) {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let name = query.workflowName {
            conditions.append("workflow_name = ?")
            arguments += [name]
        }
        if let service = query.serviceName {
            conditions.append("service_name = ?")
            arguments += [service]
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

    public func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int] {
        let (conditions, arguments) = Self.conditions(of: query)
        let sql = "SELECT status, COUNT(*) AS n FROM workflow_instances \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) GROUP BY status"
        let rows = try await read { db -> [(String, Int)] in
            try Row.fetchAll(db, sql: sql, arguments: arguments).map { ($0["status"], $0["n"]) }
        }
        var counts: [InstanceStatus: Int] = [:]
        for (text, count) in rows {
            counts[InstanceStatus(stored: text), default: 0] += count   // an unknown status is counted as it is stored
        }
        return counts
    }
}
