import Edda
import Logging
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
        ]
    }

    /// Brings the schema up to date.
    func migrate() async throws {
        let t = tables
        let migrations = Self.migrations(t)
        // Up to date already: touch nothing, so a role with only read and write rights on a schema a
        // DBA prepared can start (CREATE … IF NOT EXISTS still needs CREATE rights).
        if let applied = try? await appliedVersions(), Set(migrations.map(\.version)).isSubset(of: applied) {
            return
        }
        do {
            try await client.withTransaction(logger: logger) { connection in
                // One migrator at a time, across every process on the database.
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
                for migration in migrations where !applied.contains(migration.version) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO \(unescaped: t.migrations) (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(unescaped: Self.nowMilliseconds))",
                        logger: logger
                    )
                    logger.debug("applied migration", metadata: ["edda.postgres.migration": "\(migration.version): \(migration.name)"])
                }
            }
        } catch {
            throw StoreError(.migrationFailed, "Cannot bring Edda's schema \(t.schema) up to date. Nothing was changed.", cause: ServerError(error))
        }
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

    /// The advisory lock key migrations take ("edda" in ASCII).
    static let migrationLockKey: Int64 = 0x6564_6461
}
