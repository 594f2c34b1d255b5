@_spi(EddaStores) public import Edda
import Foundation
public import Logging
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// The store for many workers on many machines: one PostgreSQL database, through PostgresNIO.
///
/// ```swift
/// let store = try PostgresStore(url: "postgres://edda:secret@db.internal:5432/orders")
/// let app = EddaApp(store: store, serviceName: "order-service")
/// try await ServiceGroup(services: [store, app], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
///
/// The store is a `Service`: it runs its connection pool (a `PostgresClient`) and brings the schema
/// up to date when it starts, and every operation waits for that. ``EddaApp/run(_:)`` runs it for
/// you; in a `ServiceGroup`, list it before the app so that it stops after the app.
///
/// Workers wake each other through LISTEN/NOTIFY (on a channel named after the schema): a new ready
/// instance wakes every worker's claim loop, and a finished one every `result()` waiting elsewhere.
/// Notifications are coalesced: completions travel in the statement that records them, the rest
/// are sent by a background task; workers poll as well, so a lost notification only costs latency.
///
/// Runs' writes — steps' records, new instances, completions — go through a connection of their
/// own (``Configuration-swift.struct/writeConnections``), where concurrent runs share one prepared
/// statement and one commit (group commit, as on SQLite). Reads and `ctx.transaction` bodies use
/// the pool (``client``); claims and lease renewals a connection of their own.
///
/// Every worker claims ready instances with `FOR UPDATE SKIP LOCKED`, in batches, and holds each
/// under a lease that it renews (``EddaApp/Configuration-swift.struct/leaseDuration``). A worker that
/// dies stops renewing; its instances become claimable when their leases lapse. Every write of a run
/// carries its lease and checks it in the same statement (locking the instance's row `FOR KEY SHARE`,
/// which a claim's `FOR UPDATE` waits for, so a claim cannot slip between the check and the write): a
/// worker that lost its lease writes nothing. Lease times use the database server's clock, so
/// workers' clocks need not agree for leases; a release's `readyAt` is the worker's time.
public final class PostgresStore: Store, Service {
    /// The connection pool. Run by ``run()``.
    public let client: PostgresClient
    /// A pool of one connection of its own for a worker's lifeline — lease renewals and claims — so
    /// that they never queue behind step traffic
    /// (transactional steps hold a pooled connection for their whole body). Connects on first use:
    /// a store without a worker (the CLI, the viewer) never opens it.
    let lifeline: PostgresClient
    /// The write path's own connections (``Configuration-swift.struct/writeConnections``, always
    /// open): every step's record, every new instance and every finish goes through them, in
    /// batches. Always open, so a release arms no idle timer: PostgresNIO's pool arms one (and a
    /// keep-alive timer) each time a connection it may close goes idle, which cost as much client
    /// CPU as the statement itself.
    let writers: PostgresClient
    /// The last renewal sent on the lifeline failed (or went through the pool instead).
    let lifelineFailed = Atomic(false)
    public let configuration: Configuration
    @_spi(EddaStores) public let wakeUps = WakeUpSignal()
    @_spi(EddaStores) public let outcomes = OutcomeSignal()
    @_spi(EddaStores) public let cancellations = WakeUpSignal()
    /// Wakes outbox relays: a step committed events here, or another process said so.
    let outboxSignal = WakeUpSignal()
    let notifier = Notifier()
    /// Group commit: concurrent writes (records, new instances, completions) share one statement
    /// and its commit, one batch per write connection at a time, timed as
    /// `edda_commit_duration_seconds{backend="postgres"}` through the `MetricsSystem` bootstrapped
    /// when the store is created. See `PostgresStore+WriteBatch.swift`.
    let writes: Batcher<PendingWrite, WriteOutcome>
    /// The write batch's statement with its tables qualified, for connections without Edda's
    /// search path.
    let qualifiedWriteBatch: String
    let logger: Logger
    let tables: Tables
    let readiness = Readiness()
    /// Fails statements that never answer (see ``QueryWatchdog``).
    let watchdog: QueryWatchdog
    private let started = Atomic(false)

    /// Creates a store; nothing connects until ``run()`` runs.
    ///
    /// - Throws: ``StoreError`` when the schema name is not a plain identifier.
    public init(configuration: Configuration, logger: Logger = Logger(label: "edda.postgres")) throws {
        guard configuration.maximumConnections >= 2 else {
            throw StoreError(
                .database,
                "A PostgresStore needs at least 2 connections (maximumConnections is \(configuration.maximumConnections)): "
                    + "one listens for other workers' notifications all the time."
            )
        }
        self.configuration = configuration
        self.logger = logger
        self.tables = try Tables(schema: configuration.schema)
        self.watchdog = QueryWatchdog(timeout: configuration.queryTimeout)
        let client = configuration.clientWithSessionSettings
        self.client = PostgresClient(configuration: client, backgroundLogger: logger)
        var lifeline = client
        lifeline.options.minimumConnections = 0
        lifeline.options.maximumConnections = 1
        self.lifeline = PostgresClient(configuration: lifeline, backgroundLogger: logger)
        var writers = client
        if configuration.sendsSessionSettings {
            // Only Edda's statements run on these: they find its tables through the search path,
            // and the write batch is planned once per connection (see WriteBatchStatement).
            writers.options.additionalStartupParameters += [
                ("search_path", "\"\(configuration.schema)\""), ("plan_cache_mode", "force_generic_plan"),
            ]
        }
        writers.options.minimumConnections = configuration.writeConnections
        writers.options.maximumConnections = configuration.writeConnections
        self.writers = PostgresClient(configuration: writers, backgroundLogger: logger)
        self.qualifiedWriteBatch = WriteBatchStatement.qualified(by: tables)
        self.writes = Batcher(
            batchDuration: EngineMetrics.commitDuration(backend: "postgres"), maxConcurrentBatches: configuration.writeConnections
        )
    }

    /// Creates a store from a `postgres://user:password@host:port/database?schema=name` URL.
    public convenience init(url: String, logger: Logger = Logger(label: "edda.postgres")) throws {
        try self.init(configuration: Configuration(url: url), logger: logger)
    }

    /// Runs the connection pool and migrates the schema, until graceful shutdown or cancellation.
    ///
    /// Calling it again while it runs (an app's ``EddaApp/run(_:)`` and your own `ServiceGroup` both
    /// running the store, say) does not start a second pool: the second call waits for graceful
    /// shutdown or cancellation.
    public func run() async throws {
        guard started.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            try? await gracefulShutdown()
            return
        }
        readiness.markStarting()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // The pool runs before the first query (PostgresNIO warns of a lease taken before its run()).
            let (poolStarting, poolStarted) = AsyncStream.makeStream(of: Never.self)
            group.addTask {
                await cancelWhenGracefulShutdown {
                    poolStarted.finish()
                    await self.client.run()
                }
            }
            for await _ in poolStarting {}
            group.addTask {
                await cancelWhenGracefulShutdown { await self.lifeline.run() }
            }
            group.addTask {
                await cancelWhenGracefulShutdown { await self.writers.run() }
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    await self.watchdog.watch(every: min(self.configuration.queryTimeout / 4, .milliseconds(250)))
                }
            }
            do {
                try await migrateWithinStartupTimeout()
                group.addTask {
                    await cancelWhenGracefulShutdown { await self.listenLoop() }
                }
                group.addTask {
                    await cancelWhenGracefulShutdown { await self.notifier.sendLoop(store: self) }
                }
                readiness.open(nil)
                logger.debug("postgres store ready", metadata: ["edda.postgres.schema": "\(configuration.schema)"])
            } catch {
                readiness.open(error)
                group.cancelAll()
                throw error
            }
            try await group.waitForAll()
        }
        readiness.open(StoreError(.database, "The PostgreSQL store has stopped; run it (it is a Service) to use it."))
    }

    /// Returns once the store is running and its schema is up to date; throws if migrating failed
    /// or the store stopped.
    public func ready() async throws {
        try await readiness.wait(logger: logger)
    }

    // MARK: - Writing

    @_spi(EddaStores) public func createInstance(_ instance: NewInstance, leasedTo lease: LeaseRequest?) async throws -> CreateInstanceOutcome {
        if let placement = instance.placement { return try await createQueued(instance, placement) }
        let outcome: WriteOutcome
        // An instance with timeouts takes the statement of its own, which sets its deadlines; the
        // batch stays as narrow as the hot path needs.
        if instance.parentInstanceID == nil, instance.timeouts == .none {
            try await readiness.wait(logger: logger)
            outcome = try await writes.submit(.create(instance, lease)) { writes in await self.write(writes) }
        } else {
            outcome = try await createOne(instance, leasedTo: lease)
        }
        switch outcome {
        case .created(let createdAt, let cancelRequested, let deadline):
            let at = Date(timeIntervalSince1970: Double(createdAt) / 1000)
            var created = WorkflowInstance(
                instanceID: instance.instanceID, workflowName: instance.workflowName, serviceName: instance.serviceName,
                status: .running, input: instance.input, createdAt: at, updatedAt: at, leaseOwner: lease?.owner,
                cancelRequested: cancelRequested, parentInstanceID: instance.parentInstanceID, traceContext: instance.traceContext,
                lastClaimedAt: lease == nil ? nil : at
            )
            created.applicationVersion = instance.applicationVersion
            created.deadline = deadline.deadlineAt.map(Date.init(storedMilliseconds:))
            created.workflowDeadline = deadline.workflowDeadlineAt.map(Date.init(storedMilliseconds:))
            created.workflowTimeout = instance.timeouts.workflow
            created.runTimeout = instance.timeouts.run
            return .created(created, lease: lease.map { Lease(instanceID: instance.instanceID, owner: $0.owner, token: 1) })
        case .exists, .written:
            guard let existing = try await self.instance(instance.instanceID) else {
                throw StoreError(.database, "Instance \(instance.instanceID) vanished while it was being created.")
            }
            return .existing(existing)
        }
    }

    /// Inserts one instance in a statement of its own (a child's reads its parent's state).
    func createOne(_ instance: NewInstance, leasedTo lease: LeaseRequest?) async throws -> WriteOutcome {
        let outcome = try await perform("create an instance") { [self] () -> WriteOutcome in
            let owner = lease?.owner
            let duration = lease.map { $0.duration.wholeMilliseconds }
            let (workflowTimeout, runTimeout) = (instance.timeouts.workflow?.milliseconds, instance.timeouts.run?.milliseconds)
            let inserted = try await writers.query(
                """
                WITH parent AS (
                    -- A child of a parent asked to cancel (or already finished) is born cancel-requested:
                    -- the parent's run may not have heard of it yet. FOR SHARE waits for a cancellation
                    -- of the parent in progress and reads what it wrote; one that comes later waits for
                    -- this insert, and its cascade (a later statement) finds the child.
                    SELECT cancel_requested OR status NOT IN ('running', 'compensating') AS stopping, deadline_at
                    FROM \(unescaped: tables.instances) WHERE instance_id = \(instance.parentInstanceID)
                    FOR SHARE
                ), deadlines AS (
                    -- On the server's clock: the workflow's (its own, or its parent's when earlier), then
                    -- the earliest. LEAST skips NULLs: no timeout, no parent deadline.
                    SELECT LEAST(\(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint, (SELECT deadline_at FROM parent)) AS workflow
                )
                INSERT INTO \(unescaped: tables.instances)
                    (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token, lease_expires_at, created_at, updated_at,
                     parent_instance_id, trace_context, claimed_at, cancel_requested, workflow_timeout_ms, run_timeout_ms, workflow_deadline_at,
                     deadline_at, app_version)
                VALUES (\(instance.instanceID), \(instance.workflowName), \(instance.serviceName), 'running', \(instance.input.json),
                        \(owner), \(owner == nil ? 0 : 1), \(unescaped: Self.nowMilliseconds) + \(duration)::bigint,
                        \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds), \(instance.parentInstanceID),
                        \(instance.storedTraceContext), CASE WHEN \(owner)::text IS NULL THEN NULL ELSE \(unescaped: Self.nowMilliseconds) END,
                        coalesce((SELECT stopping FROM parent), false), \(workflowTimeout)::bigint, \(runTimeout)::bigint,
                        (SELECT workflow FROM deadlines),
                        LEAST((SELECT workflow FROM deadlines), \(unescaped: Self.nowMilliseconds) + \(runTimeout)::bigint),
                        \(instance.applicationVersion))
                ON CONFLICT (instance_id) DO NOTHING
                RETURNING created_at, cancel_requested, deadline_at, workflow_deadline_at
                """,
                logger: logger
            )
            for try await (createdAt, cancelRequested, deadlineAt, workflowDeadlineAt) in inserted.decode((Int64, Bool, Int64?, Int64?).self) {
                return .created(
                    at: createdAt, cancelRequested: cancelRequested,
                    deadline: StoredDeadline(deadlineAt: deadlineAt, workflowDeadlineAt: workflowDeadlineAt)
                )
            }
            return .exists
        }
        if case .created = outcome, lease == nil {
            wakeUps.notify()
            notifier.post(.ready)
        }
        return outcome
    }

    @_spi(EddaStores) public func append(_ event: HistoryEvent, lease: Lease) async throws {
        try await readiness.wait(logger: logger)
        _ = try await writes.submit(.append(event, lease)) { writes in await self.write(writes) }
    }

    /// The statement that appends `event` if `lease` still holds its instance (locking the row
    /// `FOR KEY SHARE` until commit), returning a row only then.
    func fencedInsertion(
        _ event: HistoryEvent, _ record: (attempt: Int64, error: String?, retry: String?), lease: Lease
    ) -> PostgresQuery {
        """
        INSERT INTO \(unescaped: tables.history)
            (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
        SELECT \(event.instanceID)::text, \(event.stepID)::text, \(record.attempt)::bigint, \(event.position.map(Int64.init))::bigint,
               \(event.name)::text, \(event.kind.rawValue)::text, \(event.payload?.json)::text, \(record.error)::text,
               \(record.retry)::text, \(unescaped: Self.nowMilliseconds)
        WHERE EXISTS (
            SELECT 1 FROM \(unescaped: tables.instances)
            WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
            FOR KEY SHARE
        )
        RETURNING sequence
        """
    }

    /// Which of `leases` are still held.
    func heldLeases(_ leases: [Lease]) async throws -> Set<Lease> {
        let ids = leases.map(\.instanceID)
        let current = try await perform("check leases") { [self] () -> [String: (String?, Int64)] in
            var current: [String: (String?, Int64)] = [:]
            let rows = try await client.query(
                "SELECT instance_id, lease_owner, lease_token FROM \(unescaped: tables.instances) WHERE instance_id = ANY(\(ids))",
                logger: logger
            )
            for try await (id, owner, token) in rows.decode((String, String?, Int64).self) { current[id] = (owner, token) }
            return current
        }
        return Set(leases.filter { lease in current[lease.instanceID].map { $0.0 == lease.owner && $0.1 == lease.token } ?? false })
    }

    @_spi(EddaStores) public func continueAsNew(lease: Lease, input: JSONPayload) async throws -> Lease {
        try await perform("continue an instance as new") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                let updated = try await connection.query(
                    """
                    UPDATE \(unescaped: tables.instances)
                    SET input = \(input.json), run_generation = run_generation + 1, lease_token = lease_token + 1,
                        updated_at = \(unescaped: Self.nowMilliseconds),
                        -- The next run's deadline: its start plus the run timeout, unless the workflow's comes first.
                        deadline_at = CASE WHEN run_timeout_ms IS NULL THEN deadline_at
                            ELSE LEAST(\(unescaped: Self.nowMilliseconds) + run_timeout_ms, workflow_deadline_at) END
                    WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                        AND status = 'running'
                    RETURNING run_generation
                    """,
                    logger: logger
                )
                var finishedRun: Int64?
                for try await generation in updated.decode(Int64.self) { finishedRun = generation - 1 }
                guard let finishedRun else { throw StoreError.leaseLost(lease) }
                try await connection.query("DELETE FROM \(unescaped: tables.waits) WHERE instance_id = \(lease.instanceID)", logger: logger)
                // The finished run's history, under its run number; the new run starts from nothing.
                try await connection.query(
                    """
                    WITH moved AS (
                        DELETE FROM \(unescaped: tables.history) WHERE instance_id = \(lease.instanceID) RETURNING *
                    )
                    INSERT INTO \(unescaped: tables.archive)
                        (sequence, instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at, run_generation)
                    SELECT sequence, instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at, \(finishedRun)
                    FROM moved
                    """,
                    logger: logger
                )
            }
        }
        var next = lease
        next.token += 1
        return next
    }

    @_spi(EddaStores) public func markCompensating(lease: Lease) async throws {
        try await fencedUpdate(
            "mark an instance compensating",
            set: "status = 'compensating', updated_at = \(Self.nowMilliseconds)",
            extraCondition: "status IN ('running', 'compensating')",
            lease: lease
        )
    }

    @_spi(EddaStores) public func finishInstance(lease: Lease, with outcome: InstanceOutcome, reportingTo parent: String?) async throws {
        if case .completed(let output) = outcome, parent == nil {
            // The common case is a batched write: a run that completed consumed every wait it
            // registered (a wait ends its run until it is satisfied). Messages sent to it that it
            // never asked for expire with their retention.
            try await readiness.wait(logger: logger)
            _ = try await writes.submit(.complete(lease, output)) { writes in await self.write(writes) }
            return
        }
        let (status, output, error) = try outcome.storedColumns()
        let finish: PostgresQuery
        do {
            // Failed or cancelled (it may have stopped at a wait), or a child: one statement drops its
            // waits and what was kept for it; a child's report goes into its parent's history if the
            // parent waits for it (running, not being cancelled: as a publish delivers), and is kept
            // for it otherwise; the parent is made ready (or, leased, marked).
            let report = try ChildReport.message(childID: lease.instanceID, outcome: outcome, parent: parent ?? "")
            let envelope = try JSONPayload.encode(report.envelope).json
            let delivery = MessageWait(
                instanceID: parent ?? "", stepID: "", position: nil, name: "", channel: report.channel, kind: .event, afterSequence: nil,
                deadline: nil
            ).deliveryRecord(sequence: nil, envelope: envelope)
            finish = """
                WITH finished AS (
                    UPDATE \(unescaped: tables.instances)
                    SET status = \(status), output = \(output), error = \(error), lease_owner = NULL, lease_expires_at = NULL,
                        ready_at = NULL, cancel_requested = false, updated_at = \(unescaped: Self.nowMilliseconds)
                    WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                        AND status IN ('running', 'compensating')
                    RETURNING instance_id
                ), waits AS (
                    DELETE FROM \(unescaped: tables.waits) WHERE instance_id IN (SELECT instance_id FROM finished)
                ), kept AS (
                    DELETE FROM \(unescaped: tables.messages) WHERE target_instance IN (SELECT instance_id FROM finished)
                ), parent AS (
                    UPDATE \(unescaped: tables.instances)
                    SET ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                        wake_pending = lease_owner IS NOT NULL, updated_at = \(unescaped: Self.nowMilliseconds)
                    WHERE instance_id = \(parent) AND status IN ('running', 'compensating') AND EXISTS (SELECT 1 FROM finished)
                    RETURNING instance_id, status, cancel_requested
                ), taken AS (
                    DELETE FROM \(unescaped: tables.waits)
                    WHERE instance_id IN (SELECT instance_id FROM parent WHERE status = 'running' AND NOT cancel_requested)
                        AND channel = \(report.channel) AND kind = 'event'
                    RETURNING instance_id, step_id, position, step_name
                ), delivered AS (
                    INSERT INTO \(unescaped: tables.history) (instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at)
                    SELECT instance_id, step_id, 0, position, step_name, \(delivery.kind.rawValue), \(delivery.payload?.json),
                           \(unescaped: Self.nowMilliseconds)
                    FROM taken
                ), report AS (
                    INSERT INTO \(unescaped: tables.messages) (channel, kind, target_instance, envelope, published_at, expires_at)
                    SELECT \(report.channel), 'event', instance_id, \(envelope), \(unescaped: Self.nowMilliseconds),
                           \(unescaped: Self.nowMilliseconds) + \(report.retention.wholeMilliseconds)::bigint
                    FROM parent WHERE NOT EXISTS (SELECT 1 FROM taken)
                )
                SELECT instance_id FROM finished
                """
        }
        try await perform("record an outcome") { [self] in
            try await Self.expectRow(try await writers.query(finish, logger: logger), lease)
        }
        outcomes.notify([lease.instanceID])
        notifier.post(.finished(lease.instanceID))
        if parent != nil {
            wakeUps.notify()
            notifier.post(.ready)
        }
    }

    // MARK: - Helpers

    /// An UPDATE of the leased instance, fenced by its lease.
    private func fencedUpdate(_ what: String, set: String, extraCondition: String, lease: Lease) async throws {
        try await perform(what) { [self] in
            let updated = try await client.query(
                """
                UPDATE \(unescaped: tables.instances) SET \(unescaped: set)
                WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                    AND \(unescaped: extraCondition)
                RETURNING instance_id
                """,
                logger: logger
            )
            try await Self.expectRow(updated, lease)
        }
    }

    /// Runs a database operation once the store is ready, wrapping driver errors in ``StoreError``.
    func perform<T: Sendable>(
        _ what: String, timeout: Duration? = nil, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await readiness.wait(logger: logger)
        do {
            return try await watchdog.run(what, timeout: timeout, body)
        } catch let error as StoreError {
            throw error
        } catch let misuse as ChannelModeError {
            throw misuse
        } catch {
            // What a transaction's own code threw (a lost lease, a misuse), once rolled back, as is.
            if let transaction = error as? PostgresTransactionError, transaction.rollbackError == nil,
               let inner = transaction.closureError, inner is StoreError || inner is ChannelModeError
            {
                throw inner
            }
            let server = ServerError(error)
            throw StoreError(.database, "PostgreSQL could not \(what).", cause: server)
        }
    }

    /// Throws ``StoreError/Code-swift.struct/leaseLost`` when a fenced statement returned no row.
    static func expectRow(_ rows: PostgresRowSequence, _ lease: Lease) async throws {
        for try await _ in rows { return }
        throw StoreError.leaseLost(lease)
    }

    /// The server's clock in milliseconds since 1970: lease times do not depend on workers' clocks.
    static let nowMilliseconds = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
}
