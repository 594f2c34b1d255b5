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
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        instance_id TEXT NOT NULL REFERENCES workflow_instances (instance_id),
                        step_id TEXT NOT NULL,
                        position INTEGER,
                        step_name TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        payload TEXT,
                        error TEXT,
                        retry_metadata TEXT,
                        recorded_at INTEGER NOT NULL
                    );
                    CREATE INDEX workflow_history_by_instance ON workflow_history (instance_id, sequence);
                    -- A step has one outcome; failed attempts before it are kept alongside.
                    CREATE UNIQUE INDEX workflow_history_one_outcome ON workflow_history (instance_id, step_id)
                        WHERE kind <> 'AttemptFailed';
                    """
            )
        }
        return migrator
    }
}
