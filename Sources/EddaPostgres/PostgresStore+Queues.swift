@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Queues: their limits, queued instances, and admissions. Admissions to a queue are serialized by a
/// transaction-scoped advisory lock per queue, taken in a statement before the one that counts: under
/// READ COMMITTED that statement's snapshot then sees every admission committed before it.
extension PostgresStore {
    @_spi(EddaStores) public func declareQueues(_ queues: [Queue]) async throws {
        guard !queues.isEmpty else { return }
        try await perform("declare queues") { [self] in
            try await client.query(
                """
                INSERT INTO \(unescaped: tables.queues) (name, concurrency, worker_concurrency, updated_at)
                SELECT q.name, q.concurrency, q.worker_concurrency, \(unescaped: Self.nowMilliseconds)
                FROM unnest(\(queues.map(\.name))::text[], \(queues.map { Int32(clamping: $0.concurrency) })::integer[],
                    \(queues.map { Int32(clamping: $0.workerConcurrency) })::integer[]) AS q(name, concurrency, worker_concurrency)
                ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency, worker_concurrency = excluded.worker_concurrency,
                    updated_at = excluded.updated_at
                """,
                logger: logger
            )
        }
    }

    /// Inserts an instance on its queue, `queued` and unleased, unless its ID exists or another
    /// instance queued or running on the queue holds its deduplication ID (the unique index).
    func createQueued(_ instance: NewInstance, _ placement: QueuePlacement) async throws -> CreateInstanceOutcome {
        let outcome = try await perform("create a queued instance") { [self] () -> CreateInstanceOutcome in
            let (workflowTimeout, runTimeout) = (instance.timeouts.workflow?.milliseconds, instance.timeouts.run?.milliseconds)
            // The holder may finish between a refused insert and the look-up that names it: try again then.
            for _ in 0..<3 {
                let inserted = try await client.query(
                    """
                    INSERT INTO \(unescaped: tables.instances)
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         queue_name, priority, deduplication_id, workflow_timeout_ms, run_timeout_ms, workflow_deadline_at, deadline_at)
                    VALUES (\(instance.instanceID), \(instance.workflowName), \(instance.serviceName), 'queued', \(instance.input.json), 0,
                            \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds), \(instance.storedTraceContext),
                            \(placement.queue), \(Int32(clamping: placement.priority)), \(placement.deduplicationID),
                            \(workflowTimeout)::bigint, \(runTimeout)::bigint, \(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint,
                            -- Deadlines count from the start, queued time included; LEAST skips a NULL.
                            LEAST(\(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint, \(unescaped: Self.nowMilliseconds) + \(runTimeout)::bigint))
                    ON CONFLICT DO NOTHING
                    RETURNING \(unescaped: Self.instanceColumns)
                    """,
                    logger: logger
                )
                for try await row in inserted { return .created(try Self.instance(from: row).instance, lease: nil) }
                if let existing = try await self.instance(instance.instanceID) { return .existing(existing) }
                let holder = try await client.query(
                    """
                    SELECT \(unescaped: Self.instanceColumns) FROM \(unescaped: tables.instances)
                    WHERE queue_name = \(placement.queue) AND deduplication_id = \(placement.deduplicationID)
                        AND status IN ('queued', 'running', 'compensating')
                    """,
                    logger: logger
                )
                for try await row in holder { return .deduplicated(holder: try Self.instance(from: row).instance) }
            }
            throw StoreError(.database, "Instance \(instance.instanceID) could not be inserted on queue '\(placement.queue)'.")
        }
        if case .created = outcome {
            wakeUps.notify()
            notifier.post(.ready)
        }
        return outcome
    }

    /// Admits queued instances of the request's queues within their limits, leasing them to the
    /// claiming worker: at most the request's limit in all, lowest priority number first.
    func admitQueued(_ request: ClaimRequest) async throws -> [ClaimedInstance] {
        let owner = request.lease.owner
        return try await perform("admit queued instances") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                // One lock per queue, in name order (the request's queues are sorted): concurrent
                // claims on overlapping queues take them in the same order.
                try await connection.query(
                    """
                    SELECT pg_advisory_xact_lock(hashtextextended(\(tables.queues) || '/' || name, 0))
                    FROM unnest(\(request.queues)::text[]) WITH ORDINALITY AS q(name, n) ORDER BY n
                    """,
                    logger: logger
                ).collect()
                let rows = try await connection.query(Self.admissionQuery(request, tables: tables), logger: logger)
                var admitted: [ClaimedInstance] = []
                for try await row in rows {
                    let decoded = try Self.instance(from: row)
                    let lease = Lease(instanceID: decoded.instance.instanceID, owner: owner, token: decoded.leaseToken)
                    admitted.append(ClaimedInstance(instance: decoded.instance, lease: lease))
                }
                return admitted
            }
        }
    }

    /// For each queue: the room its limits leave (concurrency minus its unfinished admitted instances,
    /// worker concurrency minus those leased to the claiming worker), filled with its queued instances
    /// in priority order, then oldest first.
    static func admissionQuery(_ request: ClaimRequest, tables: Tables) -> PostgresQuery {
        """
        WITH room AS (
            SELECT q.name, LEAST(q.concurrency - count(w.instance_id), q.worker_concurrency - count(w.instance_id)
                FILTER (WHERE w.lease_owner = \(request.lease.owner))) AS free
            FROM \(unescaped: tables.queues) AS q
            LEFT JOIN \(unescaped: tables.instances) AS w ON w.queue_name = q.name AND w.status IN ('running', 'compensating')
            WHERE q.name = ANY(\(request.queues))
            GROUP BY q.name, q.concurrency, q.worker_concurrency
        ), chosen AS (
            SELECT p.instance_id, p.priority, p.created_at FROM room CROSS JOIN LATERAL (
                SELECT instance_id, priority, created_at FROM \(unescaped: tables.instances)
                WHERE queue_name = room.name AND status = 'queued' AND workflow_name = ANY(\(request.workflowNames))
                ORDER BY priority, created_at, instance_id
                LIMIT GREATEST(0, LEAST(room.free, \(request.limit)))
            ) AS p
            ORDER BY p.priority, p.created_at, p.instance_id
            LIMIT \(request.limit)
        )
        UPDATE \(unescaped: tables.instances) AS w
        SET status = 'running', lease_owner = \(request.lease.owner), lease_token = w.lease_token + 1,
            lease_expires_at = \(unescaped: Self.nowMilliseconds) + \(request.lease.duration.wholeMilliseconds)::bigint,
            ready_at = NULL, wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds),
            claimed_at = \(unescaped: Self.nowMilliseconds)
        FROM chosen WHERE w.instance_id = chosen.instance_id AND w.status = 'queued'
        RETURNING \(unescaped: Self.instanceColumns(prefix: "w."))
        """
    }
}
