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
        migrator.registerMigration("v3: leases, runs, parents, trace context") { db in
            // Existing rows keep working: token 0 (bumped by the next claim), first run, no parent.
            try db.execute(
                sql: """
                    ALTER TABLE workflow_instances ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
                    -- When a released instance may be claimed again (the end of a wait); NULL: at once.
                    ALTER TABLE workflow_instances ADD COLUMN ready_at INTEGER;
                    -- Continue-as-new starts a new run of the same instance.
                    ALTER TABLE workflow_instances ADD COLUMN run_generation INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE workflow_instances ADD COLUMN parent_instance_id TEXT;
                    ALTER TABLE workflow_instances ADD COLUMN parent_step_id TEXT;
                    -- The W3C trace context of the caller that started the instance.
                    ALTER TABLE workflow_instances ADD COLUMN trace_context TEXT;
                    -- What a claim scans: unleased instances that are not finished, oldest first.
                    CREATE INDEX workflow_instances_claimable ON workflow_instances (created_at)
                        WHERE status IN ('running', 'compensating') AND lease_owner IS NULL;

                    -- Every append is fenced: it checks, in its own statement, that its instance
                    -- exists and is leased to the writer. That lookup replaces the foreign key's, which
                    -- would look the instance up a second time per record: the table is rebuilt without it.
                    CREATE TABLE workflow_history_v3 (
                        sequence INTEGER PRIMARY KEY,
                        instance_id TEXT NOT NULL,
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
                    INSERT INTO workflow_history_v3 SELECT * FROM workflow_history;
                    DROP TABLE workflow_history;
                    ALTER TABLE workflow_history_v3 RENAME TO workflow_history;
                    CREATE UNIQUE INDEX workflow_history_by_step ON workflow_history (instance_id, step_id, attempt);
                    """
            )
        }
        migrator.registerMigration("v4: ready and waiting instances indexed apart") { db in
            // A claim takes due waiters (by deadline) and ready instances (oldest first) through two
            // indexes, so that instances waiting on timers are never scanned before their time.
            try db.execute(
                sql: """
                    DROP INDEX workflow_instances_claimable;
                    CREATE INDEX workflow_instances_ready ON workflow_instances (created_at)
                        WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NULL;
                    CREATE INDEX workflow_instances_waiting ON workflow_instances (ready_at)
                        WHERE status IN ('running', 'compensating') AND lease_owner IS NULL AND ready_at IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v5: cancellation requests") { db in
            try db.execute(sql: "ALTER TABLE workflow_instances ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v6: history of earlier runs (continue-as-new)") { db in
            try db.execute(
                sql: """
                    CREATE TABLE workflow_history_archive (
                        sequence INTEGER NOT NULL,
                        instance_id TEXT NOT NULL,
                        step_id TEXT NOT NULL,
                        attempt INTEGER NOT NULL,
                        position INTEGER,
                        step_name TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        payload TEXT,
                        error TEXT,
                        retry_metadata TEXT,
                        recorded_at INTEGER NOT NULL,
                        run_generation INTEGER NOT NULL
                    );
                    CREATE INDEX workflow_history_archive_by_run ON workflow_history_archive (instance_id, run_generation, sequence);
                    """
            )
        }
        migrator.registerMigration("v7: events and channel messages") { db in
            try db.execute(
                sql: """
                    -- A delivery to an instance that is still leased (its run is ending as waiting) sets
                    -- wake_pending, so that its release makes it ready at once instead of at its deadline.
                    ALTER TABLE workflow_instances ADD COLUMN wake_pending INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE channel_modes (
                        channel TEXT PRIMARY KEY,
                        mode TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE channel_messages (
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        channel TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        target_instance TEXT,
                        envelope TEXT NOT NULL,
                        published_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL
                    );
                    CREATE INDEX channel_messages_by_channel ON channel_messages (channel, kind, target_instance, sequence);
                    CREATE INDEX channel_messages_by_expiry ON channel_messages (expires_at);
                    CREATE INDEX channel_messages_by_target ON channel_messages (target_instance) WHERE target_instance IS NOT NULL;
                    CREATE TABLE workflow_waits (
                        instance_id TEXT NOT NULL,
                        step_id TEXT NOT NULL,
                        position INTEGER,
                        step_name TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        after_sequence INTEGER,
                        deadline INTEGER,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (instance_id, step_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX workflow_waits_by_channel ON workflow_waits (channel, kind, created_at);
                    """
            )
        }
        migrator.registerMigration("v8: children by parent (cancellation cascades)") { db in
            try db.execute(
                sql: "CREATE INDEX workflow_instances_by_parent ON workflow_instances (parent_instance_id) WHERE parent_instance_id IS NOT NULL"
            )
        }
        migrator.registerMigration("v9: outbox events keep their extension attributes (traceparent…)") { db in
            try db.execute(sql: "ALTER TABLE outbox_events ADD COLUMN extensions TEXT")
        }
        migrator.registerMigration("v10: when an instance's latest run began (the viewer's replayed vs executed)") { db in
            try db.execute(sql: "ALTER TABLE workflow_instances ADD COLUMN claimed_at INTEGER")
        }
        migrator.registerMigration("v11: retention: done outbox events by age") { db in
            // What the pruner reads of the outbox (SQLiteStore+Retention.swift), oldest first per status.
            // Finished instances are found through the status index: one more index written at every
            // finish cost W1 about a tenth of its throughput.
            try db.execute(
                sql: """
                    CREATE INDEX outbox_events_done ON outbox_events (status, updated_at)
                        WHERE status IN ('published', 'failed', 'invalid', 'expired');
                    """
            )
        }
        migrator.registerMigration("v12: retries recorded in history") { db in
            // A retry appends a 'Retried' record (an earlier version cannot read that kind: this
            // migration makes it refuse the file instead). Retries count theirs through this index.
            try db.execute(sql: "CREATE INDEX workflow_history_retries ON workflow_history (instance_id) WHERE kind = 'Retried'")
        }
        migrator.registerMigration("v13: queues") { db in
            try db.execute(
                sql: """
                    -- Each declared queue's limits, as the last app to register it wrote them.
                    CREATE TABLE workflow_queues (
                        name TEXT PRIMARY KEY NOT NULL,
                        concurrency INTEGER NOT NULL,
                        worker_concurrency INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    ALTER TABLE workflow_instances ADD COLUMN queue_name TEXT;
                    ALTER TABLE workflow_instances ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE workflow_instances ADD COLUMN deduplication_id TEXT;
                    -- What an admission reads: a queue's unfinished instances to count, its queued ones in
                    -- priority order. Instances on no queue are not in it.
                    CREATE INDEX workflow_instances_by_queue ON workflow_instances (queue_name, status, priority, created_at)
                        WHERE queue_name IS NOT NULL;
                    -- One holder per deduplication ID and queue while it is queued or running.
                    CREATE UNIQUE INDEX workflow_instances_deduplication ON workflow_instances (queue_name, deduplication_id)
                        WHERE deduplication_id IS NOT NULL AND status IN ('queued', 'running', 'compensating');
                    """
            )
        }
        migrator.registerMigration("v14: queue rate limits and partitions") { db in
            try db.execute(
                sql: """
                    ALTER TABLE workflow_queues ADD COLUMN rate_limit INTEGER;
                    ALTER TABLE workflow_queues ADD COLUMN rate_period_ms INTEGER;
                    ALTER TABLE workflow_queues ADD COLUMN partitioned INTEGER NOT NULL DEFAULT 0;
                    -- When a claim last admitted the instance from its queue.
                    ALTER TABLE workflow_instances ADD COLUMN admitted_at INTEGER;
                    -- '' on a queue that is not partitioned (and on no queue): the limits count by equality.
                    ALTER TABLE workflow_instances ADD COLUMN partition_key TEXT NOT NULL DEFAULT '';
                    -- What an admission reads, per partition: its unfinished instances to count, its queued
                    -- ones in priority order, and (a skip scan) the partitions that have queued ones.
                    DROP INDEX workflow_instances_by_queue;
                    CREATE INDEX workflow_instances_by_queue ON workflow_instances (queue_name, status, partition_key, priority, created_at)
                        WHERE queue_name IS NOT NULL;
                    -- What a rate limit counts: a partition's admissions within its period.
                    CREATE INDEX workflow_instances_admitted ON workflow_instances (queue_name, partition_key, admitted_at)
                        WHERE queue_name IS NOT NULL AND admitted_at IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v15: schedules") { db in
            try db.execute(
                sql: """
                    -- Each schedule's definition and where its ticking stands; times in milliseconds since 1970,
                    -- tick lists as JSON arrays of them. Written by compare-and-set on revision.
                    CREATE TABLE workflow_schedules (
                        name TEXT PRIMARY KEY NOT NULL,
                        workflow_name TEXT NOT NULL,
                        expression TEXT NOT NULL,
                        time_zone TEXT NOT NULL,
                        input TEXT,
                        overlap TEXT NOT NULL,
                        catch_up_window INTEGER NOT NULL,
                        paused INTEGER NOT NULL DEFAULT 0,
                        next_tick INTEGER,
                        last_tick INTEGER,
                        last_instance_id TEXT,
                        buffered_ticks TEXT NOT NULL DEFAULT '[]',
                        requested_ticks TEXT NOT NULL DEFAULT '[]',
                        revision INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v16: deadlines (workflow and run timeouts)") { db in
            // Times on the store's clock, in milliseconds. A release makes an instance ready at the
            // earlier of its wait's end and deadline_at, so that the claims find it through
            // workflow_instances_waiting, as they find timers: no index of its own.
            try db.execute(
                sql: """
                    ALTER TABLE workflow_instances ADD COLUMN deadline_at INTEGER;
                    ALTER TABLE workflow_instances ADD COLUMN workflow_deadline_at INTEGER;
                    ALTER TABLE workflow_instances ADD COLUMN workflow_timeout_ms INTEGER;
                    ALTER TABLE workflow_instances ADD COLUMN run_timeout_ms INTEGER;
                    """
            )
        }
        migrator.registerMigration("v17: queue timeouts (queued instances taken out of line)") { db in
            // dequeue_at: when a queued instance leaves the line unadmitted — the earlier of its queue
            // deadline and its deadline, or the time its cancellation was asked for. Claims that admit
            // for its queue take those whose time has come first, through an index of queued rows only.
            try db.execute(
                sql: """
                    ALTER TABLE workflow_instances ADD COLUMN queue_timeout_ms INTEGER;
                    ALTER TABLE workflow_instances ADD COLUMN queue_deadline_at INTEGER;
                    ALTER TABLE workflow_instances ADD COLUMN dequeue_at INTEGER;
                    UPDATE workflow_instances SET dequeue_at = CASE WHEN cancel_requested THEN updated_at ELSE deadline_at END
                        WHERE status = 'queued';
                    CREATE INDEX workflow_instances_dequeue ON workflow_instances (dequeue_at)
                        WHERE status = 'queued' AND dequeue_at IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v18: schedules on a queue") { db in
            // The queue each tick's instance starts on (NULL: none), and its priority there.
            try db.execute(
                sql: """
                    ALTER TABLE workflow_schedules ADD COLUMN queue_name TEXT;
                    ALTER TABLE workflow_schedules ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
                    """
            )
        }
        migrator.registerMigration("v19: forks (an instance started from another's history)") { db in
            try db.execute(
                sql: """
                    ALTER TABLE workflow_instances ADD COLUMN forked_from TEXT;
                    ALTER TABLE workflow_instances ADD COLUMN forked_from_step TEXT;
                    CREATE INDEX workflow_instances_forks ON workflow_instances (forked_from) WHERE forked_from IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v20: application versions") { db in
            // The version of the app that started each instance (NULL: unversioned). Claims read it on
            // the row: one worker per file, whose indexes stay as they are.
            try db.execute(sql: "ALTER TABLE workflow_instances ADD COLUMN app_version TEXT")
        }
        return migrator
    }
}
