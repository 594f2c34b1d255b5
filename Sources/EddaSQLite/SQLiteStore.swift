@_spi(EddaStores) public import Edda
import Foundation
public import GRDB
public import Logging
import Synchronization

/// The embedded store: one SQLite file in WAL mode, through GRDB. Nothing to install or run.
///
/// ```swift
/// let store = try SQLiteStore(path: "workflows.sqlite")
/// let app = EddaApp(store: store, serviceName: "order-service")
/// ```
///
/// One process at a time runs workers on a file: ``attachWorker(_:)`` takes an exclusive lock on
/// `<path>-edda.lock` and a second process gets ``StoreError/Code-swift.struct/databaseInUse``.
/// Other processes may still read (the `edda` CLI's `list` and `show`) and create instances for the
/// owner to claim. Because the lock dies with its process, a restarted app knows every lease it
/// finds is orphaned and frees them all at once: there is no lock timeout to wait for.
///
/// The store runs the same claim, lease and fence path as a multi-worker backend: every claim bumps
/// the instance's lease token and every write checks it. Its leases never lapse (the process lock
/// does that job), so renewing one only checks it is still held.
///
/// Every commit is durable (`synchronous=FULL`) unless ``Configuration-swift.struct/durability`` says otherwise.
public final class SQLiteStore: Store {
    /// The database file's path, or `nil` for an in-memory store.
    public let path: String?
    /// The GRDB connection, for reading Edda's tables directly or for your own tables.
    public let writer: any DatabaseWriter
    /// Opened with ``init(readingAt:logger:)``: every write throws ``StoreError/Code-swift.struct/notWritable``.
    public let isReadOnly: Bool
    let configuration: Configuration
    let logger: Logger
    private let ownership = Mutex<Ownership?>(nil)
    private let committer: GroupCommitter
    let outboxSignal = WakeUpSignal()
    @_spi(EddaStores) public let wakeUps = WakeUpSignal()
    @_spi(EddaStores) public let outcomes = OutcomeSignal()
    @_spi(EddaStores) public let cancellations = WakeUpSignal()

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/migrationFailed`` or
    ///   ``StoreError/Code-swift.struct/database``.
    public init(path: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "edda.sqlite")) throws {
        self.path = path
        self.configuration = configuration
        self.logger = logger
        self.isReadOnly = false
        let deadline = ContinuousClock.now + configuration.busyTimeout
        let pool: DatabasePool
        do {
            pool = try Self.retryingWhileBusy(until: deadline) {
                let pool = try DatabasePool(path: path, configuration: Self.grdbConfiguration(configuration))
                // DatabasePool sets synchronous=NORMAL on its writer after prepareDatabase; set ours after opening.
                try pool.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA synchronous = \(configuration.durability.pragma)")
                }
                return pool
            }
        } catch {
            throw Self.failure("Cannot open the SQLite database at \(path).", path: path, error)
        }
        self.writer = pool
        self.committer = GroupCommitter(writer: pool)
        try Self.retryingWhileBusy(until: deadline) { try migrate() }
    }

    /// Two processes opening a new file at once race to switch it to WAL and create the schema;
    /// SQLite answers the loser `SQLITE_BUSY` without waiting on its busy timeout. Or the loser reads
    /// the list of applied migrations just before the winner commits one, and its own attempt at the
    /// same migration fails ("table … already exists", "duplicate column name"); being transactional,
    /// that attempt changed nothing, and the next one sees the migration applied. Try again until
    /// the timeout has passed.
    private static func retryingWhileBusy<T>(until deadline: ContinuousClock.Instant, _ body: () throws -> T) throws -> T {
        while true {
            do {
                return try body()
            } catch where isRetryableWhileOpening(error) && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    private static func isRetryableWhileOpening(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError {
            if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED { return true }
            let message = error.message ?? ""
            // Another process applied the same migration first (created the table, added the
            // column, dropped the index): open again, and find it applied.
            return error.resultCode == .SQLITE_ERROR
                && (message.contains("already exists") || message.contains("duplicate column name") || message.contains("no such index"))
        }
        if let error = error as? StoreError, let cause = error.cause {
            return isRetryableWhileOpening(cause)
        }
        return false
    }

    /// Opens the database at `path` for reading only: no migration, no write, not even to create the
    /// file — for tools (the `edda` CLI's `list` and `show`, a viewer) that look at a database a
    /// running worker owns. Every write throws ``StoreError/Code-swift.struct/notWritable``.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/database`` when there is no
    ///   database at `path`, or ``StoreError/Code-swift.struct/migrationFailed`` when its schema is
    ///   older or newer than this version of Edda reads (open it read-write once, or run `edda migrate`).
    public init(readingAt path: String, logger: Logger = Logger(label: "edda.sqlite")) throws {
        self.path = path
        self.configuration = Configuration()
        self.logger = logger
        self.isReadOnly = true
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw StoreError(.database, "No database at \(path). Pass the path the app uses.")
        }
        guard !isDirectory.boolValue else {
            throw StoreError(.database, "\(path) is a directory: pass the path of the database file in it.")
        }
        var grdb = Self.grdbConfiguration(configuration)
        grdb.readonly = true
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw Self.failure("Cannot open the SQLite database at \(path) for reading.", path: path, error)
        }
        let (isEdda, current, superseded): (Bool, Bool, Bool)
        do {
            (isEdda, current, superseded) = try pool.read { db in
                (try Self.isEddaDatabase(db), try Self.migrator.hasCompletedMigrations(db), try Self.migrator.hasBeenSuperseded(db))
            }
        } catch {
            throw Self.failure("Cannot read the SQLite database at \(path).", path: path, error)
        }
        guard isEdda else {
            throw StoreError(
                .notAnEddaDatabase,
                "\(path) is a SQLite database, but not an Edda one (it has other tables and none of Edda's). Nothing was changed; check the path."
            )
        }
        if superseded { throw Self.tooNew(path) }
        guard current else {
            throw StoreError(
                .migrationFailed,
                "The database at \(path) has an older schema than this version of Edda reads. Nothing was changed; "
                    + "run `edda migrate --database \(path)` (or start the app once) to bring it up to date."
            )
        }
        self.writer = pool
        self.committer = GroupCommitter(writer: pool)
    }

    /// Whether the database holds Edda's tables, or nothing at all (a new, empty file).
    static func isEddaDatabase(_ db: Database) throws -> Bool {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        return tables.isEmpty || tables.contains("workflow_instances")
    }

    /// Copies the database, consistent at one moment, into a new file at `path` — safe while
    /// workers write to it (SQLite's online backup, through GRDB). Copying the `.sqlite` file alone
    /// is not: recent commits may still be in its `-wal` file.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/database`` when `path`
    ///   exists (it is never overwritten) or cannot be written; nothing is left at `path` then.
    public func backup(to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.database, "\(path) exists; a backup never overwrites a file. Choose a new path.")
        }
        do {
            let destination = try DatabaseQueue(path: path)
            do {
                try writer.backup(to: destination)
                try destination.close()
            } catch {
                try? destination.close()
                throw error
            }
        } catch {
            for suffix in ["", "-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            throw Self.failure("Cannot back up \(self.path ?? "the database") to \(path).", path: path, error)
        }
    }

    /// A store in memory, gone when the store is: for tests and experiments.
    public static func inMemory(logger: Logger = Logger(label: "edda.sqlite")) throws -> SQLiteStore {
        try SQLiteStore(inMemoryWith: Configuration(), logger: logger)
    }

    private init(inMemoryWith configuration: Configuration, logger: Logger) throws {
        self.path = nil
        self.configuration = configuration
        self.logger = logger
        self.isReadOnly = false
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(configuration: Self.grdbConfiguration(configuration))
        } catch {
            throw StoreError(.database, "Cannot open an in-memory SQLite database.", cause: error)
        }
        self.writer = queue
        self.committer = GroupCommitter(writer: queue)
        try migrate()
    }

    static func grdbConfiguration(_ configuration: Configuration) -> GRDB.Configuration {
        var grdb = GRDB.Configuration()
        grdb.label = "edda"
        grdb.busyMode = .timeout(configuration.busyTimeout.seconds)
        grdb.foreignKeysEnabled = true
        if let kibibytes = configuration.pageCacheKiB {
            grdb.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = -\(kibibytes)") }
        }
        return grdb
    }

    private func migrate() throws {
        // A newer Edda's schema is not this version's to run on (its migrations could have changed
        // what a row means): refuse, before touching anything.
        if try writer.read({ db in try Self.migrator.hasBeenSuperseded(db) }) { throw Self.tooNew(path ?? "the in-memory database") }
        do {
            try Self.migrator.migrate(writer)
        } catch {
            throw StoreError(
                .migrationFailed,
                "Cannot bring the schema of \(path ?? "the in-memory database") up to date. Nothing was changed.",
                cause: error
            )
        }
    }

    static func tooNew(_ path: String) -> StoreError {
        StoreError(
            .schemaTooNew,
            "The database at \(path) was written by a newer version of Edda than this one. Nothing was changed; use that version."
        )
    }

    /// The `PRAGMA synchronous` value in force on the writing connection (2 = FULL, 1 = NORMAL).
    public func synchronousSetting() async throws -> Int {
        try await writer.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    // MARK: - Store

    /// `false`: the file's process lock proves every other owner dead, so a lease is held until released.
    @_spi(EddaStores) public var leasesLapse: Bool { false }

    @_spi(EddaStores) public func attachWorker(_ workerID: String) async throws {
        if isReadOnly {
            throw StoreError(.notWritable, "The database at \(path ?? "?") was opened for reading only; a worker cannot run on it.")
        }
        if let path {
            let lock = try ProcessLock(path: path + "-edda.lock")
            ownership.withLock { $0 = .file(lock) }
            logger.debug("took ownership of database", metadata: ["edda.sqlite.path": "\(path)", "edda.worker.id": "\(workerID)"])
        } else {
            // In memory, this object is the database: one worker at a time, as with a file's lock.
            try ownership.withLock { ownership in
                if case .memory(let owner) = ownership {
                    throw StoreError(
                        .databaseInUse,
                        "Worker \(owner) already runs on this in-memory store; one worker runs on a store at a time. "
                            + "Stop its app first, or give each app a store of its own."
                    )
                }
                ownership = .memory(workerID)
            }
        }
        // Whoever held a lease before is gone — the lock proves it — this worker's own ID included
        // (a fixed worker ID restarted after a crash): free every lease.
        do {
            try await write { db in
                try db.execute(sql: "UPDATE workflow_instances SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL")
            }
        } catch {
            ownership.withLock { $0 = nil }
            throw error
        }
    }

    @_spi(EddaStores) public func detachWorker(_ workerID: String) async throws {
        ownership.withLock { $0 = nil }
    }

    /// Who runs workers on this store: a process lock on a file, or a worker ID in memory.
    enum Ownership: Sendable {
        case file(ProcessLock)
        case memory(String)
    }

    @_spi(EddaStores) public func createInstance(_ instance: NewInstance, leasedTo lease: LeaseRequest?) async throws -> CreateInstanceOutcome {
        if let placement = instance.placement { return try await createQueued(instance, placement) }
        let outcome = try await write { db -> CreateInstanceOutcome in
            let now = Self.now()
            let deadline = try Self.storedDeadline(of: instance, now: now, db)
            // A child of a parent asked to cancel (or already finished) is born cancel-requested: the
            // parent's run may not have heard of it yet. One writer at a time: no cancel slips between.
            let inserted = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        INSERT INTO workflow_instances
                            (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token, created_at, updated_at,
                             parent_instance_id, trace_context, claimed_at, deadline_at, workflow_deadline_at, workflow_timeout_ms,
                             run_timeout_ms, app_version, cancel_requested)
                        VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce((
                            SELECT cancel_requested = 1 OR status NOT IN ('running', 'compensating')
                            FROM workflow_instances WHERE instance_id = ?
                        ), 0))
                        ON CONFLICT (instance_id) DO NOTHING
                        RETURNING *
                        """
                ),
                arguments: [
                    instance.instanceID, instance.workflowName, instance.serviceName, instance.input.json,
                    lease?.owner, lease == nil ? 0 : 1, now, now, instance.parentInstanceID, instance.storedTraceContext, lease == nil ? nil : now,
                    deadline.deadlineAt, deadline.workflowDeadlineAt, deadline.workflowTimeoutMilliseconds, deadline.runTimeoutMilliseconds,
                    instance.applicationVersion, instance.parentInstanceID,
                ]
            )
            if let inserted {
                return .created(
                    try Self.instance(from: inserted),
                    lease: lease.map { Lease(instanceID: instance.instanceID, owner: $0.owner, token: 1) }
                )
            }
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM workflow_instances WHERE instance_id = ?"), arguments: [instance.instanceID]) else {
                throw StoreError(.database, "Instance \(instance.instanceID) vanished while it was being created.")
            }
            return .existing(try Self.instance(from: row))
        }
        if case .created(_, nil) = outcome { wakeUps.notify() }
        return outcome
    }

    @_spi(EddaStores) public func append(_ event: HistoryEvent, lease: Lease) async throws {
        try await write(Self.recordInsertion(event, lease: lease))
    }

    @_spi(EddaStores) public func append(_ event: HistoryEvent, with transaction: StepTransaction, lease: Lease) async throws {
        let insertRecord = try Self.recordInsertion(event, lease: lease)
        let wroteEvents = try await write { db -> Bool in
            // A savepoint of the shared commit: if the user's work or the record fails (a lost lease
            // included), all of this step's writes roll back and the other writers in the batch are untouched.
            var events: [CloudEvent] = []
            try db.inSavepoint {
                try transaction.run(session: db) { nested in
                    try db.inSavepoint {
                        try nested()
                        return .commit
                    }
                }
                guard db.isInsideTransaction else {
                    throw StoreError(
                        .database,
                        "A ctx.transaction body of step '\(event.stepID)' ended the transaction (COMMIT or ROLLBACK). "
                            + "Nest ctx.transaction calls or use savepoints instead."
                    )
                }
                events = transaction.outboxEvents
                try Self.insertOutboxEvents(events, instanceID: event.instanceID, stepID: event.stepID, now: Self.now(), db)
                try insertRecord(db)
                return .commit
            }
            return !events.isEmpty
        }
        if wroteEvents { outboxSignal.notify() }
    }

    @_spi(EddaStores) public func continueAsNew(lease: Lease, input: JSONPayload) async throws -> Lease {
        try await write { db in
            try db.inSavepoint {
                try db.cachedStatement(
                    sql: """
                        UPDATE workflow_instances
                        SET input = ?1, run_generation = run_generation + 1, lease_token = lease_token + 1, updated_at = ?2,
                            -- The next run's deadline: its start plus the run timeout, unless the workflow's comes first.
                            deadline_at = CASE WHEN run_timeout_ms IS NULL THEN deadline_at
                                ELSE MIN(?2 + run_timeout_ms, COALESCE(workflow_deadline_at, ?2 + run_timeout_ms)) END
                        WHERE instance_id = ?3 AND lease_owner = ?4 AND lease_token = ?5 AND status = 'running'
                        """
                ).execute(arguments: [input.json, Self.now(), lease.instanceID, lease.owner, lease.token])
                try Self.checkFence(db, lease)
                // The finished run's history, under its run number; the new run starts from nothing.
                try db.cachedStatement(
                    sql: """
                        INSERT INTO workflow_history_archive
                        SELECT h.*, w.run_generation - 1 FROM workflow_history AS h
                        JOIN workflow_instances AS w ON w.instance_id = h.instance_id
                        WHERE h.instance_id = ?
                        """
                ).execute(arguments: [lease.instanceID])
                try db.cachedStatement(sql: "DELETE FROM workflow_history WHERE instance_id = ?").execute(arguments: [lease.instanceID])
                // Messages kept for the instance stay, for the new run.
                try db.cachedStatement(sql: "DELETE FROM workflow_waits WHERE instance_id = ?").execute(arguments: [lease.instanceID])
                return .commit
            }
        }
        var next = lease
        next.token += 1
        return next
    }

    @_spi(EddaStores) public func markCompensating(lease: Lease) async throws {
        try await write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE workflow_instances SET status = 'compensating', updated_at = ?
                    WHERE instance_id = ? AND lease_owner = ? AND lease_token = ? AND status IN ('running', 'compensating')
                    """
            ).execute(arguments: [Self.now(), lease.instanceID, lease.owner, lease.token])
            try Self.checkFence(db, lease)
        }
    }

    @_spi(EddaStores) public func finishInstance(lease: Lease, with outcome: InstanceOutcome, reportingTo parent: String?) async throws {
        // The parent comes from the row itself (RETURNING), in the same statement.
        let (status, output, error) = try outcome.storedColumns()
        let parentWoken = try await write { db -> Bool in
            var parentWoken = false
            try db.inSavepoint {
                let finished = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            UPDATE workflow_instances
                            SET status = ?, output = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL, ready_at = NULL,
                                cancel_requested = 0, updated_at = ?
                            WHERE instance_id = ? AND lease_owner = ? AND lease_token = ? AND status IN ('running', 'compensating')
                            RETURNING parent_instance_id
                            """
                    ),
                    arguments: [status, output, error, Self.now(), lease.instanceID, lease.owner, lease.token]
                )
                guard let finished else { throw StoreError.leaseLost(lease) }
                // What it waited for, and what was kept for it, go with it.
                try db.cachedStatement(sql: "DELETE FROM workflow_waits WHERE instance_id = ?").execute(arguments: [lease.instanceID])
                try db.cachedStatement(sql: "DELETE FROM channel_messages WHERE target_instance = ?").execute(arguments: [lease.instanceID])
                if let parent = finished["parent_instance_id"] as String? {
                    parentWoken = try Self.reportToParent(parent, child: lease.instanceID, outcome: outcome, db)
                }
                return .commit
            }
            return parentWoken
        }
        if parentWoken { wakeUps.notify() }
        outcomes.notify([lease.instanceID])
    }

    // MARK: - Helpers

    /// Throws ``StoreError/Code-swift.struct/leaseLost`` when the fenced statement just run changed
    /// nothing: the lease's owner and token no longer match (or the instance has finished).
    static func checkFence(_ db: Database, _ lease: Lease) throws {
        guard db.changesCount == 0 else { return }
        throw StoreError.leaseLost(lease)
    }

    /// The single statement that appends `event` if `lease` is still held, with its JSON encoded up front.
    static func recordInsertion(_ event: HistoryEvent, lease: Lease) throws -> @Sendable (Database) throws -> Void {
        let (attempt, error, retry) = try event.storedColumns()
        return { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO workflow_history
                        (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
                    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                    WHERE EXISTS (
                        SELECT 1 FROM workflow_instances WHERE instance_id = ?1 AND lease_token = ?11 AND lease_owner = ?12
                    )
                    """
            ).execute(arguments: [
                event.instanceID, event.stepID, attempt, event.position, event.name, event.kind.rawValue,
                event.payload?.json, error, retry, Self.now(), lease.token, lease.owner,
            ])
            try checkFence(db, lease)
        }
    }

    /// Every write goes through the group committer: concurrent writes share commits.
    func write<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        if isReadOnly {
            throw StoreError(.notWritable, "The database at \(path ?? "?") was opened for reading only (SQLiteStore(readingAt:)); nothing was written.")
        }
        do {
            return try await committer.perform(updates)
        } catch let error as StoreError {
            throw error
        } catch let misuse as ChannelModeError {
            throw misuse
        } catch {
            throw Self.failure("A write to the SQLite database at \(path ?? "(memory)") failed; nothing of it was committed.", path: path, error)
        }
    }

    func read<T: Sendable>(_ value: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.read(value)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.failure("A read from the SQLite database at \(path ?? "(memory)") failed.", path: path, error)
        }
    }

    static func now() -> Int64 {
        Date().millisecondsSince1970
    }

    static func date(_ milliseconds: Int64) -> Date {
        Date(storedMilliseconds: milliseconds)
    }

    static func instance(from row: Row) throws -> WorkflowInstance {
        WorkflowInstance(
            storedID: row["instance_id"], workflowName: row["workflow_name"], serviceName: row["service_name"], status: row["status"],
            input: row["input"], output: row["output"], error: row["error"], createdAt: row["created_at"], updatedAt: row["updated_at"],
            leaseOwner: row["lease_owner"], readyAt: row["ready_at"], cancelRequested: row["cancel_requested"] ?? false,
            parentInstanceID: row["parent_instance_id"], runNumber: row["run_generation"] ?? 1, traceContext: row["trace_context"],
            claimedAt: row["claimed_at"], queue: row["queue_name"], priority: row["priority"] ?? 0,
            partitionKey: row["partition_key"],
            deadline: StoredDeadline(
                deadlineAt: row["deadline_at"], workflowDeadlineAt: row["workflow_deadline_at"],
                workflowTimeoutMilliseconds: row["workflow_timeout_ms"], runTimeoutMilliseconds: row["run_timeout_ms"],
                queueDeadlineAt: row["queue_deadline_at"], queueTimeoutMilliseconds: row["queue_timeout_ms"]
            ),
            forkedFrom: row["forked_from"], forkedFromStep: row["forked_from_step"], applicationVersion: row["app_version"]
        )
    }

    /// The deadline columns of a new instance: its timeouts from `now`, or its parent's deadline
    /// when that is earlier.
    static func storedDeadline(of instance: NewInstance, now: Int64, _ db: Database) throws -> StoredDeadline {
        let parentDeadline = try instance.parentInstanceID.flatMap { parent in
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT deadline_at FROM workflow_instances WHERE instance_id = ?"), arguments: [parent])
        }
        return instance.timeouts.storedDeadline(now: now, parentDeadline: parentDeadline)
    }

    static func historyEvent(from row: Row) throws -> HistoryEvent {
        try HistoryEvent(
            storedSequence: row["sequence"], instanceID: row["instance_id"], stepID: row["step_id"], position: row["position"],
            name: row["step_name"], kind: row["kind"], payload: row["payload"], error: row["error"], retry: row["retry_metadata"],
            recordedAt: row["recorded_at"]
        )
    }
}
