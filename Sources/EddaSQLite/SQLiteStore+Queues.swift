@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Queues on the file: their limits, queued instances, and admissions. One writer at a time, so an
/// admission's count and its update see the same instances.
extension SQLiteStore {
    @_spi(EddaStores) public func declareQueues(_ queues: [Queue]) async throws {
        guard !queues.isEmpty else { return }
        try await write { db in
            for queue in queues {
                try db.execute(
                    sql: """
                        INSERT INTO workflow_queues (name, concurrency, worker_concurrency, rate_limit, rate_period_ms, partitioned, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
                            worker_concurrency = excluded.worker_concurrency, rate_limit = excluded.rate_limit,
                            rate_period_ms = excluded.rate_period_ms, partitioned = excluded.partitioned, updated_at = excluded.updated_at
                        """,
                    arguments: [
                        queue.name, queue.storedConcurrency, queue.storedWorkerConcurrency, queue.rateLimit?.limit,
                        queue.rateLimit?.periodMilliseconds, queue.partitioned, Self.now(),
                    ]
                )
            }
        }
    }

    /// Inserts an instance on its queue, `queued` and unleased, unless its ID exists or another
    /// instance queued or running on the queue holds its deduplication ID (the unique index).
    func createQueued(_ instance: NewInstance, _ placement: QueuePlacement) async throws -> CreateInstanceOutcome {
        let outcome = try await write { db -> CreateInstanceOutcome in
            let now = Self.now()
            var deadline = try Self.storedDeadline(of: instance, now: now, db)
            deadline.queueDeadlineAt = placement.storedQueueDeadline(now: now)
            deadline.queueTimeoutMilliseconds = placement.timeout?.milliseconds
            let inserted = try Row.fetchOne(
                db,
                sql: """
                    INSERT INTO workflow_instances
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         queue_name, priority, deduplication_id, partition_key, parent_instance_id, cancel_requested,
                         deadline_at, workflow_deadline_at, workflow_timeout_ms, run_timeout_ms, queue_deadline_at, queue_timeout_ms,
                         app_version)
                    VALUES (?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, coalesce((
                        -- A child of a parent asked to cancel (or finished) is born cancel-requested, as one on no queue is.
                        SELECT cancel_requested = 1 OR status NOT IN ('running', 'compensating') FROM workflow_instances WHERE instance_id = ?
                    ), 0), ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    RETURNING *
                    """,
                arguments: [
                    instance.instanceID, instance.workflowName, instance.serviceName, instance.input.json, now, now, instance.storedTraceContext,
                    placement.queue, placement.priority, placement.deduplicationID, placement.partitionKey ?? "", instance.parentInstanceID,
                    instance.parentInstanceID, deadline.deadlineAt, deadline.workflowDeadlineAt, deadline.workflowTimeoutMilliseconds,
                    deadline.runTimeoutMilliseconds, deadline.queueDeadlineAt, deadline.queueTimeoutMilliseconds, instance.applicationVersion,
                ]
            )
            if let inserted {
                let created = try Self.instance(from: inserted)
                if let dequeueAt = deadline.dequeueAt(now: now, cancelRequested: created.cancelRequested) {
                    try db.execute(
                        sql: "UPDATE workflow_instances SET dequeue_at = ? WHERE instance_id = ?", arguments: [dequeueAt, instance.instanceID]
                    )
                }
                return .created(created, lease: nil)
            }
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM workflow_instances WHERE instance_id = ?", arguments: [instance.instanceID]) {
                return .existing(try Self.instance(from: row))
            }
            guard
                let holder = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT * FROM workflow_instances
                        WHERE queue_name = ? AND deduplication_id = ? AND status IN ('queued', 'running', 'compensating')
                        """,
                    arguments: [placement.queue, placement.deduplicationID]
                )
            else { throw StoreError(.database, "Instance \(instance.instanceID) could not be inserted on queue '\(placement.queue)'.") }
            return .deduplicated(holder: try Self.instance(from: holder))
        }
        if case .created = outcome { wakeUps.notify() }
        return outcome
    }

    /// Admits queued instances of the request's queues within their limits, leasing them to the
    /// claiming worker: at most `limit` in all, the queues in name order. On a partitioned queue each
    /// partition with queued instances has limits of its own, and its candidates are admitted
    /// together in priority order, then oldest first; on another queue, the one partition `''`.
    static func admitQueued(_ db: Database, _ request: ClaimRequest, limit: Int, now: Int64) throws -> [Row] {
        let names = request.workflowNames.map { _ in "?" }.joined(separator: ", ")
        var admitted = try takeOutOfLine(db, request, names: names, limit: limit, now: now)
        for queue in request.queues where admitted.count < limit {
            guard
                let limits = try Row.fetchOne(
                    db,
                    sql: "SELECT concurrency, worker_concurrency, rate_limit, rate_period_ms, partitioned FROM workflow_queues WHERE name = ?",
                    arguments: [queue]
                )
            else { continue }
            var candidates: [(priority: Int, createdAt: Int64, rowID: Int64, id: String)] = []
            for partition in try limits["partitioned"] ? queuedPartitions(db, queue: queue) : [""] {
                let room = try Self.room(db, queue: queue, partition: partition, limits: limits, owner: request.lease.owner, now: now)
                guard room > 0 else { continue }
                let versions = versionFilter(request)
                var arguments: StatementArguments = [queue, partition]
                arguments += StatementArguments(request.workflowNames)
                arguments += versions.arguments
                arguments += [min(room, limit - admitted.count)]
                candidates += try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                        SELECT instance_id, priority, created_at, rowid AS row_id FROM workflow_instances INDEXED BY workflow_instances_by_queue
                        WHERE queue_name = ? AND status = 'queued' AND partition_key = ? AND workflow_name IN (\(names))\(versions.sql)
                        ORDER BY priority, created_at, rowid LIMIT ?
                        """
                    ),
                    arguments: arguments
                ).map { (priority: $0["priority"], createdAt: $0["created_at"], rowID: $0["row_id"], id: $0["instance_id"]) }
            }
            let chosen = candidates.sorted { ($0.priority, $0.createdAt, $0.rowID) < ($1.priority, $1.createdAt, $1.rowID) }
                .prefix(limit - admitted.count).map(\.id)
            guard !chosen.isEmpty else { continue }
            admitted += try Row.fetchAll(
                db,
                sql: """
                    UPDATE workflow_instances
                    SET status = 'running', lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = NULL, ready_at = NULL,
                        wake_pending = 0, updated_at = ?, claimed_at = ?, admitted_at = ?, queue_deadline_at = NULL, dequeue_at = NULL
                    WHERE instance_id IN (\(chosen.map { _ in "?" }.joined(separator: ", "))) AND status = 'queued'
                    RETURNING *
                    """,
                arguments: [request.lease.owner, now, now, now] + StatementArguments(chosen)
            )
        }
        return admitted
    }

    /// Takes out of line the queued instances of the request's queues whose `dequeue_at` has come —
    /// asked to cancel, or past their queue deadline or deadline — leasing them to the claiming worker
    /// unadmitted, whatever the queues' limits: their run cancels them before any step (see
    /// ``WorkflowInstance/queueDeadline``). Their queue deadline stays, to name the reason.
    static func takeOutOfLine(_ db: Database, _ request: ClaimRequest, names: String, limit: Int, now: Int64) throws -> [Row] {
        let queues = request.queues.map { _ in "?" }.joined(separator: ", ")
        var arguments: StatementArguments = [request.lease.owner, now, now, now]
        arguments += StatementArguments(request.queues)
        arguments += StatementArguments(request.workflowNames)
        let versions = versionFilter(request)
        arguments += versions.arguments
        arguments += [limit]
        return try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    UPDATE workflow_instances
                    SET status = 'running', lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = NULL, ready_at = NULL,
                        wake_pending = 0, updated_at = ?, claimed_at = ?, dequeue_at = NULL
                    WHERE instance_id IN (
                        SELECT instance_id FROM workflow_instances INDEXED BY workflow_instances_dequeue
                        WHERE status = 'queued' AND dequeue_at IS NOT NULL AND dequeue_at <= ? AND queue_name IN (\(queues))
                            AND workflow_name IN (\(names))\(versions.sql)
                        ORDER BY dequeue_at LIMIT ?
                    )
                    RETURNING *
                    """
            ),
            arguments: arguments
        )
    }

    /// The partition keys of `queue` that have queued instances, in key order: a skip scan of the
    /// queue's index, one seek per partition.
    static func queuedPartitions(_ db: Database, queue: String) throws -> [String] {
        let next = """
            SELECT min(partition_key) FROM workflow_instances INDEXED BY workflow_instances_by_queue
            WHERE queue_name = ? AND status = 'queued' AND partition_key > ?
            """
        var keys: [String] = []
        var key = try String.fetchOne(
            db, sql: "SELECT min(partition_key) FROM workflow_instances WHERE queue_name = ? AND status = 'queued'", arguments: [queue]
        )
        while let found = key {
            keys.append(found)
            key = try String.fetchOne(db.cachedStatement(sql: next), arguments: [queue, found])
        }
        return keys
    }

    /// How many more of a partition's instances its limits let in now: its concurrency and the
    /// claiming worker's, less its unfinished admitted instances, and its rate limit less its
    /// admissions within the period before `now`.
    static func room(_ db: Database, queue: String, partition: String, limits: Row, owner: String, now: Int64) throws -> Int {
        // Cached statements: a partitioned queue runs these once per partition.
        let counts = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT count(*) AS running, coalesce(sum(lease_owner = ?), 0) AS mine FROM workflow_instances
                    WHERE queue_name = ? AND status IN ('running', 'compensating') AND partition_key = ?
                    """
            ),
            arguments: [owner, queue, partition]
        )
        var room = min((limits["concurrency"] as Int) - (counts?["running"] ?? 0), (limits["worker_concurrency"] as Int) - (counts?["mine"] ?? 0))
        if let rateLimit = limits["rate_limit"] as Int?, let period = limits["rate_period_ms"] as Int64? {
            let recent =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT count(*) FROM workflow_instances WHERE queue_name = ? AND partition_key = ? AND admitted_at > ?"),
                    arguments: [queue, partition, now - period]
                ) ?? 0
            room = min(room, rateLimit - recent)
        }
        return room
    }

    // MARK: - Reading

    public func queues() async throws -> [QueueSummary] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT q.*,
                        (SELECT count(*) FROM workflow_instances WHERE queue_name = q.name AND status = 'queued') AS queued,
                        (SELECT count(*) FROM workflow_instances WHERE queue_name = q.name AND status IN ('running', 'compensating')) AS running
                    FROM workflow_queues AS q ORDER BY q.name
                    """
            ).map { row in
                QueueSummary(
                    storedName: row["name"], concurrency: row["concurrency"], workerConcurrency: row["worker_concurrency"],
                    rateLimit: row["rate_limit"], ratePeriodMilliseconds: row["rate_period_ms"], partitioned: row["partitioned"],
                    queued: row["queued"], running: row["running"],
                    updatedAt: row["updated_at"]
                )
            }
        }
    }

    public func queuePosition(of instanceID: String) async throws -> Int? {
        try await read { db in
            // Ahead of it: the queued instances of its partition an admission takes first (priority, then
            // age, then insertion).
            try Int.fetchOne(
                db,
                sql: """
                    SELECT 1 + (
                        SELECT count(*) FROM workflow_instances AS o INDEXED BY workflow_instances_by_queue
                        WHERE o.queue_name = me.queue_name AND o.status = 'queued' AND o.partition_key = me.partition_key
                            AND (o.priority, o.created_at, o.rowid) < (me.priority, me.created_at, me.rowid)
                    ) FROM workflow_instances AS me WHERE me.instance_id = ? AND me.status = 'queued'
                    """,
                arguments: [instanceID]
            )
        }
    }
}
