@_spi(EddaStores) public import Edda
public import Foundation
import Logging
import PostgresNIO
import Synchronization

/// How workers share instances: claims with leases, renewals, releases, cancellation and retry requests.
extension PostgresStore {
    // MARK: - Work queue

    /// `true`: a lease lapses on the server's clock unless renewed, and any worker may then claim the instance.
    @_spi(EddaStores) public var leasesLapse: Bool { true }

    @_spi(EddaStores) public func attachWorker(_ workerID: String) async throws {
        // Several workers share the database; nothing to take. Wait until the store is ready.
        try await ready()
    }

    @_spi(EddaStores) public func detachWorker(_ workerID: String) async throws {}

    @_spi(EddaStores) public func claim(_ request: ClaimRequest) async throws -> [ClaimedInstance] {
        guard request.limit > 0, !request.workflowNames.isEmpty else { return [] }
        let owner = request.lease.owner
        // On the lifeline, as renewals: a worker counts a lease as held from the moment it asked for
        // it, so a claim queued behind step traffic for a pooled connection (transactional steps hold
        // theirs for their whole body) would hand out leases already spent, and their runs would stop
        // at once. Through the pool while the lifeline is failing.
        let connections = lifelineFailed.load(ordering: .relaxed) ? client : lifeline
        // Queued instances first, in a transaction of their own (through the pool: it holds locks).
        let admitted = request.queues.isEmpty ? [] : try await admitQueued(request)
        guard admitted.count < request.limit else { return admitted }
        var request = request
        request.limit -= admitted.count
        return try await perform("claim instances") { [self, request] in
            let rows = try await connections.query(Self.claimQuery(request, tables: tables), logger: logger)
            var claimed = admitted
            for try await row in rows {
                let decoded = try Self.instance(from: row)
                let lease = Lease(instanceID: decoded.instance.instanceID, owner: owner, token: decoded.leaseToken)
                claimed.append(ClaimedInstance(instance: decoded.instance, lease: lease))
            }
            return claimed.sorted { ($0.instance.createdAt, $0.instance.instanceID) < ($1.instance.createdAt, $1.instance.instanceID) }
        }
    }

    /// The claim: one statement that takes, each through an index of its own, released instances
    /// whose time has come, instances whose lease lapsed, and ready unleased instances, oldest first.
    /// Leased rows are in none of those indexes but the lapse index, where only the lapsed ones are
    /// read: an idle worker's poll costs the same with 50,000 live leases held elsewhere as with none.
    /// (Ready instances of other services' workflows, in a shared schema, are still read and
    /// filtered: the indexes do not lead with the workflow's name.)
    ///
    /// A versioned worker (``ClaimRequest/applicationVersions``) takes unversioned instances and those
    /// of its versions only; their ready and due ones through `instances_ready_by_version` and
    /// `instances_waiting_by_version`, a version at a time, so that 50,000 ready instances of a
    /// version no worker here runs are not read. Lapsed leases of other versions are read and
    /// filtered: as many as their dead workers held.
    static func claimQuery(_ request: ClaimRequest, tables: Tables) -> PostgresQuery {
        let anyVersion = request.applicationVersions == nil
        let versions = request.applicationVersions ?? []
        return """
        WITH orphans AS (
            -- After a claim whose answer was lost: what it leased here that this worker does not hold.
            SELECT instance_id FROM \(unescaped: tables.instances)
            WHERE \(request.adoptingLeasedExcept != nil) AND lease_owner = \(request.lease.owner)
                AND status IN ('running', 'compensating')
                AND NOT (instance_id = ANY(\(request.adoptingLeasedExcept.map { Array($0) } ?? [])))
            FOR UPDATE SKIP LOCKED
        ), due_any AS (
            -- Released instances whose time has come (a timer's deadline, a backoff's end),
            -- earliest first; readyBy is the worker's clock, which set ready_at. For an unversioned
            -- worker, of any version; for a versioned one, unversioned ones, then those of each of
            -- its versions through the index that leads with the version, as for ready instances.
            SELECT instance_id, ready_at FROM \(unescaped: tables.instances)
            WHERE \(anyVersion) AND status IN ('running', 'compensating') AND ready_at IS NOT NULL
                AND ready_at <= \(request.readyBy.millisecondsSince1970) AND lease_owner IS NULL AND workflow_name = ANY(\(request.workflowNames))
            ORDER BY ready_at
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), due_unversioned AS (
            SELECT instance_id, ready_at FROM \(unescaped: tables.instances)
            WHERE NOT \(anyVersion) AND status IN ('running', 'compensating') AND ready_at IS NOT NULL
                AND ready_at <= \(request.readyBy.millisecondsSince1970) AND lease_owner IS NULL AND app_version IS NULL
                AND workflow_name = ANY(\(request.workflowNames))
            ORDER BY ready_at
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), due_versioned AS (
            SELECT d.instance_id, d.ready_at FROM unnest(\(versions)::text[]) AS v(version) CROSS JOIN LATERAL (
                SELECT instance_id, ready_at FROM \(unescaped: tables.instances)
                WHERE status IN ('running', 'compensating') AND ready_at IS NOT NULL AND ready_at <= \(request.readyBy.millisecondsSince1970)
                    AND lease_owner IS NULL AND app_version >= v.version AND app_version <= v.version
                    AND workflow_name = ANY(\(request.workflowNames))
                -- The version as a range of one value, not an equality: the order then keeps it, and
                -- only the index led by it gives this order unsorted. (With an equality the planner
                -- drops it from the order, and may walk instances_waiting, every version's due rows.)
                ORDER BY app_version, ready_at
                LIMIT \(request.limit)
                FOR UPDATE SKIP LOCKED
            ) AS d
        ), due AS (
            SELECT instance_id FROM (
                SELECT * FROM due_any UNION ALL SELECT * FROM due_unversioned UNION ALL SELECT * FROM due_versioned
            ) AS candidates
            ORDER BY ready_at
            LIMIT \(request.limit)
        ), server AS (
            -- Read once (an index can compare with it): clock_timestamp() changes row by row.
            SELECT \(unescaped: Self.nowMilliseconds) AS now
        ), lapsed AS (
            -- Instances whose worker stopped renewing (it died, or was cut off), longest lapsed
            -- first; lease times on the server's clock.
            SELECT instance_id FROM \(unescaped: tables.instances)
            WHERE status IN ('running', 'compensating') AND lease_owner IS NOT NULL
                AND lease_expires_at < (SELECT now FROM server)
                AND workflow_name = ANY(\(request.workflowNames))
                AND (\(anyVersion) OR app_version IS NULL OR app_version = ANY(\(versions)))
            ORDER BY lease_expires_at
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), ready_any AS (
            -- Unleased instances ready to run, oldest first: for an unversioned worker, of any version.
            SELECT instance_id, created_at FROM \(unescaped: tables.instances)
            WHERE \(anyVersion) AND status IN ('running', 'compensating') AND ready_at IS NULL AND lease_owner IS NULL
                AND workflow_name = ANY(\(request.workflowNames))
            ORDER BY created_at, instance_id
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), ready_unversioned AS (
            -- For a versioned worker: unversioned ones, then those of each of its versions, each
            -- through the index that leads with the version, so that other versions' are not read.
            SELECT instance_id, created_at FROM \(unescaped: tables.instances)
            WHERE NOT \(anyVersion) AND status IN ('running', 'compensating') AND ready_at IS NULL AND lease_owner IS NULL
                AND app_version IS NULL AND workflow_name = ANY(\(request.workflowNames))
            ORDER BY created_at, instance_id
            LIMIT \(request.limit)
            FOR UPDATE SKIP LOCKED
        ), ready_versioned AS (
            SELECT r.instance_id, r.created_at FROM unnest(\(versions)::text[]) AS v(version) CROSS JOIN LATERAL (
                SELECT instance_id, created_at FROM \(unescaped: tables.instances)
                WHERE status IN ('running', 'compensating') AND ready_at IS NULL AND lease_owner IS NULL
                    AND app_version >= v.version AND app_version <= v.version AND workflow_name = ANY(\(request.workflowNames))
                -- A range of one value, as for due instances.
                ORDER BY app_version, created_at, instance_id
                LIMIT \(request.limit)
                FOR UPDATE SKIP LOCKED
            ) AS r
        ), ready AS (
            SELECT instance_id FROM (
                SELECT * FROM ready_any UNION ALL SELECT * FROM ready_unversioned UNION ALL SELECT * FROM ready_versioned
            ) AS candidates
            ORDER BY created_at, instance_id
            LIMIT \(request.limit)
        ), chosen AS (
            SELECT instance_id FROM orphans UNION ALL SELECT instance_id FROM due UNION ALL SELECT instance_id FROM lapsed
            UNION ALL SELECT instance_id FROM ready
            LIMIT \(request.limit)
        )
        UPDATE \(unescaped: tables.instances) AS w
        SET lease_owner = \(request.lease.owner), lease_token = w.lease_token + 1,
            lease_expires_at = \(unescaped: Self.nowMilliseconds) + \(request.lease.duration.wholeMilliseconds)::bigint,
            ready_at = NULL, wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds),
            claimed_at = \(unescaped: Self.nowMilliseconds)
        FROM chosen WHERE w.instance_id = chosen.instance_id
        RETURNING \(unescaped: Self.instanceColumns(prefix: "w."))
        """
    }

    public func requestCancellation(of instanceID: String) async throws -> CancellationRequest {
        let outcome = try await perform("request a cancellation") { [self] () -> CancellationRequest in
            try await client.withTransaction(logger: logger) { connection -> CancellationRequest in
                // The instance first, in a statement of its own: a child being created under it (its
                // insert holds this row FOR SHARE) commits before this mark, and the cascade below
                // sees it, or waits for the mark and is born cancel-requested. A waiter released until
                // later is made ready now, so that a worker runs its cancellation.
                let marked = try await connection.query(
                    """
                    UPDATE \(unescaped: tables.instances)
                    SET cancel_requested = true, ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                        updated_at = \(unescaped: Self.nowMilliseconds),
                        -- A queued one leaves the line now (a claim for its queue takes it, unadmitted).
                        dequeue_at = CASE WHEN status = 'queued' THEN \(unescaped: Self.nowMilliseconds) ELSE dequeue_at END
                    WHERE instance_id = \(instanceID) AND status IN ('queued', 'running', 'compensating')
                    RETURNING \(unescaped: Self.instanceColumns)
                    """,
                    logger: logger
                )
                var root: WorkflowInstance?
                for try await row in marked { root = try Self.instance(from: row).instance }
                guard let root else {
                    let current = try await connection.query(
                        "SELECT \(unescaped: Self.instanceColumns) FROM \(unescaped: tables.instances) WHERE instance_id = \(instanceID)",
                        logger: logger
                    )
                    for try await row in current { return .finished(try Self.instance(from: row).instance) }
                    return .notFound
                }
                // Its unfinished descendants (child workflows, theirs…), a pass at a time until one finds
                // none left to mark: a child created under a descendant while a pass marks it is committed
                // before that mark, and the next pass, a statement of its own, sees it.
                while try await markDescendants(of: instanceID, on: connection) > 0 {}
                return .requested(root)
            }
        }
        if case .requested = outcome {
            wakeUps.notify()
            notifier.post(.ready)
            notifier.post(.cancel)
            cancellations.notify()
        }
        return outcome
    }

    /// Marks the unfinished descendants of `instanceID` not marked yet as cancel-requested; returns how many.
    private func markDescendants(of instanceID: String, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(
            """
            WITH RECURSIVE tree(id) AS (
                SELECT \(instanceID)::text
                UNION
                SELECT c.instance_id FROM \(unescaped: tables.instances) AS c JOIN tree ON c.parent_instance_id = tree.id
                WHERE c.status IN ('queued', 'running', 'compensating')
            )
            UPDATE \(unescaped: tables.instances)
            SET cancel_requested = true, ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                updated_at = \(unescaped: Self.nowMilliseconds),
                dequeue_at = CASE WHEN status = 'queued' THEN \(unescaped: Self.nowMilliseconds) ELSE dequeue_at END
            WHERE instance_id IN (SELECT id FROM tree) AND NOT cancel_requested
            RETURNING instance_id
            """,
            logger: logger
        )
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    public func retry(_ instanceID: String, requestedBy: String) async throws -> RetryRequest {
        let outcome = try await perform("retry an instance") { [self] () -> RetryRequest in
            try await client.withTransaction(logger: logger) { connection -> RetryRequest in
                var current: WorkflowInstance?
                let rows = try await connection.query(
                    "SELECT \(unescaped: Self.instanceColumns) FROM \(unescaped: tables.instances) WHERE instance_id = \(instanceID) FOR UPDATE",
                    logger: logger
                )
                for try await row in rows { current = try Self.instance(from: row).instance }
                guard let instance = current else { return .notFound }
                guard instance.status == .failed else { return .notFailed(instance) }
                var step: String?
                // The failed step: the last outcome recorded, if it is a failed activity (a workflow that
                // caught a failure and failed later in its own code has none to run again).
                let last = try await connection.query(
                    """
                    SELECT step_id, kind FROM \(unescaped: tables.history)
                    WHERE instance_id = \(instanceID) AND kind NOT IN ('AttemptFailed', 'CompensationCompleted', 'CompensationFailed', 'Retried')
                    ORDER BY sequence DESC LIMIT 1
                    """,
                    logger: logger
                )
                for try await (id, kind) in last.decode((String, String).self) where kind == "ActivityFailed" { step = id }
                // The retry is recorded first, with the failure as it was recorded and the compensations that ran.
                var movedCount = 0
                var failed: (sequence: Int64, name: String, error: String?, retry: String?, recordedAt: Int64)?
                let moving = try await connection.query(
                    """
                    SELECT sequence, step_name, kind, error, retry_metadata, recorded_at FROM \(unescaped: tables.history)
                    WHERE instance_id = \(instanceID) AND step_id = \(step) AND kind IN ('ActivityFailed', 'AttemptFailed')
                    """,
                    logger: logger
                )
                for try await (sequence, name, kind, error, retry, recordedAt) in moving.decode((Int64, String, String, String?, String?, Int64).self) {
                    movedCount += 1
                    if kind == "ActivityFailed" { failed = (sequence, name, error, retry, recordedAt) }
                }
                var compensations: [String] = []
                let compensationRows = try await connection.query(
                    """
                    SELECT step_id FROM \(unescaped: tables.history)
                    WHERE instance_id = \(instanceID) AND kind IN ('CompensationCompleted', 'CompensationFailed') ORDER BY sequence
                    """,
                    logger: logger
                )
                for try await id in compensationRows.decode(String.self) { compensations.append(id) }
                var retries = 0
                let counted = try await connection.query(
                    "SELECT COUNT(*) FROM \(unescaped: tables.history) WHERE instance_id = \(instanceID) AND kind = 'Retried'", logger: logger
                )
                for try await count in counted.decode(Int64.self) { retries = Int(count) }
                let record = RetryRecord(
                    requestedBy: requestedBy, step: step, run: instance.runNumber, compensationsRan: compensations,
                    failure: failed.map {
                        RetryRecord.ArchivedFailure(
                            storedSequence: $0.sequence, name: $0.name, error: $0.error, retry: $0.retry, recordedAt: $0.recordedAt,
                            archivedRecords: movedCount
                        )
                    }
                )
                let payload = try record.storedPayload()
                try await connection.query(
                    """
                    INSERT INTO \(unescaped: tables.history)
                        (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
                    VALUES (\(instanceID), \(record.storedStepID), \(RetryRecord.storedAttempt(retriesBefore: retries)), NULL,
                        \(RetryRecord.storedName), 'Retried', \(payload), NULL, NULL, \(unescaped: Self.nowMilliseconds))
                    """,
                    logger: logger
                )
                // Its records move to the archive (nothing is deleted); compensation records stay, so
                // that a retried run that fails again does not run those compensations twice.
                try await connection.query(
                    """
                    WITH moved AS (
                        DELETE FROM \(unescaped: tables.history)
                        WHERE instance_id = \(instanceID) AND step_id = \(step) AND kind IN ('ActivityFailed', 'AttemptFailed')
                        RETURNING *
                    )
                    INSERT INTO \(unescaped: tables.archive)
                        (sequence, instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at, run_generation)
                    SELECT sequence, instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at,
                           \(Int64(instance.runNumber))
                    FROM moved
                    """,
                    logger: logger
                )
                let updated = try await connection.query(
                    """
                    UPDATE \(unescaped: tables.instances)
                    -- An instance on a queue goes back to it, to be admitted within its limits again.
                    SET status = CASE WHEN queue_name IS NULL THEN 'running' ELSE 'queued' END, error = NULL, output = NULL, ready_at = NULL,
                        lease_owner = NULL, lease_expires_at = NULL,
                        cancel_requested = false, wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds),
                        -- Its queue timeout counts again from now.
                        queue_deadline_at = \(unescaped: Self.nowMilliseconds) + queue_timeout_ms,
                        dequeue_at = CASE WHEN queue_name IS NOT NULL
                            THEN LEAST(\(unescaped: Self.nowMilliseconds) + queue_timeout_ms, deadline_at) END
                    WHERE instance_id = \(instanceID)
                    RETURNING \(unescaped: Self.instanceColumns)
                    """,
                    logger: logger
                )
                for try await row in updated { return .retried(try Self.instance(from: row).instance, step: step) }
                return .notFound
            }
        }
        if case .retried = outcome {
            wakeUps.notify()
            notifier.post(.ready)
        }
        return outcome
    }

    @_spi(EddaStores) public func cancellationRequests(among instanceIDs: [String]) async throws -> Set<String> {
        guard !instanceIDs.isEmpty else { return [] }
        return try await perform("read cancellation requests") { [self] in
            var requested: Set<String> = []
            let rows = try await client.query(
                "SELECT instance_id FROM \(unescaped: tables.instances) WHERE cancel_requested AND instance_id = ANY(\(instanceIDs))",
                logger: logger
            )
            for try await id in rows.decode(String.self) { requested.insert(id) }
            return requested
        }
    }

    @_spi(EddaStores) public func nextReadyAt(after: Date, workflowNames: [String]) async throws -> Date? {
        guard !workflowNames.isEmpty else { return nil }
        return try await perform("find the next deadline") { [self] in
            let rows = try await client.query(
                """
                SELECT min(next) FROM (
                    (SELECT ready_at AS next FROM \(unescaped: tables.instances)
                     WHERE status IN ('running', 'compensating') AND ready_at IS NOT NULL AND ready_at > \(after.millisecondsSince1970)
                        AND lease_owner IS NULL AND workflow_name = ANY(\(workflowNames))
                     ORDER BY ready_at LIMIT 1)
                    UNION ALL
                    -- The next time a queued instance leaves the line unadmitted.
                    (SELECT dequeue_at FROM \(unescaped: tables.instances)
                     WHERE status = 'queued' AND dequeue_at IS NOT NULL AND dequeue_at > \(after.millisecondsSince1970)
                        AND workflow_name = ANY(\(workflowNames))
                     ORDER BY dequeue_at LIMIT 1)
                ) AS nexts
                """,
                logger: logger
            )
            for try await next in rows.decode(Int64?.self) { return next.map(Date.init(storedMilliseconds:)) }
            return nil
        }
    }

    @_spi(EddaStores) public func waitingCount(at now: Date) async throws -> Int {
        try await perform("count waiting instances") { [self] in
            let rows = try await client.query(
                """
                SELECT count(*) FROM \(unescaped: tables.instances)
                WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NOT NULL
                    AND ready_at > \(now.millisecondsSince1970)
                """,
                logger: logger
            )
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    @_spi(EddaStores) public func serverNow() async throws -> Date? {
        try await perform("read the server's clock") { [self] in
            var now: Int64 = 0
            for try await value in try await lifeline.query("SELECT \(unescaped: Self.nowMilliseconds)", logger: logger).decode(Int64.self) {
                now = value
            }
            return Date(storedMilliseconds: now)
        }
    }

    @_spi(EddaStores) public func renew(_ leases: [Lease], for duration: Duration) async throws -> Set<String> {
        guard let owner = leases.first?.owner else { return [] }
        // In the order of their IDs, as a write batch locks the instances it completes.
        let leases = leases.sorted { $0.instanceID < $1.instanceID }
        let ids = leases.map(\.instanceID)
        let tokens = leases.map(\.token)
        // On the lifeline, and given up once the leases could have lapsed (the worker's lapse check
        // stops their runs by then anyway: a slow renewal that still lands in time keeps them going).
        // After a renewal on the lifeline failed (its connection lost, half-open, or busy with a
        // query given up), the next goes through the pool, and the one after tries the lifeline again.
        let onLifeline = !lifelineFailed.load(ordering: .relaxed)
        let pool = onLifeline ? lifeline : client
        lifelineFailed.store(onLifeline, ordering: .relaxed)
        let renewed = try await perform("renew leases", timeout: min(configuration.queryTimeout, duration)) { [self] in
            let rows = try await pool.query(
                """
                UPDATE \(unescaped: tables.instances) AS w
                SET lease_expires_at = \(unescaped: Self.nowMilliseconds) + \(duration.wholeMilliseconds)::bigint
                FROM unnest(\(ids)::text[], \(tokens)::bigint[]) AS held(instance_id, token)
                WHERE w.instance_id = held.instance_id AND w.lease_token = held.token AND w.lease_owner = \(owner)
                RETURNING w.instance_id
                """,
                logger: logger
            )
            var renewed: Set<String> = []
            for try await id in rows.decode(String.self) { renewed.insert(id) }
            if onLifeline { lifelineFailed.store(false, ordering: .relaxed) }
            return renewed
        }
        return Set(ids).subtracting(renewed)
    }

    @_spi(EddaStores) public func release(_ lease: Lease, readyAt: Date?) async throws {
        try await perform("release a lease") { [self] in
            let updated = try await client.query(
                """
                UPDATE \(unescaped: tables.instances)
                SET lease_owner = NULL, lease_expires_at = NULL,
                    -- A cancellation asked for meanwhile is run at once, not at the wait's end.
                    -- Ready at the instance's deadline if that comes first.
                    ready_at = CASE WHEN cancel_requested OR wake_pending OR \(readyAt?.millisecondsSince1970)::bigint IS NULL THEN NULL
                        ELSE LEAST(\(readyAt?.millisecondsSince1970)::bigint, deadline_at) END,
                    wake_pending = false, updated_at = \(unescaped: Self.nowMilliseconds)
                WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                RETURNING instance_id
                """,
                logger: logger
            )
            try await Self.expectRow(updated, lease)
        }
        wakeUps.notify()
        notifier.post(.ready)
    }
}
