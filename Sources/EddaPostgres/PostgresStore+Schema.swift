@_spi(EddaStores) import Edda
import Logging
import NIOSSL
import PostgresNIO

extension PostgresStore {
    /// The schema, as numbered migrations. Applied in `run()` inside one transaction under an advisory
    /// lock, so workers starting together apply each once.
    static func migrations(_ t: Tables) -> [(version: Int, name: String, statements: [String])] {
        [
            (1, "instances and history, with leases", [
                """
                CREATE TABLE \(t.instances) (
                    instance_id TEXT PRIMARY KEY,
                    workflow_name TEXT NOT NULL,
                    service_name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    input TEXT NOT NULL,
                    output TEXT,
                    error TEXT,
                    lease_owner TEXT,
                    lease_token BIGINT NOT NULL DEFAULT 0,
                    lease_expires_at BIGINT,
                    ready_at BIGINT,
                    run_generation INTEGER NOT NULL DEFAULT 1,
                    parent_instance_id TEXT,
                    parent_step_id TEXT,
                    trace_context TEXT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX \(t.indexName("instances_by_status")) ON \(t.instances) (status, workflow_name, created_at)",
                "CREATE INDEX \(t.indexName("instances_by_created")) ON \(t.instances) (created_at DESC, instance_id DESC)",
                // What a claim scans: unfinished instances, oldest first.
                """
                CREATE INDEX \(t.indexName("instances_claimable")) ON \(t.instances) (created_at, instance_id)
                WHERE status IN ('running', 'compensating')
                """,
                """
                CREATE TABLE \(t.history) (
                    sequence BIGSERIAL PRIMARY KEY,
                    instance_id TEXT NOT NULL,
                    step_id TEXT NOT NULL,
                    attempt BIGINT NOT NULL DEFAULT 0,
                    position BIGINT,
                    step_name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    payload TEXT,
                    error TEXT,
                    retry_metadata TEXT,
                    recorded_at BIGINT NOT NULL
                )
                """,
                // One outcome (attempt 0) per step, one record per failed attempt; also the history index.
                "CREATE UNIQUE INDEX \(t.indexName("history_by_step")) ON \(t.history) (instance_id, step_id, attempt)",
            ]),
            (2, "transactional outbox", [
                """
                CREATE TABLE \(t.outbox) (
                    sequence BIGSERIAL PRIMARY KEY,
                    event_id TEXT NOT NULL,
                    instance_id TEXT,
                    step_id TEXT,
                    type TEXT NOT NULL,
                    source TEXT NOT NULL,
                    subject TEXT,
                    event_time DOUBLE PRECISION NOT NULL,
                    data_content_type TEXT,
                    data BYTEA,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at BIGINT NOT NULL,
                    last_error TEXT,
                    claimed_by TEXT,
                    claimed_at BIGINT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    published_at BIGINT
                )
                """,
                // What relays claim: due pending events, oldest first; and stale processing claims.
                "CREATE INDEX \(t.indexName("outbox_pending")) ON \(t.outbox) (next_attempt_at, sequence) WHERE status = 'pending'",
                "CREATE INDEX \(t.indexName("outbox_processing")) ON \(t.outbox) (claimed_at) WHERE status = 'processing'",
                "CREATE INDEX \(t.indexName("outbox_by_status")) ON \(t.outbox) (status, sequence)",
            ]),
            (3, "ready and waiting instances indexed apart", [
                // A claim takes due waiters by deadline and ready instances oldest first, each through
                // its own index: instances waiting on timers are never scanned before their time.
                "DROP INDEX \(t.schema).\(t.indexName("instances_claimable"))",
                """
                CREATE INDEX \(t.indexName("instances_ready")) ON \(t.instances) (created_at, instance_id)
                WHERE status IN ('running', 'compensating') AND ready_at IS NULL
                """,
                """
                CREATE INDEX \(t.indexName("instances_waiting")) ON \(t.instances) (ready_at)
                WHERE status IN ('running', 'compensating') AND ready_at IS NOT NULL
                """,
            ]),
            (4, "cancellation requests", [
                "ALTER TABLE \(t.instances) ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT false",
            ]),
            (5, "history of earlier runs (continue-as-new)", [
                """
                CREATE TABLE \(t.archive) (
                    sequence BIGINT NOT NULL,
                    instance_id TEXT NOT NULL,
                    step_id TEXT NOT NULL,
                    attempt BIGINT NOT NULL,
                    position BIGINT,
                    step_name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    payload TEXT,
                    error TEXT,
                    retry_metadata TEXT,
                    recorded_at BIGINT NOT NULL,
                    run_generation INTEGER NOT NULL
                )
                """,
                "CREATE INDEX \(t.indexName("history_archive_by_run")) ON \(t.archive) (instance_id, run_generation, sequence)",
            ]),
            (6, "events and channel messages", [
                // A delivery to an instance still leased (its run is ending as waiting) sets wake_pending,
                // so that its release makes it ready at once instead of at its deadline.
                "ALTER TABLE \(t.instances) ADD COLUMN wake_pending BOOLEAN NOT NULL DEFAULT false",
                "CREATE TABLE \(t.channelModes) (channel TEXT PRIMARY KEY, mode TEXT NOT NULL)",
                """
                CREATE TABLE \(t.messages) (
                    sequence BIGSERIAL PRIMARY KEY,
                    channel TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    target_instance TEXT,
                    envelope TEXT NOT NULL,
                    published_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX \(t.indexName("channel_messages_by_channel")) ON \(t.messages) (channel, kind, target_instance, sequence)",
                "CREATE INDEX \(t.indexName("channel_messages_by_expiry")) ON \(t.messages) (expires_at)",
                """
                CREATE INDEX \(t.indexName("channel_messages_by_target")) ON \(t.messages) (target_instance)
                WHERE target_instance IS NOT NULL
                """,
                """
                CREATE TABLE \(t.waits) (
                    instance_id TEXT NOT NULL,
                    step_id TEXT NOT NULL,
                    position BIGINT,
                    step_name TEXT NOT NULL,
                    channel TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    after_sequence BIGINT,
                    deadline BIGINT,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (instance_id, step_id)
                )
                """,
                "CREATE INDEX \(t.indexName("waits_by_channel")) ON \(t.waits) (channel, kind, created_at)",
            ]),
            (7, "children by parent (cancellation cascades)", [
                """
                CREATE INDEX \(t.indexName("instances_by_parent")) ON \(t.instances) (parent_instance_id)
                WHERE parent_instance_id IS NOT NULL
                """,
            ]),
            (8, "outbox events keep their extension attributes (traceparent…)", [
                "ALTER TABLE \(t.outbox) ADD COLUMN extensions TEXT",
            ]),
            (9, "when an instance's latest run began (the viewer's replayed vs executed)", [
                "ALTER TABLE \(t.instances) ADD COLUMN claimed_at BIGINT",
            ]),
            (10, "claims read no leased row", [
                // The ready index leaves leased rows out (as SQLite's does); lapsed leases are found
                // through an index of their own, by expiry, where a claim reads only the lapsed ones.
                "DROP INDEX \(t.schema).\(t.indexName("instances_ready"))",
                """
                CREATE INDEX \(t.indexName("instances_ready")) ON \(t.instances) (created_at, instance_id)
                WHERE status IN ('running', 'compensating') AND ready_at IS NULL AND lease_owner IS NULL
                """,
                """
                CREATE INDEX \(t.indexName("instances_leased")) ON \(t.instances) (lease_expires_at)
                WHERE status IN ('running', 'compensating') AND lease_owner IS NOT NULL
                """,
            ]),
            (11, "retention: done outbox events by age", [
                // What the pruner reads of the outbox (PostgresStore+Retention.swift), oldest first per
                // status. Finished instances are found through the status index, so that a finish writes
                // no index more (on SQLite one more cost W1 about a tenth of its throughput).
                """
                CREATE INDEX \(t.indexName("outbox_done")) ON \(t.outbox) (status, updated_at)
                WHERE status IN ('published', 'failed', 'invalid', 'expired')
                """,
            ]),
            (12, "retries recorded in history", [
                // A retry appends a 'Retried' record, which an earlier version cannot read: this
                // migration makes it refuse the schema instead. Retries count theirs through this index.
                "CREATE INDEX \(t.indexName("history_retries")) ON \(t.history) (instance_id) WHERE kind = 'Retried'",
            ]),
            (13, "queues", [
                // Each declared queue's limits, as the last app to register it wrote them.
                """
                CREATE TABLE \(t.queues) (
                    name TEXT PRIMARY KEY,
                    concurrency INTEGER NOT NULL,
                    worker_concurrency INTEGER NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                "ALTER TABLE \(t.instances) ADD COLUMN queue_name TEXT",
                "ALTER TABLE \(t.instances) ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE \(t.instances) ADD COLUMN deduplication_id TEXT",
                // What an admission reads: a queue's unfinished instances to count, its queued ones in
                // priority order. Instances on no queue are not in it.
                """
                CREATE INDEX \(t.indexName("instances_by_queue")) ON \(t.instances) (queue_name, status, priority, created_at, instance_id)
                WHERE queue_name IS NOT NULL
                """,
                // One holder per deduplication ID and queue while it is queued or running.
                """
                CREATE UNIQUE INDEX \(t.indexName("instances_deduplication")) ON \(t.instances) (queue_name, deduplication_id)
                WHERE deduplication_id IS NOT NULL AND status IN ('queued', 'running', 'compensating')
                """,
            ]),
        ]
    }

    /// Migrates, failing after ``Configuration-swift.struct/startupTimeout`` with the reason the
    /// server could not be reached (the pool alone only reports that it gave up).
    func migrateWithinStartupTimeout() async throws {
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await self.migrate()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: self.configuration.startupTimeout)
                    throw StartupTimedOut()
                }
                group.addTask {
                    // What waiting cannot heal — no such database or role, a wrong password — fails
                    // the start at once (the pool would retry it until the timeout).
                    if let error = await self.probeConnection(), Self.cannotHeal(error) { throw StartupCannotHeal(underlying: error) }
                    return false
                }
                defer { group.cancelAll() }
                while let migrated = try await group.next() {
                    if migrated { return }
                }
            }
        } catch let error as StartupCannotHeal {
            throw StoreError(
                .database,
                "PostgreSQL at \(target) refused '\(configuration.client.username)'"
                    + (configuration.client.database.map { " for database '\($0)'" } ?? "")
                    + ", and waiting will not change that. Check the URL's database name, user and password.",
                cause: ServerError(error.underlying)
            )
        } catch let error as StoreError where !isConnectionFailure(error.cause) {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let reason = await probeConnection()
            if reason == nil, configuration.probe != nil, error is StartupTimedOut {
                // The server answers: it is the schema's migration that took too long.
                throw StoreError(
                    .migrationFailed,
                    "PostgreSQL at \(target) answers, but bringing Edda's schema \(tables.schema) up to date took longer than the start-up "
                        + "timeout (\(configuration.startupTimeout)): another process may hold the migration lock, or an index is being "
                        + "built on a large table. Raise startupTimeout, or run `edda migrate` first.",
                    cause: error
                )
            }
            throw StoreError(
                .database,
                "Cannot reach PostgreSQL at \(target) as '\(configuration.client.username)'"
                    + (configuration.client.database.map { ", database '\($0)'" } ?? "")
                    + " within \(configuration.startupTimeout). Check that the server runs and accepts this user, and the URL.",
                cause: reason.map(ServerError.init) ?? (error as? StoreError)?.cause ?? error
            )
        }
    }

    /// The server, as messages name it.
    private var target: String {
        "\(configuration.client.host ?? configuration.client.unixSocketPath ?? "?"):\(configuration.client.port ?? 5432)"
    }

    /// Whether a failure to connect is the server's answer that no retry changes: the database or
    /// the role does not exist, or the password is wrong.
    static func cannotHeal(_ error: any Error) -> Bool {
        guard let state = ServerError(error).sqlState else { return false }
        return state == "3D000" || state == "28000" || state == "28P01"
    }

    struct StartupCannotHeal: Error {
        let underlying: any Error
    }

    /// Whether an error says the pool could not connect, rather than what a query did.
    private func isConnectionFailure(_ error: (any Error)?) -> Bool {
        guard let error else { return false }
        let underlying = (error as? ServerError)?.underlying ?? error
        if let error = underlying as? PSQLError { return error.serverInfo == nil }
        return "\(type(of: underlying))".contains("ConnectionPoolError")
    }

    /// Opens one connection of its own, to learn why the pool cannot: the error, or `nil` if it
    /// connects (or how to connect is not known: a configuration made from a `PostgresClient` one).
    private func probeConnection() async -> (any Error)? {
        guard let probe = configuration.probe else { return nil }
        do {
            let tls: PostgresConnection.Configuration.TLS
            switch probe.tls {
            case "disable": tls = .disable
            case "require", "verify-ca", "verify-full": tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            default: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            let connection = try await PostgresConnection.connect(
                configuration: PostgresConnection.Configuration(
                    host: probe.host, port: probe.port, username: configuration.client.username,
                    password: configuration.client.password, database: configuration.client.database, tls: tls
                ),
                id: 0,
                logger: logger
            )
            try? await connection.close()
            return nil
        } catch {
            return error
        }
    }

    /// Brings the schema up to date.
    func migrate() async throws {
        let t = tables
        let migrations = Self.migrations(t)
        guard configuration.migratesSchema else {
            let applied: Set<Int>
            do {
                applied = try await appliedVersions()
            } catch where ServerError(error).sqlState == "42P01" {
                applied = []   // no migrations table: not an Edda schema (yet)
            } catch {
                // Kept as the cause: a connection failure is still told apart by the caller.
                throw StoreError(.migrationFailed, "Cannot read the schema version of \(t.schema).", cause: ServerError(error))
            }
            let known = Set(migrations.map(\.version))
            if !applied.isSubset(of: known) { throw tooNew() }
            guard applied == known else {
                throw StoreError(
                    .migrationFailed,
                    applied.isEmpty
                        ? "The schema \(t.schema) holds no Edda tables. Nothing was changed; check the URL's database and schema, or run `edda migrate`."
                        : "The schema \(t.schema) is older than this version of Edda reads. Nothing was changed; run `edda migrate` (or start the app once)."
                )
            }
            return
        }
        let known = Set(migrations.map(\.version))
        if try await hasMigrationsTable() {
            if let applied = try? await appliedVersions() {
                // A newer Edda's schema is not this version's to run on.
                if !applied.isSubset(of: known) { throw tooNew() }
                // Up to date already: touch nothing, so a role with only read and write rights on a
                // schema a DBA prepared can start (CREATE … IF NOT EXISTS still needs CREATE rights).
                if known.isSubset(of: applied) { return }
            }
        } else if let tables = try await otherTables(), !tables.isEmpty {
            // No Edda tables, but others: another application's schema. Never add Edda's next to them.
            throw StoreError(
                .notAnEddaDatabase,
                "The schema \(t.schema) holds other tables (\(tables.prefix(3).joined(separator: ", "))\(tables.count > 3 ? ", …" : "")) "
                    + "and none of Edda's: it is another application's. Nothing was changed; give Edda a schema of its own "
                    + "(`?schema=edda` in the URL, or Configuration.schema)."
            )
        }
        do {
            try await client.withTransaction(logger: logger) { connection in
                // Waiting for another migrator, or building an index on a large table, may take longer
                // than Edda's statement timeout.
                try await connection.query("SET LOCAL statement_timeout = 0", logger: logger)
                // One migrator at a time, across every process on the database (the lock earlier
                // versions take too). Per schema, the seventy schemas of the test suite migrating at
                // once loaded the server until one-second leases lapsed.
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: logger)
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(t.schema)"), logger: logger)
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: "CREATE TABLE IF NOT EXISTS \(t.migrations) (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
                    ),
                    logger: logger
                )
                var applied: Set<Int> = []
                for try await version in try await connection.query(PostgresQuery(unsafeSQL: "SELECT version FROM \(t.migrations)"), logger: logger)
                    .decode(Int.self)
                {
                    applied.insert(version)
                }
                // Again under the lock: a newer Edda may have migrated since the check above.
                if !applied.isSubset(of: known) { throw tooNew() }
                // Every pending statement in one round trip, so the server-wide lock is held for the
                // server's work only: statement by statement, a busy client (the test suite starting
                // some fifty stores at once) held it for seconds per schema, and the last migrators
                // waited past their startup timeout.
                let pending = migrations.filter { !applied.contains($0.version) }
                if let block = Self.migrationBlock(pending, migrationsTable: t.migrations) {
                    try await connection.query(PostgresQuery(unsafeSQL: block), logger: logger)
                }
                for migration in pending {
                    logger.debug("applied migration", metadata: ["edda.postgres.migration": "\(migration.version): \(migration.name)"])
                }
            }
        } catch {
            let own = (error as? StoreError) ?? ((error as? PostgresTransactionError)?.closureError as? StoreError)
            if let own, own.code == .schemaTooNew { throw own }
            throw StoreError(.migrationFailed, "Cannot bring Edda's schema \(t.schema) up to date. Nothing was changed.", cause: ServerError(error))
        }
    }

    /// Whether the schema has Edda's migrations table (whether or not this role may read it).
    private func hasMigrationsTable() async throws -> Bool {
        var exists = false
        do {
            let rows = try await client.query("SELECT to_regclass(\(tables.migrations)) IS NOT NULL", logger: logger)
            for try await value in rows.decode(Bool.self) { exists = value }
        } catch {
            throw StoreError(.migrationFailed, "Cannot read the schema version of \(tables.schema).", cause: ServerError(error))
        }
        return exists
    }

    /// The tables in the schema (none when it does not exist), or `nil` if they cannot be listed.
    private func otherTables() async throws -> [String]? {
        var names: [String] = []
        do {
            let rows = try await client.query(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = \(configuration.schema) ORDER BY tablename LIMIT 10",
                logger: logger
            )
            for try await name in rows.decode(String.self) { names.append(name) }
        } catch {
            return nil
        }
        return names
    }

    private func tooNew() -> StoreError {
        StoreError(
            .schemaTooNew,
            "The schema \(tables.schema) was written by a newer version of Edda than this one. Nothing was changed; use that version."
        )
    }

    /// The versions recorded as applied; throws if the migrations table does not exist.
    private func appliedVersions() async throws -> Set<Int> {
        var applied: Set<Int> = []
        for try await version in try await client.query(PostgresQuery(unsafeSQL: "SELECT version FROM \(tables.migrations)"), logger: logger)
            .decode(Int.self)
        {
            applied.insert(version)
        }
        return applied
    }

    /// One `DO` block that runs `migrations`' statements in order, each as it is (`EXECUTE` of a
    /// dollar-quoted string), and records each in the migrations table; `nil` when there are none.
    static func migrationBlock(_ migrations: [(version: Int, name: String, statements: [String])], migrationsTable: String) -> String? {
        guard !migrations.isEmpty else { return nil }
        let quote = "$edda_statement$"
        var body = ""
        for migration in migrations {
            for statement in migration.statements {
                precondition(!statement.contains(quote), "a migration statement contains \(quote)")
                body += "EXECUTE \(quote)\(statement)\(quote);\n"
            }
            let name = migration.name.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''")
            body += "INSERT INTO \(migrationsTable) (version, name, applied_at) VALUES (\(migration.version), '\(name)', \(nowMilliseconds));\n"
        }
        return "DO $edda_migrations$\nBEGIN\n\(body)END\n$edda_migrations$"
    }

    struct StartupTimedOut: Error, CustomStringConvertible {
        var description: String { "no connection to the server within the startup timeout" }
    }

    /// The advisory lock key migrations take ("edda" in ASCII).
    static let migrationLockKey: Int64 = 0x6564_6461
}
