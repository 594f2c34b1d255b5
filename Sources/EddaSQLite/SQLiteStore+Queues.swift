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
                        INSERT INTO workflow_queues (name, concurrency, worker_concurrency, updated_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
                            worker_concurrency = excluded.worker_concurrency, updated_at = excluded.updated_at
                        """,
                    arguments: [queue.name, queue.concurrency, queue.workerConcurrency, Self.now()]
                )
            }
        }
    }

    /// Inserts an instance on its queue, `queued` and unleased, unless its ID exists or another
    /// instance queued or running on the queue holds its deduplication ID (the unique index).
    func createQueued(_ instance: NewInstance, _ placement: QueuePlacement) async throws -> CreateInstanceOutcome {
        let outcome = try await write { db -> CreateInstanceOutcome in
            let now = Self.now()
            let deadline = try Self.storedDeadline(of: instance, now: now, db)
            let inserted = try Row.fetchOne(
                db,
                sql: """
                    INSERT INTO workflow_instances
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         queue_name, priority, deduplication_id, deadline_at, workflow_deadline_at, workflow_timeout_ms, run_timeout_ms)
                    VALUES (?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    RETURNING *
                    """,
                arguments: [
                    instance.instanceID, instance.workflowName, instance.serviceName, instance.input.json, now, now, instance.storedTraceContext,
                    placement.queue, placement.priority, placement.deduplicationID, deadline.deadlineAt, deadline.workflowDeadlineAt,
                    deadline.workflowTimeoutMilliseconds, deadline.runTimeoutMilliseconds,
                ]
            )
            if let inserted { return .created(try Self.instance(from: inserted), lease: nil) }
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
    /// claiming worker: at most `limit` in all, the queues in name order.
    static func admitQueued(_ db: Database, _ request: ClaimRequest, limit: Int, now: Int64) throws -> [Row] {
        var admitted: [Row] = []
        let names = request.workflowNames.map { _ in "?" }.joined(separator: ", ")
        for queue in request.queues where admitted.count < limit {
            guard
                let limits = try Row.fetchOne(
                    db, sql: "SELECT concurrency, worker_concurrency FROM workflow_queues WHERE name = ?", arguments: [queue]
                )
            else { continue }
            let counts = try Row.fetchOne(
                db,
                sql: """
                    SELECT count(*) AS running, coalesce(sum(lease_owner = ?), 0) AS mine FROM workflow_instances
                    WHERE queue_name = ? AND status IN ('running', 'compensating')
                    """,
                arguments: [request.lease.owner, queue]
            )
            let running: Int = counts?["running"] ?? 0
            let mine: Int = counts?["mine"] ?? 0
            let room = min(limit - admitted.count, (limits["concurrency"] as Int) - running, (limits["worker_concurrency"] as Int) - mine)
            guard room > 0 else { continue }
            var arguments: StatementArguments = [request.lease.owner, now, now, queue]
            arguments += StatementArguments(request.workflowNames)
            arguments += [room]
            admitted += try Row.fetchAll(
                db,
                sql: """
                    UPDATE workflow_instances
                    SET status = 'running', lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = NULL, ready_at = NULL,
                        wake_pending = 0, updated_at = ?, claimed_at = ?
                    WHERE instance_id IN (
                        SELECT instance_id FROM workflow_instances INDEXED BY workflow_instances_by_queue
                        WHERE queue_name = ? AND status = 'queued' AND workflow_name IN (\(names))
                        ORDER BY priority, created_at, rowid LIMIT ?
                    )
                    RETURNING *
                    """,
                arguments: arguments
            )
        }
        return admitted
    }
}
