@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Retention: deleting finished instances, outbox events and messages a ``RetentionPolicy`` no
/// longer keeps, a bounded batch per transaction (the group committer's, so that steps' commits
/// interleave with the batches).
extension SQLiteStore {
    @_spi(EddaStores) public func pruneBatch(_ policy: RetentionPolicy, limit: Int) async throws -> PruneCounts {
        let now = Self.now()
        let limit = max(limit, 1)
        return try await write { db in
            var counts = PruneCounts()
            try db.inSavepoint {
                let ids = try Self.prunableInstances(policy, now: now, limit: limit, db)
                if !ids.isEmpty {
                    counts.history = try Self.rows("DELETE FROM workflow_history WHERE instance_id IN", ids, db)
                    counts.archivedHistory = try Self.rows("DELETE FROM workflow_history_archive WHERE instance_id IN", ids, db)
                    counts.messages = try Self.rows("DELETE FROM channel_messages WHERE target_instance IN", ids, db)
                    _ = try Self.rows("DELETE FROM workflow_waits WHERE instance_id IN", ids, db)
                    counts.instances = try Self.rows("DELETE FROM workflow_instances WHERE \(Self.finished) AND instance_id IN", ids, db)
                }
                for (status, age) in policy.prunedOutboxStatuses {
                    // The status is written out (one of OutboxStatus's), so that the partial index applies.
                    try db.cachedStatement(
                        sql: """
                            DELETE FROM outbox_events WHERE sequence IN (
                                SELECT sequence FROM outbox_events WHERE status = '\(status.rawValue)' AND updated_at < ? LIMIT ?
                            )
                            """
                    ).execute(arguments: [now - age, limit])
                    counts.outboxEvents += db.changesCount
                }
                try db.cachedStatement(
                    sql: "DELETE FROM channel_messages WHERE sequence IN (SELECT sequence FROM channel_messages WHERE expires_at <= ? LIMIT ?)"
                ).execute(arguments: [now, limit])
                counts.messages += db.changesCount
                return .commit
            }
            return counts
        }
    }

    @_spi(EddaStores) public func prunableCounts(_ policy: RetentionPolicy) async throws -> PruneCounts {
        let now = Self.now()
        return try await read { db in
            var counts = PruneCounts()
            let ids = try Self.prunableInstances(policy, now: now, limit: nil, db)
            counts.instances = ids.count
            counts.history = try Self.rows("SELECT count(*) FROM workflow_history WHERE instance_id IN", ids, db)
            counts.archivedHistory = try Self.rows("SELECT count(*) FROM workflow_history_archive WHERE instance_id IN", ids, db)
            counts.messages = try Self.rows("SELECT count(*) FROM channel_messages WHERE expires_at > \(now) AND target_instance IN", ids, db)
            for (status, age) in policy.prunedOutboxStatuses {
                counts.outboxEvents +=
                    try Int.fetchOne(
                        db, sql: "SELECT count(*) FROM outbox_events WHERE status = '\(status.rawValue)' AND updated_at < ?", arguments: [now - age]
                    ) ?? 0
            }
            counts.messages += try Int.fetchOne(db, sql: "SELECT count(*) FROM channel_messages WHERE expires_at <= ?", arguments: [now]) ?? 0
            return counts
        }
    }

    /// Runs `statement` — a `DELETE` or a `SELECT count(*)` ending in `IN` — on `ids`, 500 at a time
    /// (SQLite bounds the number of parameters), and returns the rows deleted or counted.
    private static func rows(_ statement: String, _ ids: [String], _ db: Database) throws -> Int {
        var rows = 0
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            let sql = "\(statement) (\(databaseQuestionMarks(count: chunk.count)))"
            if statement.hasPrefix("DELETE") {
                try db.execute(sql: sql, arguments: StatementArguments(chunk))
                rows += db.changesCount
            } else {
                rows += try Int.fetchOne(db, sql: sql, arguments: StatementArguments(chunk)) ?? 0
            }
        }
        return rows
    }

    /// `status` is one of the finished ones (an unknown status is not).
    private static let finished = "status IN ('completed', 'failed', 'cancelled')"

    /// The IDs of the finished instances `policy` no longer keeps, oldest first within each
    /// workflow; at most `limit` (all when `nil`).
    private static func prunableInstances(_ policy: RetentionPolicy, now: Int64, limit: Int?, _ db: Database) throws -> [String] {
        // The workflows with finished instances: a loose scan of the status index (status, workflow,
        // created), one probe per workflow and finished status. No index of its own: one more index
        // written at every finish cost W1 about a tenth of its throughput.
        var names: [String] = []
        for status in ["completed", "failed", "cancelled"] {
            names += try String.fetchAll(
                db.cachedStatement(
                    sql: """
                        WITH RECURSIVE names (name) AS (
                            SELECT min(workflow_name) FROM workflow_instances WHERE status = ?
                            UNION ALL
                            SELECT (SELECT min(workflow_name) FROM workflow_instances WHERE status = ? AND workflow_name > names.name)
                            FROM names WHERE names.name IS NOT NULL
                        )
                        SELECT name FROM names WHERE name IS NOT NULL
                        """
                ),
                arguments: [status, status]
            )
        }
        names = Array(Set(names)).sorted()
        var ids: [String] = []
        for name in names {
            guard let age = policy.finishedInstances(of: name).milliseconds else { continue }
            let remaining = limit.map { $0 - ids.count } ?? -1
            if remaining == 0 { break }
            ids += try String.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT i.instance_id FROM workflow_instances AS i
                        -- created before it ended, so created before the cutoff too: a range of the status index
                        WHERE i.\(finished) AND i.workflow_name = ? AND i.created_at < ? AND i.updated_at < ?
                            -- a child waits for its parent to finish: the parent may still ask for its result
                            AND NOT EXISTS (
                                SELECT 1 FROM workflow_instances AS p
                                WHERE i.parent_instance_id IS NOT NULL AND p.instance_id = i.parent_instance_id
                                    AND p.status NOT IN ('completed', 'failed', 'cancelled')
                            )
                            -- a parent waits for its children: a child reports to it when it ends
                            AND NOT EXISTS (
                                SELECT 1 FROM workflow_instances AS c
                                WHERE c.parent_instance_id = i.instance_id AND c.status NOT IN ('completed', 'failed', 'cancelled')
                            )
                        ORDER BY i.created_at LIMIT ?
                        """
                ),
                arguments: [name, now - age, now - age, remaining]
            )
        }
        return ids
    }
}
