@_spi(EddaStores) public import Edda
public import Foundation
import GRDB

/// How the worker shares instances on the file: claims with leases, renewals, releases, cancellation
/// and retry requests. One worker per file (its process lock), so leases never lapse.
extension SQLiteStore {
    @_spi(EddaStores) public func claim(_ request: ClaimRequest) async throws -> [ClaimedInstance] {
        guard request.limit > 0, !request.workflowNames.isEmpty else { return [] }
        let names = request.workflowNames.map { _ in "?" }.joined(separator: ", ")
        let versions = Self.versionFilter(request)
        // Due waiters first (their deadline has come), then ready instances, oldest first; each
        // through its own partial index, named: left to itself the planner scans the status index
        // (every unfinished instance) and sorts — 100,000 waiting instances made each claim slow.
        let sql = """
            UPDATE workflow_instances
            SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = NULL, ready_at = NULL, wake_pending = 0, updated_at = ?,
                claimed_at = ?
            WHERE instance_id IN (
                SELECT instance_id FROM (
                    -- After a claim whose answer was lost: what it leased here that this worker does not hold.
                    SELECT instance_id FROM workflow_instances
                    WHERE ? AND lease_owner = ? AND status IN ('running', 'compensating')
                        AND instance_id NOT IN (SELECT value FROM json_each(?))
                )
                UNION ALL
                SELECT instance_id FROM (
                    SELECT instance_id FROM workflow_instances INDEXED BY workflow_instances_waiting
                    WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NOT NULL
                        AND ready_at <= ? AND workflow_name IN (\(names))\(versions.sql)
                    ORDER BY ready_at LIMIT ?
                )
                UNION ALL
                SELECT instance_id FROM (
                    SELECT instance_id FROM workflow_instances INDEXED BY workflow_instances_ready
                    WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NULL
                        AND workflow_name IN (\(names))\(versions.sql)
                    ORDER BY created_at, rowid LIMIT ?
                )
                LIMIT ?
            )
            RETURNING *
            """
        let owner = request.lease.owner
        return try await write { db in
            let now = Self.now()
            // Queued instances first: admitted within their queues' limits, in the claim's transaction.
            let admitted = request.queues.isEmpty ? [] : try Self.admitQueued(db, request, limit: request.limit, now: now)
            let limit = request.limit - admitted.count
            let except = request.adoptingLeasedExcept.map { Array($0).sorted() } ?? []
            let exceptJSON = String(decoding: try JSONEncoder().encode(except), as: UTF8.self)
            var arguments: StatementArguments = [owner, now, now, request.adoptingLeasedExcept != nil, owner, exceptJSON]
            arguments += [request.readyBy.millisecondsSince1970]
            arguments += StatementArguments(request.workflowNames)
            arguments += versions.arguments
            arguments += [limit]
            arguments += StatementArguments(request.workflowNames)
            arguments += versions.arguments
            arguments += [limit, limit]
            let ready = limit > 0 ? try Row.fetchAll(db, sql: sql, arguments: arguments) : []
            return try (admitted + ready).map { row in
                let instance = try Self.instance(from: row)
                let lease = Lease(instanceID: instance.instanceID, owner: owner, token: row["lease_token"])
                return ClaimedInstance(instance: instance, lease: lease)
            }
            .sorted { ($0.instance.createdAt, $0.instance.instanceID) < ($1.instance.createdAt, $1.instance.instanceID) }
        }
    }

    /// The claim's condition on ``WorkflowInstance/applicationVersion``, to follow a `WHERE` clause:
    /// unversioned instances and those of the request's versions, or — for an unversioned worker —
    /// nothing. Read on each row: one worker per file, which meets other versions' instances only
    /// when a deployment of another version left them there.
    static func versionFilter(_ request: ClaimRequest) -> (sql: String, arguments: StatementArguments) {
        guard let versions = request.applicationVersions else { return ("", []) }
        guard !versions.isEmpty else { return (" AND app_version IS NULL", []) }
        let marks = versions.map { _ in "?" }.joined(separator: ", ")
        return (" AND (app_version IS NULL OR app_version IN (\(marks)))", StatementArguments(versions))
    }

    public func requestCancellation(of instanceID: String) async throws -> CancellationRequest {
        let outcome = try await write { db -> CancellationRequest in
            // The instance and its unfinished descendants (child workflows, theirs…); a waiter released
            // until later is made ready now, so that a worker runs its cancellation.
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        WITH RECURSIVE tree(id) AS (
                            SELECT instance_id FROM workflow_instances WHERE instance_id = ?2 AND status IN ('queued', 'running', 'compensating')
                            UNION
                            SELECT c.instance_id FROM workflow_instances AS c JOIN tree ON c.parent_instance_id = tree.id
                            WHERE c.status IN ('queued', 'running', 'compensating')
                        )
                        UPDATE workflow_instances
                        SET cancel_requested = 1, ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END, updated_at = ?1,
                            -- A queued one leaves the line now (a claim for its queue takes it, unadmitted).
                            dequeue_at = CASE WHEN status = 'queued' THEN ?1 ELSE dequeue_at END
                        WHERE instance_id IN (SELECT id FROM tree)
                        RETURNING *
                        """
                ),
                arguments: [Self.now(), instanceID]
            )
            if let row = rows.first(where: { $0["instance_id"] == instanceID }) {
                return .requested(try Self.instance(from: row))
            }
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM workflow_instances WHERE instance_id = ?"), arguments: [instanceID])
            else { return .notFound }
            return .finished(try Self.instance(from: row))
        }
        if case .requested = outcome {
            wakeUps.notify()
            cancellations.notify()
        }
        return outcome
    }

    public func retry(_ instanceID: String, requestedBy: String) async throws -> RetryRequest {
        let outcome = try await write { db -> RetryRequest in
            var outcome = RetryRequest.notFound
            try db.inSavepoint {
                guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM workflow_instances WHERE instance_id = ?"), arguments: [instanceID])
                else { return .commit }
                let instance = try Self.instance(from: row)
                guard instance.status == .failed else {
                    outcome = .notFailed(instance)
                    return .commit
                }
                // The failed step: the last outcome recorded, if it is a failed activity (a workflow that
                // caught a failure and failed later in its own code has none to run again).
                let last = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT step_id, kind FROM workflow_history
                        WHERE instance_id = ? AND kind NOT IN ('AttemptFailed', 'CompensationCompleted', 'CompensationFailed', 'Retried')
                        ORDER BY sequence DESC LIMIT 1
                        """,
                    arguments: [instanceID]
                )
                let step: String? = last.flatMap { $0["kind"] == "ActivityFailed" ? $0["step_id"] : nil }
                // Its records move to the archive (nothing is deleted); compensation records stay, so
                // that a retried run that fails again does not run those compensations twice.
                let moved = "instance_id = ? AND step_id = ? AND kind IN ('ActivityFailed', 'AttemptFailed')"
                // The retry is recorded first (so that its sequence number is a new one), with the
                // failure as it was recorded and the compensations that ran.
                let movedRows = try Row.fetchAll(
                    db, sql: "SELECT sequence, step_name, kind, error, retry_metadata, recorded_at FROM workflow_history WHERE \(moved)",
                    arguments: [instanceID, step]
                )
                let failure = movedRows.first { $0["kind"] == "ActivityFailed" }.map { row in
                    RetryRecord.ArchivedFailure(
                        storedSequence: row["sequence"], name: row["step_name"], error: row["error"], retry: row["retry_metadata"],
                        recordedAt: row["recorded_at"], archivedRecords: movedRows.count
                    )
                }
                let compensations = try String.fetchAll(
                    db,
                    sql: """
                        SELECT step_id FROM workflow_history
                        WHERE instance_id = ? AND kind IN ('CompensationCompleted', 'CompensationFailed') ORDER BY sequence
                        """,
                    arguments: [instanceID]
                )
                let retries = try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM workflow_history WHERE instance_id = ? AND kind = 'Retried'", arguments: [instanceID]
                ) ?? 0
                let record = RetryRecord(
                    requestedBy: requestedBy, step: step, run: instance.runNumber, compensationsRan: compensations, failure: failure
                )
                try db.execute(
                    sql: """
                        INSERT INTO workflow_history
                            (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
                        VALUES (?, ?, ?, NULL, ?, 'Retried', ?, NULL, NULL, ?)
                        """,
                    arguments: [
                        instanceID, record.storedStepID, RetryRecord.storedAttempt(retriesBefore: retries), RetryRecord.storedName,
                        try record.storedPayload(), Self.now(),
                    ]
                )
                try db.execute(
                    sql: """
                        INSERT INTO workflow_history_archive
                        SELECT h.*, w.run_generation FROM workflow_history AS h JOIN workflow_instances AS w ON w.instance_id = h.instance_id
                        WHERE h.\(moved)
                        """,
                    arguments: [instanceID, step]
                )
                try db.execute(sql: "DELETE FROM workflow_history WHERE \(moved)", arguments: [instanceID, step])
                let updated = try Row.fetchOne(
                    db,
                    sql: """
                        UPDATE workflow_instances
                        -- An instance on a queue goes back to it, to be admitted within its limits again.
                        SET status = CASE WHEN queue_name IS NULL THEN 'running' ELSE 'queued' END, error = NULL, output = NULL, ready_at = NULL,
                            lease_owner = NULL, lease_expires_at = NULL,
                            cancel_requested = 0, wake_pending = 0, updated_at = ?1,
                            -- Its queue timeout counts again from now.
                            queue_deadline_at = ?1 + queue_timeout_ms,
                            dequeue_at = CASE WHEN queue_name IS NOT NULL
                                THEN min(coalesce(?1 + queue_timeout_ms, deadline_at), coalesce(deadline_at, ?1 + queue_timeout_ms)) END
                        WHERE instance_id = ?2 RETURNING *
                        """,
                    arguments: [Self.now(), instanceID]
                )
                guard let updated else { return .commit }
                outcome = .retried(try Self.instance(from: updated), step: step)
                return .commit
            }
            return outcome
        }
        if case .retried = outcome { wakeUps.notify() }
        return outcome
    }

    @_spi(EddaStores) public func cancellationRequests(among instanceIDs: [String]) async throws -> Set<String> {
        guard !instanceIDs.isEmpty else { return [] }
        return try await read { db in
            var requested: Set<String> = []
            for chunk in stride(from: 0, to: instanceIDs.count, by: 500) {
                let ids = Array(instanceIDs[chunk..<min(chunk + 500, instanceIDs.count)])
                let marks = ids.map { _ in "?" }.joined(separator: ", ")
                requested.formUnion(
                    try String.fetchAll(
                        db, sql: "SELECT instance_id FROM workflow_instances WHERE cancel_requested = 1 AND instance_id IN (\(marks))",
                        arguments: StatementArguments(ids)
                    )
                )
            }
            return requested
        }
    }

    @_spi(EddaStores) public func nextReadyAt(after: Date, workflowNames: [String]) async throws -> Date? {
        guard !workflowNames.isEmpty else { return nil }
        let names = workflowNames.map { _ in "?" }.joined(separator: ", ")
        return try await read { db in
            var arguments: StatementArguments = [after.millisecondsSince1970]
            arguments += StatementArguments(workflowNames)
            arguments += [after.millisecondsSince1970]
            arguments += StatementArguments(workflowNames)
            // The next released instance's time, or the next time a queued one leaves the line.
            return try Int64.fetchOne(
                db,
                sql: """
                    SELECT min(next) FROM (
                        SELECT * FROM (
                            SELECT ready_at AS next FROM workflow_instances INDEXED BY workflow_instances_waiting
                            WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NOT NULL
                                AND ready_at > ? AND workflow_name IN (\(names))
                            ORDER BY ready_at LIMIT 1
                        )
                        UNION ALL
                        SELECT * FROM (
                            SELECT dequeue_at FROM workflow_instances INDEXED BY workflow_instances_dequeue
                            WHERE status = 'queued' AND dequeue_at IS NOT NULL AND dequeue_at > ? AND workflow_name IN (\(names))
                            ORDER BY dequeue_at LIMIT 1
                        )
                    )
                    """,
                arguments: arguments
            ).map(Date.init(storedMilliseconds:))
        }
    }

    @_spi(EddaStores) public func waitingCount(at now: Date) async throws -> Int {
        try await read { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM workflow_instances INDEXED BY workflow_instances_waiting
                    WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NOT NULL AND ready_at > ?
                    """,
                arguments: [now.millisecondsSince1970]
            ) ?? 0
        }
    }

    @_spi(EddaStores) public func renew(_ leases: [Lease], for duration: Duration) async throws -> Set<String> {
        guard !leases.isEmpty else { return [] }
        // SQLite leases never lapse: renewing checks that each is still held, in one read.
        let held = try await read { db -> [String: (owner: String?, token: Int64)] in
            var held: [String: (owner: String?, token: Int64)] = [:]
            for chunk in stride(from: 0, to: leases.count, by: 500) {
                let ids = leases[chunk..<min(chunk + 500, leases.count)].map(\.instanceID)
                let marks = ids.map { _ in "?" }.joined(separator: ", ")
                let rows = try Row.fetchAll(
                    db, sql: "SELECT instance_id, lease_owner, lease_token FROM workflow_instances WHERE instance_id IN (\(marks))",
                    arguments: StatementArguments(ids)
                )
                for row in rows { held[row["instance_id"]] = (row["lease_owner"], row["lease_token"]) }
            }
            return held
        }
        return Set(leases.filter { lease in
            guard let current = held[lease.instanceID] else { return true }
            return current.owner != lease.owner || current.token != lease.token
        }.map(\.instanceID))
    }

    @_spi(EddaStores) public func release(_ lease: Lease, readyAt: Date?) async throws {
        try await write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE workflow_instances SET lease_owner = NULL, lease_expires_at = NULL,
                        -- Ready at the instance's deadline if that comes first (MIN is NULL, ready now, for a NULL time).
                        ready_at = CASE WHEN cancel_requested = 1 OR wake_pending = 1 THEN NULL ELSE MIN(?1, COALESCE(deadline_at, ?1)) END,
                        wake_pending = 0, updated_at = ?2
                    WHERE instance_id = ?3 AND lease_owner = ?4 AND lease_token = ?5
                    """
            ).execute(arguments: [readyAt?.millisecondsSince1970, Self.now(), lease.instanceID, lease.owner, lease.token])
            try Self.checkFence(db, lease)
        }
        wakeUps.notify()
    }
}
