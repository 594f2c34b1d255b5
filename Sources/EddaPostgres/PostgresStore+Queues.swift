@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Queues: their limits, queued instances, and admissions. Admissions to a queue are serialized by a
/// transaction-scoped advisory lock per queue, taken in a statement before the one that counts: under
/// READ COMMITTED that statement's snapshot then sees every admission committed before it.
extension PostgresStore {
    /// No limit travels as `Queue.storedUnlimited`, no rate limit as 0 (PostgresNIO's arrays hold no `NULL`).
    @_spi(EddaStores) public func declareQueues(_ queues: [Queue]) async throws {
        guard !queues.isEmpty else { return }
        try await perform("declare queues") { [self] in
            try await client.query(
                """
                INSERT INTO \(unescaped: tables.queues) (name, concurrency, worker_concurrency, rate_limit, rate_period_ms, partitioned, updated_at)
                SELECT q.name, q.concurrency, q.worker_concurrency, NULLIF(q.rate_limit, 0), NULLIF(q.rate_period_ms, 0), q.partitioned,
                    \(unescaped: Self.nowMilliseconds)
                FROM unnest(\(queues.map(\.name))::text[], \(queues.map { Int32(clamping: $0.storedConcurrency) })::integer[],
                    \(queues.map { Int32(clamping: $0.storedWorkerConcurrency) })::integer[],
                    \(queues.map { Int32(clamping: $0.rateLimit?.limit ?? 0) })::integer[],
                    \(queues.map { $0.rateLimit?.periodMilliseconds ?? 0 })::bigint[], \(queues.map(\.partitioned))::boolean[])
                    AS q(name, concurrency, worker_concurrency, rate_limit, rate_period_ms, partitioned)
                ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency, worker_concurrency = excluded.worker_concurrency,
                    rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms, partitioned = excluded.partitioned,
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
            let queueTimeout = placement.timeout?.milliseconds
            // The holder may finish between a refused insert and the look-up that names it: try again then.
            for _ in 0..<3 {
                let inserted = try await client.query(
                    """
                    WITH parent AS (
                        -- A child of a parent asked to cancel (or finished) is born cancel-requested, as one
                        -- on no queue is (PostgresStore.createOne).
                        SELECT cancel_requested OR status NOT IN ('running', 'compensating') AS stopping, deadline_at
                        FROM \(unescaped: tables.instances) WHERE instance_id = \(instance.parentInstanceID)
                        FOR SHARE
                    ), deadlines AS (
                        -- From the start, queued time included: its own workflow deadline, or its parent's
                        -- when earlier. LEAST skips NULLs.
                        SELECT LEAST(\(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint, (SELECT deadline_at FROM parent)) AS workflow
                    ), queue AS (
                        SELECT \(unescaped: Self.nowMilliseconds) + \(queueTimeout)::bigint AS deadline,
                            LEAST((SELECT workflow FROM deadlines), \(unescaped: Self.nowMilliseconds) + \(runTimeout)::bigint) AS instance_deadline
                    )
                    INSERT INTO \(unescaped: tables.instances)
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         queue_name, priority, deduplication_id, partition_key, parent_instance_id, cancel_requested,
                         workflow_timeout_ms, run_timeout_ms, workflow_deadline_at, deadline_at, queue_timeout_ms, queue_deadline_at, dequeue_at,
                         app_version)
                    VALUES (\(instance.instanceID), \(instance.workflowName), \(instance.serviceName), 'queued', \(instance.input.json), 0,
                            \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds), \(instance.storedTraceContext),
                            \(placement.queue), \(Int32(clamping: placement.priority)), \(placement.deduplicationID),
                            \(placement.partitionKey ?? ""), \(instance.parentInstanceID), coalesce((SELECT stopping FROM parent), false),
                            \(workflowTimeout)::bigint, \(runTimeout)::bigint, (SELECT workflow FROM deadlines),
                            (SELECT instance_deadline FROM queue), \(queueTimeout)::bigint, (SELECT deadline FROM queue),
                            -- When it leaves the line unadmitted: at once when born cancel-requested.
                            CASE WHEN coalesce((SELECT stopping FROM parent), false) THEN \(unescaped: Self.nowMilliseconds)
                                ELSE LEAST((SELECT deadline FROM queue), (SELECT instance_deadline FROM queue)) END,
                            \(instance.applicationVersion))
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

    /// For each partition with queued instances (the one partition `''` of a queue that is not
    /// partitioned; on a partitioned one, each key, found by a skip scan of the queue's index): the
    /// room its limits leave (concurrency minus its unfinished admitted instances, worker concurrency
    /// minus those leased to the claiming worker, the rate limit minus its admissions within the
    /// period before now), filled with its queued instances in priority order, then oldest first.
    ///
    /// First, whatever the limits, it takes out of line the queued instances whose `dequeue_at` has
    /// come — asked to cancel, or past their queue deadline or deadline — leased to the worker
    /// unadmitted: their run cancels them before any step (see ``WorkflowInstance/queueDeadline``).
    ///
    /// A versioned worker (``ClaimRequest/applicationVersions``) admits unversioned instances and
    /// those of its versions only, reading no queued instance of another version.
    static func admissionQuery(_ request: ClaimRequest, tables: Tables) -> PostgresQuery {
        let anyVersion = request.applicationVersions == nil
        let versions = request.applicationVersions ?? []
        return """
        WITH RECURSIVE server AS (
            -- Read once (an index can compare with it): clock_timestamp() changes row by row.
            SELECT \(unescaped: Self.nowMilliseconds) AS now
        ), leaving AS (
            SELECT instance_id FROM \(unescaped: tables.instances)
            WHERE status = 'queued' AND dequeue_at IS NOT NULL AND dequeue_at <= (SELECT now FROM server)
                AND queue_name = ANY(\(request.queues)) AND workflow_name = ANY(\(request.workflowNames))
                AND (\(anyVersion) OR app_version IS NULL OR app_version = ANY(\(versions)))
            ORDER BY dequeue_at
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), out_of_line AS (
            UPDATE \(unescaped: tables.instances) AS w
            SET status = 'running', lease_owner = \(request.lease.owner), lease_token = w.lease_token + 1,
                lease_expires_at = \(unescaped: Self.nowMilliseconds) + \(request.lease.duration.wholeMilliseconds)::bigint,
                ready_at = NULL, wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds),
                claimed_at = \(unescaped: Self.nowMilliseconds), dequeue_at = NULL
            FROM leaving WHERE w.instance_id = leaving.instance_id
            RETURNING \(unescaped: Self.instanceColumns(prefix: "w."))
        ), keys AS (
            SELECT q.name, (SELECT min(i.partition_key) FROM \(unescaped: tables.instances) AS i
                WHERE i.queue_name = q.name AND i.status = 'queued') AS key
            FROM \(unescaped: tables.queues) AS q WHERE q.name = ANY(\(request.queues)) AND q.partitioned
            UNION ALL
            SELECT k.name, (SELECT min(i.partition_key) FROM \(unescaped: tables.instances) AS i
                WHERE i.queue_name = k.name AND i.status = 'queued' AND i.partition_key > k.key)
            FROM keys AS k WHERE k.key IS NOT NULL
        ), partitions AS (
            SELECT name, key FROM keys WHERE key IS NOT NULL
            UNION ALL
            SELECT q.name, '' FROM \(unescaped: tables.queues) AS q WHERE q.name = ANY(\(request.queues)) AND NOT q.partitioned
        ), room AS (
            SELECT p.name, p.key, LEAST(q.concurrency - c.running, q.worker_concurrency - c.mine, CASE WHEN q.rate_limit IS NULL THEN 2147483647
                ELSE q.rate_limit - (SELECT count(*) FROM \(unescaped: tables.instances) AS r WHERE r.queue_name = p.name AND r.partition_key = p.key
                    AND r.admitted_at > \(unescaped: Self.nowMilliseconds) - q.rate_period_ms) END) AS free
            FROM partitions AS p JOIN \(unescaped: tables.queues) AS q ON q.name = p.name
            CROSS JOIN LATERAL (
                SELECT count(*) AS running, count(*) FILTER (WHERE w.lease_owner = \(request.lease.owner)) AS mine
                FROM \(unescaped: tables.instances) AS w
                WHERE w.queue_name = p.name AND w.status IN ('running', 'compensating') AND w.partition_key = p.key
            ) AS c
        ), candidates AS (
            -- Each partition's first queued instances, as many as its room: for an unversioned
            -- worker, of any version; for a versioned one, unversioned ones and those of each of its
            -- versions, each through the index led by the version (a range of one value, as in the
            -- claim), so that another version's queued instances are not read.
            SELECT room.name, room.key, room.free, p.instance_id, p.priority, p.created_at FROM room CROSS JOIN LATERAL (
                SELECT instance_id, priority, created_at FROM \(unescaped: tables.instances)
                WHERE \(anyVersion) AND queue_name = room.name AND status = 'queued' AND partition_key = room.key
                    AND workflow_name = ANY(\(request.workflowNames)) AND instance_id NOT IN (SELECT instance_id FROM leaving)
                ORDER BY priority, created_at, instance_id
                LIMIT GREATEST(0, LEAST(room.free, \(request.limit)))
            ) AS p
            UNION ALL
            SELECT room.name, room.key, room.free, p.instance_id, p.priority, p.created_at FROM room CROSS JOIN LATERAL (
                SELECT instance_id, priority, created_at FROM \(unescaped: tables.instances)
                WHERE NOT \(anyVersion) AND queue_name = room.name AND status = 'queued' AND partition_key = room.key
                    AND app_version IS NULL AND workflow_name = ANY(\(request.workflowNames))
                    AND instance_id NOT IN (SELECT instance_id FROM leaving)
                ORDER BY priority, created_at, instance_id
                LIMIT GREATEST(0, LEAST(room.free, \(request.limit)))
            ) AS p
            UNION ALL
            SELECT room.name, room.key, room.free, p.instance_id, p.priority, p.created_at
            FROM room CROSS JOIN unnest(\(versions)::text[]) AS v(version) CROSS JOIN LATERAL (
                SELECT instance_id, priority, created_at FROM \(unescaped: tables.instances)
                WHERE queue_name = room.name AND status = 'queued' AND partition_key = room.key
                    AND app_version >= v.version AND app_version <= v.version AND workflow_name = ANY(\(request.workflowNames))
                    AND instance_id NOT IN (SELECT instance_id FROM leaving)
                ORDER BY app_version, priority, created_at, instance_id
                LIMIT GREATEST(0, LEAST(room.free, \(request.limit)))
            ) AS p
        ), chosen AS (
            -- Within each partition's room again: a versioned worker's branches each filled it.
            SELECT instance_id, priority, created_at FROM (
                SELECT instance_id, priority, created_at, free,
                    row_number() OVER (PARTITION BY name, key ORDER BY priority, created_at, instance_id) AS place
                FROM candidates
            ) AS ranked
            WHERE place <= free
            ORDER BY priority, created_at, instance_id
            LIMIT \(request.limit)
        ), taken AS (
            -- Those taken out of line count against the claim's limit. (A LIMIT read from a subquery
            -- here, not in chosen: there it would hide the chosen few from the planner, which then
            -- scanned every queued row.)
            SELECT instance_id FROM chosen ORDER BY priority, created_at, instance_id
            LIMIT GREATEST(0, \(request.limit) - (SELECT count(*) FROM leaving))
        ), admitted AS (
            UPDATE \(unescaped: tables.instances) AS w
            SET status = 'running', lease_owner = \(request.lease.owner), lease_token = w.lease_token + 1,
                lease_expires_at = \(unescaped: Self.nowMilliseconds) + \(request.lease.duration.wholeMilliseconds)::bigint,
                ready_at = NULL, wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds),
                claimed_at = \(unescaped: Self.nowMilliseconds), admitted_at = \(unescaped: Self.nowMilliseconds), queue_deadline_at = NULL,
                dequeue_at = NULL
            FROM taken WHERE w.instance_id = taken.instance_id AND w.status = 'queued'
            RETURNING \(unescaped: Self.instanceColumns(prefix: "w."))
        )
        SELECT * FROM out_of_line UNION ALL SELECT * FROM admitted
        """
    }

    // MARK: - Reading

    public func queues() async throws -> [QueueSummary] {
        try await perform("read the queues") { [self] in
            let rows = try await client.query(
                """
                SELECT q.name, q.concurrency, q.worker_concurrency, q.rate_limit, q.rate_period_ms, q.partitioned, q.updated_at,
                    (SELECT count(*) FROM \(unescaped: tables.instances) WHERE queue_name = q.name AND status = 'queued'),
                    (SELECT count(*) FROM \(unescaped: tables.instances) WHERE queue_name = q.name AND status IN ('running', 'compensating'))
                FROM \(unescaped: tables.queues) AS q ORDER BY q.name
                """,
                logger: logger
            )
            var queues: [QueueSummary] = []
            for try await (name, concurrency, workerConcurrency, rateLimit, period, partitioned, updatedAt, queued, running) in rows.decode(
                (String, Int32, Int32, Int32?, Int64?, Bool, Int64, Int64, Int64).self
            ) {
                queues.append(
                    QueueSummary(
                        storedName: name, concurrency: Int(concurrency), workerConcurrency: Int(workerConcurrency), rateLimit: rateLimit.map(Int.init),
                        ratePeriodMilliseconds: period, partitioned: partitioned, queued: Int(queued), running: Int(running), updatedAt: updatedAt
                    )
                )
            }
            return queues
        }
    }

    public func queuePosition(of instanceID: String) async throws -> Int? {
        try await perform("read a queue position") { [self] in
            // Ahead of it: the queued instances of its partition an admission takes first (priority, then
            // age, then ID).
            let rows = try await client.query(
                """
                SELECT 1 + (
                    SELECT count(*) FROM \(unescaped: tables.instances) AS o
                    WHERE o.queue_name = me.queue_name AND o.status = 'queued' AND o.partition_key = me.partition_key
                        AND (o.priority, o.created_at, o.instance_id) < (me.priority, me.created_at, me.instance_id)
                ) FROM \(unescaped: tables.instances) AS me WHERE me.instance_id = \(instanceID) AND me.status = 'queued'
                """,
                logger: logger
            )
            for try await position in rows.decode(Int64.self) { return Int(position) }
            return nil
        }
    }
}
