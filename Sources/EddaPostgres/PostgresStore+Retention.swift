@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Retention on PostgreSQL: deleting finished instances, outbox events and messages a
/// ``RetentionPolicy`` no longer keeps, a bounded batch per transaction. Ages are measured on the
/// server's clock, which wrote the rows' times. Instances are taken `FOR UPDATE SKIP LOCKED`: a
/// batch never waits for a row a worker holds (a `retry` in flight), and two pruners (one per
/// worker) never take the same rows.
extension PostgresStore {
    @_spi(EddaStores) public func pruneBatch(_ policy: RetentionPolicy, limit: Int) async throws -> PruneCounts {
        let limit = Int64(max(limit, 1))
        let t = tables
        return try await perform("prune a batch") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                var counts = PruneCounts()
                let ids = try await prunableInstances(policy, limit: limit, locking: true, connection)
                if !ids.isEmpty {
                    counts.history = try await count(
                        "WITH d AS (DELETE FROM \(unescaped: t.history) WHERE instance_id = ANY(\(ids)) RETURNING 1) SELECT count(*) FROM d", connection
                    )
                    counts.archivedHistory = try await count(
                        "WITH d AS (DELETE FROM \(unescaped: t.archive) WHERE instance_id = ANY(\(ids)) RETURNING 1) SELECT count(*) FROM d", connection
                    )
                    counts.messages = try await count(
                        "WITH d AS (DELETE FROM \(unescaped: t.messages) WHERE target_instance = ANY(\(ids)) RETURNING 1) SELECT count(*) FROM d",
                        connection
                    )
                    try await connection.query("DELETE FROM \(unescaped: t.waits) WHERE instance_id = ANY(\(ids))", logger: logger)
                    counts.instances = try await count(
                        """
                        WITH d AS (DELETE FROM \(unescaped: t.instances) WHERE instance_id = ANY(\(ids)) AND \(unescaped: Self.finished) RETURNING 1)
                        SELECT count(*) FROM d
                        """,
                        connection
                    )
                }
                for (status, age) in policy.prunedOutboxStatuses {
                    // The status is written out (one of OutboxStatus's), so that the partial index applies.
                    counts.outboxEvents += try await count(
                        """
                        WITH d AS (
                            DELETE FROM \(unescaped: t.outbox) WHERE sequence IN (
                                SELECT sequence FROM \(unescaped: t.outbox)
                                WHERE status = '\(unescaped: status.rawValue)' AND updated_at < \(unescaped: Self.nowMilliseconds) - \(age)
                                LIMIT \(limit) FOR UPDATE SKIP LOCKED
                            ) RETURNING 1
                        )
                        SELECT count(*) FROM d
                        """,
                        connection
                    )
                }
                counts.messages += try await count(
                    """
                    WITH d AS (
                        DELETE FROM \(unescaped: t.messages) WHERE sequence IN (
                            SELECT sequence FROM \(unescaped: t.messages) WHERE expires_at <= \(unescaped: Self.nowMilliseconds)
                            LIMIT \(limit) FOR UPDATE SKIP LOCKED
                        ) RETURNING 1
                    )
                    SELECT count(*) FROM d
                    """,
                    connection
                )
                return counts
            }
        }
    }

    @_spi(EddaStores) public func prunableCounts(_ policy: RetentionPolicy) async throws -> PruneCounts {
        let t = tables
        return try await perform("count what pruning would delete") { [self] in
            try await client.withConnection { connection in
                var counts = PruneCounts()
                let ids = try await prunableInstances(policy, limit: nil, locking: false, connection)
                if !ids.isEmpty {
                    counts.instances = ids.count
                    counts.history = try await count("SELECT count(*) FROM \(unescaped: t.history) WHERE instance_id = ANY(\(ids))", connection)
                    counts.archivedHistory = try await count("SELECT count(*) FROM \(unescaped: t.archive) WHERE instance_id = ANY(\(ids))", connection)
                    counts.messages = try await count(
                        """
                        SELECT count(*) FROM \(unescaped: t.messages)
                        WHERE target_instance = ANY(\(ids)) AND expires_at > \(unescaped: Self.nowMilliseconds)
                        """,
                        connection
                    )
                }
                for (status, age) in policy.prunedOutboxStatuses {
                    counts.outboxEvents += try await count(
                        """
                        SELECT count(*) FROM \(unescaped: t.outbox)
                        WHERE status = '\(unescaped: status.rawValue)' AND updated_at < \(unescaped: Self.nowMilliseconds) - \(age)
                        """,
                        connection
                    )
                }
                counts.messages += try await count(
                    "SELECT count(*) FROM \(unescaped: t.messages) WHERE expires_at <= \(unescaped: Self.nowMilliseconds)", connection
                )
                return counts
            }
        }
    }

    /// `status` is one of the finished ones (an unknown status is not).
    private static let finished = "status IN ('completed', 'failed', 'cancelled')"

    /// The IDs of the finished instances `policy` no longer keeps, oldest first within each
    /// workflow; at most `limit` (all when `nil`), locked for this transaction when `locking`.
    private func prunableInstances(_ policy: RetentionPolicy, limit: Int64?, locking: Bool, _ connection: PostgresConnection) async throws -> [String] {
        let t = tables
        // The workflows with finished instances, one index probe each (a loose index scan).
        var names: [String] = []
        let nameRows = try await connection.query(
            """
            WITH RECURSIVE names (status, name) AS (
                SELECT s.status, (SELECT min(workflow_name) FROM \(unescaped: t.instances) WHERE status = s.status)
                FROM unnest(ARRAY['completed', 'failed', 'cancelled']) AS s(status)
                UNION ALL
                SELECT names.status,
                    (SELECT min(workflow_name) FROM \(unescaped: t.instances) WHERE status = names.status AND workflow_name > names.name)
                FROM names WHERE names.name IS NOT NULL
            )
            SELECT DISTINCT name FROM names WHERE name IS NOT NULL ORDER BY name
            """,
            logger: logger
        )
        for try await name in nameRows.decode(String.self) { names.append(name) }
        var ids: [String] = []
        for name in names {
            guard let age = policy.finishedInstances(of: name).milliseconds else { continue }
            let remaining = limit.map { $0 - Int64(ids.count) }
            if remaining == 0 { break }
            let rows = try await connection.query(
                """
                SELECT i.instance_id FROM \(unescaped: t.instances) AS i
                WHERE i.\(unescaped: Self.finished) AND i.workflow_name = \(name)
                    -- created before it ended, so created before the cutoff too: a range of the status index
                    AND i.created_at < \(unescaped: Self.nowMilliseconds) - \(age)
                    AND i.updated_at < \(unescaped: Self.nowMilliseconds) - \(age)
                    -- a child waits for its parent to finish: the parent may still ask for its result
                    AND NOT EXISTS (
                        SELECT 1 FROM \(unescaped: t.instances) AS p
                        WHERE i.parent_instance_id IS NOT NULL AND p.instance_id = i.parent_instance_id
                            AND p.status NOT IN ('completed', 'failed', 'cancelled')
                    )
                    -- a parent waits for its children: a child reports to it when it ends
                    AND NOT EXISTS (
                        SELECT 1 FROM \(unescaped: t.instances) AS c
                        WHERE c.parent_instance_id = i.instance_id AND c.status NOT IN ('completed', 'failed', 'cancelled')
                    )
                ORDER BY i.created_at
                \(unescaped: remaining.map { "LIMIT \($0)" } ?? "")
                \(unescaped: locking ? "FOR UPDATE OF i SKIP LOCKED" : "")
                """,
                logger: logger
            )
            for try await id in rows.decode(String.self) { ids.append(id) }
        }
        return ids
    }

    /// Runs a query whose one row is a count.
    private func count(_ query: PostgresQuery, _ connection: PostgresConnection) async throws -> Int {
        for try await value in try await connection.query(query, logger: logger).decode(Int64.self) { return Int(value) }
        return 0
    }
}
