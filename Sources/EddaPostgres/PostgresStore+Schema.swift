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
            (14, "queue rate limits and partitions", [
                "ALTER TABLE \(t.queues) ADD COLUMN rate_limit INTEGER",
                "ALTER TABLE \(t.queues) ADD COLUMN rate_period_ms BIGINT",
                "ALTER TABLE \(t.queues) ADD COLUMN partitioned BOOLEAN NOT NULL DEFAULT false",
                // When a claim last admitted the instance from its queue (the server's clock).
                "ALTER TABLE \(t.instances) ADD COLUMN admitted_at BIGINT",
                // '' on a queue that is not partitioned (and on no queue): the limits count by equality.
                "ALTER TABLE \(t.instances) ADD COLUMN partition_key TEXT NOT NULL DEFAULT ''",
                // What an admission reads, per partition: its unfinished instances to count, its queued
                // ones in priority order, and (a skip scan) the partitions that have queued ones.
                "DROP INDEX \(t.schema).\(t.indexName("instances_by_queue"))",
                """
                CREATE INDEX \(t.indexName("instances_by_queue")) ON \(t.instances)
                    (queue_name, status, partition_key, priority, created_at, instance_id)
                WHERE queue_name IS NOT NULL
                """,
                // What a rate limit counts: a partition's admissions within its period.
                """
                CREATE INDEX \(t.indexName("instances_admitted")) ON \(t.instances) (queue_name, partition_key, admitted_at)
                WHERE queue_name IS NOT NULL AND admitted_at IS NOT NULL
                """,
            ]),
            (15, "schedules", [
                // Each schedule's definition and where its ticking stands; times in milliseconds since
                // 1970, tick lists as JSON arrays of them. Written by compare-and-set on revision.
                """
                CREATE TABLE \(t.schedules) (
                    name TEXT PRIMARY KEY,
                    workflow_name TEXT NOT NULL,
                    expression TEXT NOT NULL,
                    time_zone TEXT NOT NULL,
                    input TEXT,
                    overlap TEXT NOT NULL,
                    catch_up_window BIGINT NOT NULL,
                    paused BOOLEAN NOT NULL DEFAULT false,
                    next_tick BIGINT,
                    last_tick BIGINT,
                    last_instance_id TEXT,
                    buffered_ticks TEXT NOT NULL DEFAULT '[]',
                    requested_ticks TEXT NOT NULL DEFAULT '[]',
                    revision BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
            ]),
            (16, "deadlines: workflow and run timeouts", [
                // Times on the server's clock, in milliseconds. A release makes an instance ready at the
                // earlier of its wait's end and deadline_at, so that the claims find it through
                // instances_waiting, as they find timers: no index of its own.
                "ALTER TABLE \(t.instances) ADD COLUMN deadline_at BIGINT",
                "ALTER TABLE \(t.instances) ADD COLUMN workflow_deadline_at BIGINT",
                "ALTER TABLE \(t.instances) ADD COLUMN workflow_timeout_ms BIGINT",
                "ALTER TABLE \(t.instances) ADD COLUMN run_timeout_ms BIGINT",
            ]),
            (17, "queue timeouts: queued instances taken out of line", [
                // dequeue_at: when a queued instance leaves the line unadmitted — the earlier of its queue
                // deadline and its deadline, or the time its cancellation was asked for. Claims that admit
                // for its queue take those whose time has come first, through an index of queued rows only.
                "ALTER TABLE \(t.instances) ADD COLUMN queue_timeout_ms BIGINT",
                "ALTER TABLE \(t.instances) ADD COLUMN queue_deadline_at BIGINT",
                "ALTER TABLE \(t.instances) ADD COLUMN dequeue_at BIGINT",
                """
                UPDATE \(t.instances) SET dequeue_at = CASE WHEN cancel_requested THEN updated_at ELSE deadline_at END
                WHERE status = 'queued'
                """,
                """
                CREATE INDEX \(t.indexName("instances_dequeue")) ON \(t.instances) (dequeue_at)
                WHERE status = 'queued' AND dequeue_at IS NOT NULL
                """,
            ]),
            (18, "schedules on a queue", [
                // The queue each tick's instance starts on (NULL: none), and its priority there.
                "ALTER TABLE \(t.schedules) ADD COLUMN queue_name TEXT",
                "ALTER TABLE \(t.schedules) ADD COLUMN priority BIGINT NOT NULL DEFAULT 0",
            ]),
            (19, "forks: an instance started from another's history", [
                "ALTER TABLE \(t.instances) ADD COLUMN forked_from TEXT",
                "ALTER TABLE \(t.instances) ADD COLUMN forked_from_step TEXT",
                "CREATE INDEX \(t.indexName("instances_forks")) ON \(t.instances) (forked_from) WHERE forked_from IS NOT NULL",
            ]),
            (20, "application versions", [
                // The version of the app that started each instance (NULL: unversioned). A versioned
                // worker's claim takes ready, due and queued instances a version at a time through indexes
                // that lead with it, so that those of versions it does not run are not read; an
                // unversioned worker's claim keeps instances_ready, instances_waiting and instances_by_queue.
                "ALTER TABLE \(t.instances) ADD COLUMN app_version TEXT",
                """
                CREATE INDEX \(t.indexName("instances_ready_by_version")) ON \(t.instances) (app_version, created_at, instance_id)
                WHERE status IN ('running', 'compensating') AND ready_at IS NULL AND lease_owner IS NULL
                """,
                """
                CREATE INDEX \(t.indexName("instances_waiting_by_version")) ON \(t.instances) (app_version, ready_at)
                WHERE status IN ('running', 'compensating') AND ready_at IS NOT NULL
                """,
                """
                CREATE INDEX \(t.indexName("instances_queued_by_version")) ON \(t.instances)
                    (queue_name, partition_key, app_version, priority, created_at, instance_id)
                WHERE status = 'queued'
                """,
            ]),
        ]
    }
}
