@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Reads: instances, history, pages and counts; no lease, never blocking a writer.
extension PostgresStore {
    // MARK: - Reading

    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        try await perform("read an instance") { [self] in
            let rows = try await client.query(
                "SELECT \(unescaped: Self.instanceColumns) FROM \(unescaped: tables.instances) WHERE instance_id = \(instanceID)",
                logger: logger
            )
            for try await row in rows { return try Self.instance(from: row).instance }
            return nil
        }
    }

    public func history(of instanceID: String) async throws -> [HistoryEvent] {
        try await perform("read a history") { [self] in
            let rows = try await client.query(
                "SELECT \(unescaped: Self.historyColumns) FROM \(unescaped: tables.history) WHERE instance_id = \(instanceID) ORDER BY sequence",
                logger: logger
            )
            var events: [HistoryEvent] = []
            for try await row in rows { events.append(try Self.historyEvent(from: row)) }
            return events
        }
    }

    public func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent] {
        var binds = PostgresBindings()
        binds.append(instanceID)
        binds.append(query.after)
        var sql = "SELECT \(Self.historyColumns) FROM \(tables.history) WHERE instance_id = $1 AND sequence > $2"
        if let kinds = query.kinds {
            binds.append(kinds.map(\.rawValue).sorted())
            sql += " AND kind = ANY($3)"
        }
        binds.append(max(query.limit, 0))
        sql += " ORDER BY sequence LIMIT $\(binds.count)"
        let finalBinds = binds
        return try await perform("read a history") { [self, sql] in
            var events: [HistoryEvent] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: finalBinds), logger: logger) {
                events.append(try Self.historyEvent(from: row))
            }
            return events
        }
    }

    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        var (conditions, binds) = Self.conditions(of: query)
        func placeholder() -> String { "$\(binds.count)" }
        if let status = query.status {
            binds.append(status.rawValue)
            conditions.append("status = \(placeholder())")
        }
        if let cursor = query.after {
            binds.append(cursor.createdAtMilliseconds)
            let created = placeholder()
            binds.append(cursor.instanceID)
            conditions.append("(created_at, instance_id) < (\(created), \(placeholder()))")
        }
        let limit = max(query.limit, 0)
        binds.append(limit + 1)
        let sql = """
            SELECT \(Self.instanceColumns) FROM \(tables.instances)
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY created_at DESC, instance_id DESC LIMIT \(placeholder())
            """
        let finalBinds = binds
        let rows = try await perform("list instances") { [self] in
            var instances: [WorkflowInstance] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: finalBinds), logger: logger) {
                instances.append(try Self.instance(from: row).instance)
            }
            return instances
        }
        let page = Array(rows.prefix(limit))
        return InstancePage(instances: page, nextCursor: rows.count > limit ? page.last.map(InstanceCursor.init(after:)) : nil)
    }

    /// The query's filters but its status and page position, as SQL conditions and their binds.
    private static func conditions(of query: InstanceQuery) -> ([String], PostgresBindings) {
        var conditions: [String] = []
        var binds = PostgresBindings()
        func placeholder() -> String { "$\(binds.count)" }
        if let name = query.workflowName {
            binds.append(name)
            conditions.append("workflow_name = \(placeholder())")
        }
        if let service = query.serviceName {
            binds.append(service)
            conditions.append("service_name = \(placeholder())")
        }
        if !query.excludingWorkflowNames.isEmpty {
            binds.append(query.excludingWorkflowNames.sorted())
            conditions.append("NOT (workflow_name = ANY(\(placeholder())))")
        }
        if let key = query.inputKey, let value = query.inputValue {
            binds.append(key.split(separator: ".").map(String.init))
            let path = placeholder()
            binds.append(value)
            conditions.append(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(input::jsonb) AS a WHERE jsonb_typeof(a) = 'object' AND a #>> \(path)::text[] = \(placeholder()))"
            )
        }
        if let from = query.createdFrom {
            binds.append(from.millisecondsSince1970)
            conditions.append("created_at >= \(placeholder())")
        }
        if let before = query.createdBefore {
            binds.append(before.millisecondsSince1970)
            conditions.append("created_at < \(placeholder())")
        }
        return (conditions, binds)
    }

    public func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int] {
        let (conditions, binds) = Self.conditions(of: query)
        let sql = "SELECT status, count(*) FROM \(tables.instances) \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) GROUP BY status"
        let counted = try await perform("count instances") { [self] in
            var counted: [(String, Int64)] = []
            for try await (status, count) in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).decode((String, Int64).self) {
                counted.append((status, count))
            }
            return counted
        }
        var counts: [InstanceStatus: Int] = [:]
        for (text, count) in counted {
            counts[InstanceStatus(stored: text), default: 0] += Int(count)   // an unknown status is counted as it is stored
        }
        return counts
    }
}
