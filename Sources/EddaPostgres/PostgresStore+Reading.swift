@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Reads: instances, history, pages and counts; no lease, never blocking a writer.
extension PostgresStore {
    // MARK: - Reading

    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        let found = try await perform("read an instance") { [self] in
            let rows = try await client.query(
                "SELECT \(unescaped: Self.instanceColumns) FROM \(unescaped: tables.instances) WHERE instance_id = \(instanceID)",
                logger: logger
            )
            var found: WorkflowInstance?
            for try await row in rows { found = try Self.instance(from: row).instance }
            return found
        }
        guard let found else { return nil }
        return try await withWaits([found]).first
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
        if let before = query.before {
            binds.append(before)
            sql += " AND sequence < $\(binds.count)"
        }
        // A page before a record reads backwards from it, then turns to append order.
        let backwards = query.before != nil
        binds.append(max(query.limit, 0))
        sql += " ORDER BY sequence\(backwards ? " DESC" : "") LIMIT $\(binds.count)"
        let finalBinds = binds
        let events = try await perform("read a history") { [self, sql] in
            var events: [HistoryEvent] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: finalBinds), logger: logger) {
                events.append(try Self.historyEvent(from: row))
            }
            return events
        }
        return backwards ? events.reversed() : events
    }

    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        var (conditions, binds) = Self.conditions(of: query)
        func placeholder() -> String { "$\(binds.count)" }
        if let status = query.status {
            if status == .waiting {
                conditions.append(waiting)
            } else {
                binds.append(status.rawValue)
                conditions.append("status = \(placeholder())")
            }
        }
        // Paging back reads the other way: the instances just newer than the cursor, oldest first.
        let backwards = query.after == nil && query.before != nil
        if let cursor = query.after ?? query.before {
            binds.append(cursor.createdAtMilliseconds)
            let created = placeholder()
            binds.append(cursor.instanceID)
            conditions.append("(created_at, instance_id) \(backwards ? ">" : "<") (\(created), \(placeholder()))")
        }
        let limit = max(query.limit, 0)
        binds.append(limit + 1)
        let sql = """
            SELECT \(Self.instanceColumns) FROM \(tables.instances) AS i
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
            ORDER BY \(backwards ? "created_at ASC, instance_id ASC" : "created_at DESC, instance_id DESC") LIMIT \(placeholder())
            """
        let finalBinds = binds
        let rows = try await perform("list instances") { [self] in
            var instances: [WorkflowInstance] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: finalBinds), logger: logger) {
                instances.append(try Self.instance(from: row).instance)
            }
            return instances
        }
        return InstancePage(rows: try await withWaits(rows), limit: limit, query: query)
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
        if let parent = query.parentInstanceID {
            binds.append(parent)
            conditions.append("parent_instance_id = \(placeholder())")
        }
        if let original = query.forkedFrom {
            binds.append(original)
            conditions.append("forked_from = \(placeholder())")
        }
        if let service = query.serviceName {
            binds.append(service)
            conditions.append("service_name = \(placeholder())")
        }
        if let queue = query.queue {
            binds.append(queue)
            conditions.append("queue_name = \(placeholder())")
        }
        if let (versions, unversioned) = query.versionFilter {
            binds.append(versions)
            conditions.append("(app_version = ANY(\(placeholder()))\(unversioned ? " OR app_version IS NULL" : ""))")
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

    public func applicationVersions() async throws -> [ApplicationVersionSummary] {
        try await perform("count instances by version") { [self] in
            let rows = try await client.query(
                """
                SELECT app_version, count(*), count(*) FILTER (WHERE status = 'queued'), min(created_at)
                FROM \(unescaped: tables.instances) WHERE status IN ('queued', 'running', 'compensating')
                GROUP BY app_version ORDER BY app_version NULLS FIRST
                """,
                logger: logger
            )
            var summaries: [ApplicationVersionSummary] = []
            for try await (version, unfinished, queued, oldest) in rows.decode((String?, Int64, Int64, Int64).self) {
                summaries.append(
                    ApplicationVersionSummary(
                        version: version, unfinished: Int(unfinished), queued: Int(queued), oldestCreatedAt: Date(storedMilliseconds: oldest)
                    )
                )
            }
            return summaries
        }
    }

    public func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int] {
        let (conditions, binds) = Self.conditions(of: query)
        // Waiting instances are counted among the running ones, and apart.
        let sql = """
            SELECT status, count(*), count(*) FILTER (WHERE \(waiting)) FROM \(tables.instances) AS i
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) GROUP BY status
            """
        let counted = try await perform("count instances") { [self] in
            var counted: [(String, Int64, Int64)] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).decode((String, Int64, Int64).self) {
                counted.append(row)
            }
            return counted
        }
        var counts: [InstanceStatus: Int] = [:]
        for (text, count, waiting) in counted {
            counts[InstanceStatus(stored: text), default: 0] += Int(count)   // an unknown status is counted as it is stored
            if waiting > 0 { counts[.waiting, default: 0] += Int(waiting) }
        }
        return counts
    }

    // MARK: - Waits

    /// A running instance parked on a wait (``InstanceStatus/waiting``), as an SQL condition on the
    /// instances table aliased `i`: the same test as ``InstanceWait``'s, on what the engine writes
    /// anyway (no lease, a time to be resumed at), so that nothing more is written for it.
    var waiting: String { "(i.status = 'running' AND i.lease_owner IS NULL AND i.ready_at IS NOT NULL)" }

    /// `instances` with ``WorkflowInstance/waitingFor`` filled in for each one parked on a wait: its
    /// wait rows, or else its latest history record (a timer, a failed attempt).
    func withWaits(_ instances: [WorkflowInstance]) async throws -> [WorkflowInstance] {
        let unleased = instances.filter(InstanceWait.isParked).map(\.instanceID)
        guard !unleased.isEmpty else { return instances }
        let (rows, latest) = try await perform("read what instances wait for") { [self] in
            var binds = PostgresBindings()
            binds.append(unleased)
            var rows: [String: [StoredWait]] = [:]
            let waitSQL = "SELECT instance_id, step_id, channel, kind, deadline, created_at FROM \(tables.waits) WHERE instance_id = ANY($1)"
            for try await (id, step, channel, kind, deadline, created) in try await client.query(
                PostgresQuery(unsafeSQL: waitSQL, binds: binds), logger: logger
            ).decode((String, String, String, String, Int64?, Int64).self) {
                rows[id, default: []].append(StoredWait(instanceID: id, stepID: step, channel: channel, kind: kind, deadline: deadline, createdAt: created))
            }
            // The latest record of each one without a wait row: a timer, or a failed attempt.
            let others = unleased.filter { rows[$0] == nil }
            var latest: [String: HistoryEvent] = [:]
            if !others.isEmpty {
                var historyBinds = PostgresBindings()
                historyBinds.append(others)
                let historySQL = """
                    SELECT DISTINCT ON (instance_id) \(Self.historyColumns) FROM \(tables.history)
                    WHERE instance_id = ANY($1) ORDER BY instance_id, sequence DESC
                    """
                for try await row in try await client.query(PostgresQuery(unsafeSQL: historySQL, binds: historyBinds), logger: logger) {
                    // A record this version cannot read only costs the wait's detail (a timer is assumed).
                    if let event = try? Self.historyEvent(from: row) { latest[event.instanceID] = event }
                }
            }
            return (rows, latest)
        }
        return instances.map { instance in
            let waits = rows[instance.instanceID] ?? []
            guard InstanceWait.isParked(instance) else { return instance }
            var instance = instance
            instance.waitingFor = InstanceWait.derived(readyAt: instance.readyAt, waits: waits, latest: waits.isEmpty ? latest[instance.instanceID] : nil)
            return instance
        }
    }
}
