@_spi(EddaStores) public import Edda
public import Foundation
import Logging
import PostgresNIO

/// Events and channel messages. Every receive and publish on a channel takes a transaction-scoped
/// advisory lock on the channel's name first: under READ COMMITTED, a publisher and a waiter that
/// ran side by side could each miss the other's uncommitted row, and the message would sit unseen.
/// A message for one instance, and that instance's wait for one, lock only the channel's key of that
/// instance (and the channel's shared), so that sends to different instances do not queue behind
/// each other's commits.
extension PostgresStore {
    @_spi(EddaStores) public func receive(_ wait: MessageWait, lease: Lease, now: Date) async throws -> ReceiveOutcome {
        let now = now.millisecondsSince1970
        return try await perform("receive a message") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                try await lock(wait.channel, for: wait.kind.isTargeted ? wait.instanceID : nil, on: connection)
                let fence = try await connection.query(
                    """
                    SELECT 1 FROM \(unescaped: tables.instances)
                    WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                    FOR KEY SHARE
                    """,
                    logger: logger
                )
                try await Self.expectRow(fence, lease)
                if let mode = wait.kind.channelMode { try await register(wait.channel, mode: mode, on: connection) }
                return try await receive(wait, now: now, on: connection)
            }
        }
    }

    @_spi(EddaStores) public func publish(_ message: OutgoingMessage, recordedAs record: (event: HistoryEvent, lease: Lease)?, now: Date) async throws
        -> PublishOutcome
    {
        let envelope = try JSONPayload.encode(message.envelope).json
        let columns = try record.map { try $0.event.storedColumns() }
        let now = now.millisecondsSince1970
        let outcome = try await perform("publish a message") { [self] () -> PublishOutcome in
            try await client.withTransaction(logger: logger) { connection -> PublishOutcome in
                let target = message.kind.isTargeted ? message.target : nil
                try await lock(message.channel, for: target, on: connection)
                // The channel's mode, checked (a mismatch rolls the send back), and the sending step's
                // record, fenced by its lease (a lost lease rolls it back too).
                let confirmTheSend = { [self] in
                    if let (event, lease) = record, let columns {
                        try await Self.expectRow(try await connection.query(fencedInsertion(event, columns, lease: lease), logger: logger), lease)
                    }
                    if let mode = message.kind.channelMode { try await register(message.channel, mode: mode, on: connection) }
                }
                if let target {
                    return try await publish(message, to: target, envelope: envelope, now: now, on: connection, confirming: confirmTheSend)
                }
                try await confirmTheSend()
                return try await publish(message, envelope: envelope, now: now, on: connection)
            }
        }
        if case .published(_, let deliveredTo) = outcome, !deliveredTo.isEmpty {
            wakeUps.notify()
            notifier.post(.ready)
        }
        return outcome
    }

    @_spi(EddaStores) public func subscribe(to channel: String, mode: ChannelMode, now: Date) async throws -> Int64 {
        try await perform("subscribe to a channel") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                try await lock(channel, for: nil, on: connection)
                try await register(channel, mode: mode, on: connection)
                return try await newestBroadcast(on: channel, on: connection)
            }
        }
    }

    // MARK: - Statements

    /// Takes the channel's advisory lock for the rest of the transaction: the whole channel
    /// exclusively, or — for a message to one instance, or that instance's wait for one — the
    /// channel shared and the (channel, instance) key exclusively. Sends to different instances then
    /// run side by side, while each still excludes its instance's own wait and every untargeted
    /// publish on the channel. Everyone takes the channel's key first, so no two wait in a cycle.
    private func lock(_ channel: String, for instanceID: String?, on connection: PostgresConnection) async throws {
        let (key, instanceKey) = Self.lockKeys(schema: tables.schema, channel: channel, instanceID: instanceID)
        guard let instanceKey else {
            try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(key), 0))", logger: logger)
            return
        }
        try await connection.query(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(\(key), 0)), pg_advisory_xact_lock(hashtextextended(\(instanceKey), 0))",
            logger: logger
        )
    }

    /// The texts whose hashes are the advisory lock keys of a channel and of one instance on it.
    static func lockKeys(schema: String, channel: String, instanceID: String?) -> (channel: String, instance: String?) {
        let key = "edda:\(schema):\(channel)"
        return (key, instanceID.map { "\(key)\u{1F}\($0)" })
    }

    private func register(_ channel: String, mode: ChannelMode, on connection: PostgresConnection) async throws {
        try await connection.query(
            "INSERT INTO \(unescaped: tables.channelModes) (channel, mode) VALUES (\(channel), \(mode.rawValue)) ON CONFLICT (channel) DO NOTHING",
            logger: logger
        )
        let rows = try await connection.query("SELECT mode FROM \(unescaped: tables.channelModes) WHERE channel = \(channel)", logger: logger)
        for try await stored in rows.decode(String.self) where stored != mode.rawValue {
            throw ChannelModeError(channel: channel, registered: ChannelMode(rawValue: stored) ?? .broadcast, requested: mode)
        }
    }

    private func newestBroadcast(on channel: String, on connection: PostgresConnection) async throws -> Int64 {
        let rows = try await connection.query(
            """
            SELECT COALESCE(MAX(sequence), 0) FROM \(unescaped: tables.messages)
            WHERE channel = \(channel) AND kind = 'broadcast' AND target_instance IS NULL
            """,
            logger: logger
        )
        for try await newest in rows.decode(Int64.self) { return newest }
        return 0
    }

    private func receive(_ wait: MessageWait, now: Int64, on connection: PostgresConnection) async throws -> ReceiveOutcome {
        // Delivered by a publisher since the wait was registered.
        let recorded = try await connection.query(
            """
            SELECT \(unescaped: Self.historyColumns) FROM \(unescaped: tables.history)
            WHERE instance_id = \(wait.instanceID) AND step_id = \(wait.stepID) AND attempt = 0
            """,
            logger: logger
        )
        for try await row in recorded { return .recorded(try Self.historyEvent(from: row)) }

        var existing: (after: Int64?, deadline: Int64?)?
        let waits = try await connection.query(
            "SELECT after_sequence, deadline FROM \(unescaped: tables.waits) WHERE instance_id = \(wait.instanceID) AND step_id = \(wait.stepID)",
            logger: logger
        )
        for try await (after, deadline) in waits.decode((Int64?, Int64?).self) { existing = (after, deadline) }
        // A wait registered by an earlier run keeps its position and deadline.
        var after = wait.afterSequence
        var deadline = wait.deadline?.millisecondsSince1970
        if let existing { (after, deadline) = existing }
        if wait.kind == .broadcast, after == nil { after = try await newestBroadcast(on: wait.channel, on: connection) }

        let stored: PostgresRowSequence
        switch wait.kind {
        case .broadcast, .competing:
            stored = try await connection.query(
                """
                SELECT sequence, envelope FROM \(unescaped: tables.messages)
                WHERE channel = \(wait.channel) AND kind = \(wait.kind.rawValue) AND target_instance IS NULL
                    AND sequence > \(after ?? 0) AND expires_at > \(now)
                ORDER BY sequence LIMIT 1
                """,
                logger: logger
            )
        case .direct, .event:
            stored = try await connection.query(
                """
                SELECT sequence, envelope FROM \(unescaped: tables.messages)
                WHERE channel = \(wait.channel) AND kind = \(wait.kind.rawValue) AND target_instance = \(wait.instanceID)
                    AND expires_at > \(now)
                ORDER BY sequence LIMIT 1
                """,
                logger: logger
            )
        }
        var message: (Int64, String)?
        for try await row in stored.decode((Int64, String).self) { message = row }
        if let (sequence, envelope) = message {
            if wait.kind != .broadcast {
                try await connection.query("DELETE FROM \(unescaped: tables.messages) WHERE sequence = \(sequence)", logger: logger)
            }
            try await deleteWait(wait.instanceID, wait.stepID, on: connection)
            return .recorded(try await insertUnfenced(wait.deliveryRecord(sequence: sequence, envelope: envelope), on: connection))
        }
        if let deadline, deadline <= now {
            try await deleteWait(wait.instanceID, wait.stepID, on: connection)
            let record = wait.timeoutRecord(deadline: Date(storedMilliseconds: deadline), afterSequence: after)
            return .recorded(try await insertUnfenced(record, on: connection))
        }
        if existing == nil {
            try await connection.query(
                """
                INSERT INTO \(unescaped: tables.waits) (instance_id, step_id, position, step_name, channel, kind, after_sequence, deadline, created_at)
                VALUES (\(wait.instanceID), \(wait.stepID), \(wait.position.map(Int64.init)), \(wait.name), \(wait.channel),
                        \(wait.kind.rawValue), \(after), \(deadline), \(now))
                """,
                logger: logger
            )
        }
        return .waiting(deadline: deadline.map(Date.init(storedMilliseconds:)))
    }

    /// A message for no instance in particular (broadcast, competing, an event to every waiter):
    /// recorded into each waiter's history it goes to.
    private func publish(_ message: OutgoingMessage, envelope: String, now: Int64, on connection: PostgresConnection) async throws
        -> PublishOutcome
    {
        // Expired messages go a few at a time, with the writes that add new ones.
        try await deleteExpired(now: now, on: connection)
        let candidates = Self.waitCandidates(for: message, now: now, tables: tables)
        var waits: [MessageWait] = []
        let found = try await connection.query(candidates, logger: logger)
        for try await (instanceID, stepID, position, name, after) in found.decode((String, String, Int64?, String, Int64?).self) {
            waits.append(
                MessageWait(
                    instanceID: instanceID, stepID: stepID, position: position.map(Int.init), name: name, channel: message.channel,
                    kind: message.kind, afterSequence: after, deadline: nil
                )
            )
        }
        // Broadcast messages are kept for subscribers busy right now: stored first, for their number.
        var sequence: Int64?
        if message.kind == .broadcast { sequence = try await keep(message, envelope: envelope, now: now, on: connection) }
        var delivered: [String] = []
        for wait in waits {
            if try await deliver(envelope, sequence: sequence, to: wait, on: connection) {
                delivered.append(wait.instanceID)
                // Competing: one delivery takes the message.
                if message.kind == .competing { break }
            }
        }
        if delivered.isEmpty, message.isKept, message.kind != .broadcast {
            sequence = try await keep(message, envelope: envelope, now: now, on: connection)
        }
        return .published(sequence: sequence, deliveredTo: delivered)
    }

    /// The waits a message for no instance in particular may go to: of instances still running and
    /// not being cancelled, not past their deadline; broadcast and events to every waiter in instance
    /// order (two publishes lock rows in the same order), competing oldest waiter first. (A targeted
    /// message has a statement of its own, ``targetedDelivery(_:)``.)
    static func waitCandidates(for message: OutgoingMessage, now: Int64, tables: Tables) -> PostgresQuery {
        let columns = "w.instance_id, w.step_id, w.position, w.step_name, w.after_sequence"
        let running = "i.status = 'running' AND NOT i.cancel_requested AND (w.deadline IS NULL OR w.deadline > $3)"
        var binds = PostgresBindings()
        binds.append(message.channel)
        binds.append(message.kind.rawValue)
        binds.append(now)
        let sql: String
        switch message.kind {
        case .competing:
            sql = """
                SELECT \(columns) FROM \(tables.waits) AS w JOIN \(tables.instances) AS i ON i.instance_id = w.instance_id
                WHERE w.channel = $1 AND w.kind = $2 AND \(running)
                ORDER BY w.created_at, w.instance_id LIMIT 20
                """
        default:
            sql = """
                SELECT \(columns) FROM \(tables.waits) AS w JOIN \(tables.instances) AS i ON i.instance_id = w.instance_id
                WHERE w.channel = $1 AND w.kind = $2 AND \(running)
                ORDER BY w.instance_id
                """
        }
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    /// A message to one instance (a direct message or an event sent to it): one statement reads
    /// the target's status and, if it waits for the message, removes the wait, wakes the instance
    /// and records the delivery — the steps of ``deliver(_:sequence:to:on:)`` with the same guards.
    /// Kept for later when nobody took it. `confirming` checks the channel's mode and writes the
    /// sending step's record once the target is known to exist and not to have finished: a send
    /// refused for its target writes nothing, as before the delivery moved into one statement.
    private func publish(
        _ message: OutgoingMessage, to target: String, envelope: String, now: Int64, on connection: PostgresConnection,
        confirming: () async throws -> Void
    ) async throws -> PublishOutcome {
        var binds = PostgresBindings()
        binds.append(message.channel)
        binds.append(message.kind.rawValue)
        binds.append(now)
        binds.append(target)
        binds.append(MessageWait.deliveryPayload(channel: message.channel, sequence: nil, envelope: envelope))
        binds.append(HistoryEventKind.messageReceived.rawValue)
        let rows = try await connection.query(PostgresQuery(unsafeSQL: Self.targetedDelivery(tables), binds: binds), logger: logger)
        var outcome: (status: String?, delivered: Bool)?
        for try await row in rows.decode((String?, Bool).self) { outcome = row }
        guard let status = outcome?.status else { return .targetNotFound }
        if let known = InstanceStatus(rawValue: status), known.isTerminal { return .targetFinished(known) }
        try await confirming()
        if outcome?.delivered == true { return .published(sequence: nil, deliveredTo: [target]) }
        guard message.isKept else { return .published(sequence: nil, deliveredTo: []) }
        try await deleteExpired(now: now, on: connection)
        return .published(sequence: try await keep(message, envelope: envelope, now: now, on: connection), deliveredTo: [])
    }

    /// The statement of ``publish(_:to:envelope:now:on:)``: $1 channel, $2 kind, $3 now, $4 target,
    /// $5 the delivery record's payload, $6 its kind. Returns the target's status (NULL if there is
    /// no such instance) and whether the message was delivered.
    static func targetedDelivery(_ tables: Tables) -> String {
        """
        WITH mine AS MATERIALIZED (
            SELECT * FROM \(tables.waits) WHERE instance_id = $4
        ), candidate AS (
            SELECT w.instance_id, w.step_id FROM mine AS w JOIN \(tables.instances) AS i ON i.instance_id = w.instance_id
            WHERE w.channel = $1 AND w.kind = $2 AND i.status = 'running' AND NOT i.cancel_requested
                AND (w.deadline IS NULL OR w.deadline > $3)
            ORDER BY w.created_at LIMIT 1
        ), removed AS (
            DELETE FROM \(tables.waits) AS w USING candidate AS c
            WHERE w.instance_id = c.instance_id AND w.step_id = c.step_id
            RETURNING w.instance_id, w.step_id, w.position, w.step_name
        ), woken AS (
            UPDATE \(tables.instances)
            SET ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                wake_pending = lease_owner IS NOT NULL, updated_at = \(nowMilliseconds)
            WHERE instance_id IN (SELECT instance_id FROM removed) AND status = 'running' AND NOT cancel_requested
            RETURNING instance_id
        ), recorded AS (
            INSERT INTO \(tables.history) (instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at)
            SELECT r.instance_id, r.step_id, 0, r.position, r.step_name, $6, $5, \(nowMilliseconds)
            FROM removed AS r JOIN woken USING (instance_id)
            RETURNING 1
        )
        SELECT (SELECT status FROM \(tables.instances) WHERE instance_id = $4), EXISTS (SELECT 1 FROM recorded)
        """
    }

    private func deleteExpired(now: Int64, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            DELETE FROM \(unescaped: tables.messages) WHERE sequence IN (
                SELECT sequence FROM \(unescaped: tables.messages) WHERE expires_at <= \(now) LIMIT 100 FOR UPDATE SKIP LOCKED
            )
            """,
            logger: logger
        )
    }

    private func keep(_ message: OutgoingMessage, envelope: String, now: Int64, on connection: PostgresConnection) async throws -> Int64? {
        let expires = now + Int64((message.retention.seconds * 1000).rounded())
        let inserted = try await connection.query(
            """
            INSERT INTO \(unescaped: tables.messages) (channel, kind, target_instance, envelope, published_at, expires_at)
            VALUES (\(message.channel), \(message.kind.rawValue), \(message.target), \(envelope), \(now), \(expires))
            RETURNING sequence
            """,
            logger: logger
        )
        for try await value in inserted.decode(Int64.self) { return value }
        return nil
    }

    /// Records the message into the waiter's history and wakes it — only if this transaction removed
    /// its wait (the guard: a finish or another delivery may have committed since the candidates were
    /// read) and the instance is still running (the UPDATE waits for a concurrent finish and re-checks).
    private func deliver(_ envelope: String, sequence: Int64?, to wait: MessageWait, on connection: PostgresConnection) async throws -> Bool {
        let removed = try await connection.query(
            "DELETE FROM \(unescaped: tables.waits) WHERE instance_id = \(wait.instanceID) AND step_id = \(wait.stepID) RETURNING 1",
            logger: logger
        )
        var gone = true
        for try await _ in removed { gone = false }
        if gone { return false }
        // Ready now; one still leased (its run is ending) is marked, so that its release makes it ready at once.
        let woken = try await connection.query(
            """
            UPDATE \(unescaped: tables.instances)
            SET ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                wake_pending = lease_owner IS NOT NULL, updated_at = \(unescaped: Self.nowMilliseconds)
            WHERE instance_id = \(wait.instanceID) AND status = 'running' AND NOT cancel_requested
            RETURNING instance_id
            """,
            logger: logger
        )
        var running = false
        for try await _ in woken { running = true }
        if !running { return false }
        _ = try await insertUnfenced(wait.deliveryRecord(sequence: sequence, envelope: envelope), on: connection)
        return true
    }

    private func deleteWait(_ instanceID: String, _ stepID: String, on connection: PostgresConnection) async throws {
        try await connection.query(
            "DELETE FROM \(unescaped: tables.waits) WHERE instance_id = \(instanceID) AND step_id = \(stepID)", logger: logger
        )
    }

    /// Appends a wait's outcome without a lease: the wait row it replaces is the guard (the channel
    /// lock orders the transactions that could delete it), and the unique step index refuses a second outcome.
    private func insertUnfenced(_ event: HistoryEvent, on connection: PostgresConnection) async throws -> HistoryEvent {
        let rows = try await connection.query(
            """
            INSERT INTO \(unescaped: tables.history) (instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at)
            VALUES (\(event.instanceID), \(event.stepID), 0, \(event.position.map(Int64.init)), \(event.name), \(event.kind.rawValue),
                    \(event.payload?.json), \(unescaped: Self.nowMilliseconds))
            RETURNING \(unescaped: Self.historyColumns)
            """,
            logger: logger
        )
        for try await row in rows { return try Self.historyEvent(from: row) }
        throw StoreError(.database, "The record of step '\(event.stepID)' was not written.")
    }
}
