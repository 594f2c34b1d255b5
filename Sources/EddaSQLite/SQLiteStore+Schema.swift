import GRDB

extension SQLiteStore {
    /// The schema, as versioned migrations. Applied when the store opens, in a write transaction,
    /// so two processes opening a new file at once do not both create it.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: instances and history") { db in
            try db.execute(
                sql: """
                    CREATE TABLE workflow_instances (
                        instance_id TEXT PRIMARY KEY NOT NULL,
                        workflow_name TEXT NOT NULL,
                        service_name TEXT NOT NULL,
                        status TEXT NOT NULL,
                        input TEXT NOT NULL,
                        output TEXT,
                        error TEXT,
                        lease_owner TEXT,
                        lease_expires_at INTEGER,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX workflow_instances_by_status ON workflow_instances (status, workflow_name, created_at);
                    CREATE INDEX workflow_instances_by_created ON workflow_instances (created_at);

                    CREATE TABLE workflow_history (
                        sequence INTEGER PRIMARY KEY,
                        instance_id TEXT NOT NULL REFERENCES workflow_instances (instance_id),
                        step_id TEXT NOT NULL,
                        attempt INTEGER NOT NULL DEFAULT 0,
                        position INTEGER,
                        step_name TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        payload TEXT,
                        error TEXT,
                        retry_metadata TEXT,
                        recorded_at INTEGER NOT NULL
                    );
                    -- One outcome (attempt 0) per step, one record per failed attempt; also the
                    -- index that reads an instance's history. `sequence` is the rowid: it only
                    -- grows, as no row is ever deleted.
                    CREATE UNIQUE INDEX workflow_history_by_step ON workflow_history (instance_id, step_id, attempt);
                    """
            )
        }
        migrator.registerMigration("v2: transactional outbox") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox_events (
                        sequence INTEGER PRIMARY KEY,
                        event_id TEXT NOT NULL,
                        instance_id TEXT,
                        step_id TEXT,
                        type TEXT NOT NULL,
                        source TEXT NOT NULL,
                        subject TEXT,
                        event_time REAL NOT NULL,
                        data_content_type TEXT,
                        data BLOB,
                        status TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at INTEGER NOT NULL,
                        last_error TEXT,
                        claimed_by TEXT,
                        claimed_at INTEGER,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL,
                        published_at INTEGER
                    );
                    -- What a relay claims: due pending events, oldest first; stale processing claims.
                    CREATE INDEX outbox_events_by_status ON outbox_events (status, next_attempt_at);
                    """
            )
        }
        return migrator
    }
}
