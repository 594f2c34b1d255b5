@_spi(EddaStores) public import Edda
public import Foundation
import GRDB

/// Events and channel messages. SQLite's single writer serializes every receive and publish, so a
/// message and a wait registered at the same moment always meet.
extension SQLiteStore {
    @_spi(EddaStores) public func receive(_ wait: MessageWait, lease: Lease, now: Date) async throws -> ReceiveOutcome {
        try await write { db -> ReceiveOutcome in
            var outcome = ReceiveOutcome.waiting(deadline: nil)
            try db.inSavepoint {
                let held = try Bool.fetchOne(
                    db.cachedStatement(sql: "SELECT 1 FROM workflow_instances WHERE instance_id = ? AND lease_owner = ? AND lease_token = ?"),
                    arguments: [lease.instanceID, lease.owner, lease.token]
                )
                guard held != nil else { throw StoreError.leaseLost(lease) }
                if let mode = wait.kind.channelMode { try Self.register(wait.channel, mode: mode, db) }
                outcome = try Self.receive(wait, now: now.millisecondsSince1970, db)
                return .commit
            }
            return outcome
        }
    }

    @_spi(EddaStores) public func publish(_ message: OutgoingMessage, recordedAs record: (event: HistoryEvent, lease: Lease)?, now: Date) async throws
        -> PublishOutcome
    {
        let envelope = try JSONPayload.encode(message.envelope).json
        let insertRecord = try record.map { try Self.recordInsertion($0.event, lease: $0.lease) }
        let outcome = try await write { db -> PublishOutcome in
            var outcome = PublishOutcome.targetNotFound
            try db.inSavepoint {
                if let target = message.target {
                    guard let status = try String.fetchOne(db, sql: "SELECT status FROM workflow_instances WHERE instance_id = ?", arguments: [target])
                    else { return .commit }
                    if let known = InstanceStatus(rawValue: status), known.isTerminal {
                        outcome = .targetFinished(known)
                        return .commit
                    }
                }
                try insertRecord?(db)
                if let mode = message.kind.channelMode { try Self.register(message.channel, mode: mode, db) }
                outcome = try Self.publish(message, envelope: envelope, now: now.millisecondsSince1970, db)
                return .commit
            }
            return outcome
        }
        if case .published(_, let deliveredTo) = outcome, !deliveredTo.isEmpty { wakeUps.notify() }
        return outcome
    }

    @_spi(EddaStores) public func subscribe(to channel: String, mode: ChannelMode, now: Date) async throws -> Int64 {
        try await write { db in
            try Self.register(channel, mode: mode, db)
            return try Self.newestBroadcast(on: channel, db)
        }
    }

    /// A child's outcome, for its parent if it has not finished: recorded into its history if it
    /// waits for it, kept for it otherwise. Returns whether the parent was woken.
    static func reportToParent(_ parent: String, child: String, outcome: InstanceOutcome, _ db: Database) throws -> Bool {
        let status = try String.fetchOne(db.cachedStatement(sql: "SELECT status FROM workflow_instances WHERE instance_id = ?"), arguments: [parent])
        guard let status, InstanceStatus(rawValue: status)?.isTerminal == false else { return false }
        let report = try ChildReport.message(childID: child, outcome: outcome, parent: parent)
        let envelope = try JSONPayload.encode(report.envelope).json
        guard case .published(_, let delivered) = try publish(report, envelope: envelope, now: now(), db) else { return false }
        return !delivered.isEmpty
    }

    // MARK: - Statements

    /// Fixes `channel`'s mode on its first use, and checks it on every later one.
    static func register(_ channel: String, mode: ChannelMode, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO channel_modes (channel, mode) VALUES (?, ?) ON CONFLICT (channel) DO NOTHING")
            .execute(arguments: [channel, mode.rawValue])
        guard db.changesCount == 0 else { return }
        let stored = try String.fetchOne(db.cachedStatement(sql: "SELECT mode FROM channel_modes WHERE channel = ?"), arguments: [channel])
        if let stored, stored != mode.rawValue {
            throw ChannelModeError(channel: channel, registered: ChannelMode(rawValue: stored) ?? .broadcast, requested: mode)
        }
    }

    static func newestBroadcast(on channel: String, _ db: Database) throws -> Int64 {
        try Int64.fetchOne(
            db.cachedStatement(
                sql: "SELECT MAX(sequence) FROM channel_messages WHERE channel = ? AND kind = 'broadcast' AND target_instance IS NULL"
            ),
            arguments: [channel]
        ) ?? 0
    }

    private static func receive(_ wait: MessageWait, now: Int64, _ db: Database) throws -> ReceiveOutcome {
        // Delivered by a publisher since the wait was registered.
        if let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT * FROM workflow_history WHERE instance_id = ? AND step_id = ? AND attempt = 0"),
            arguments: [wait.instanceID, wait.stepID]
        ) {
            return .recorded(try historyEvent(from: row))
        }
        let existing = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT after_sequence, deadline FROM workflow_waits WHERE instance_id = ? AND step_id = ?"),
            arguments: [wait.instanceID, wait.stepID]
        )
        // A wait registered by an earlier run keeps its position and deadline.
        var after: Int64? = wait.afterSequence
        var deadline: Int64? = wait.deadline?.millisecondsSince1970
        if let existing {
            after = existing["after_sequence"] as Int64?
            deadline = existing["deadline"] as Int64?
        }
        if wait.kind == .broadcast, after == nil { after = try newestBroadcast(on: wait.channel, db) }

        if let (sequence, envelope) = try storedMessage(for: wait, after: after, now: now, db) {
            if wait.kind != .broadcast {
                try db.cachedStatement(sql: "DELETE FROM channel_messages WHERE sequence = ?").execute(arguments: [sequence])
            }
            try deleteWait(wait.instanceID, wait.stepID, db)
            return .recorded(try insertUnfenced(wait.deliveryRecord(sequence: sequence, envelope: envelope), db))
        }
        if let deadline, deadline <= now {
            try deleteWait(wait.instanceID, wait.stepID, db)
            let record = wait.timeoutRecord(deadline: Date(storedMilliseconds: deadline), afterSequence: after)
            return .recorded(try insertUnfenced(record, db))
        }
        if existing == nil {
            try db.cachedStatement(
                sql: """
                    INSERT INTO workflow_waits (instance_id, step_id, position, step_name, channel, kind, after_sequence, deadline, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                wait.instanceID, wait.stepID, wait.position, wait.name, wait.channel, wait.kind.rawValue, after, deadline, now,
            ])
        }
        return .waiting(deadline: deadline.map(Date.init(storedMilliseconds:)))
    }

    /// The oldest stored message `wait` may take: broadcast after its position, competing not taken,
    /// direct and events sent to its instance.
    private static func storedMessage(for wait: MessageWait, after: Int64?, now: Int64, _ db: Database) throws -> (Int64, String)? {
        let row: Row?
        switch wait.kind {
        case .broadcast, .competing:
            row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT sequence, envelope FROM channel_messages
                        WHERE channel = ? AND kind = ? AND target_instance IS NULL AND sequence > ? AND expires_at > ?
                        ORDER BY sequence LIMIT 1
                        """
                ),
                arguments: [wait.channel, wait.kind.rawValue, after ?? 0, now]
            )
        case .direct, .event:
            row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT sequence, envelope FROM channel_messages
                        WHERE channel = ? AND kind = ? AND target_instance = ? AND expires_at > ?
                        ORDER BY sequence LIMIT 1
                        """
                ),
                arguments: [wait.channel, wait.kind.rawValue, wait.instanceID, now]
            )
        }
        return row.map { ($0["sequence"], $0["envelope"]) }
    }

    /// The waits a message may go to: of instances still running and not being cancelled, not past
    /// their deadline; broadcast and events to every waiter, competing to the oldest one, targeted
    /// to its instance's — looked up by the instance (`+w.channel` keeps SQLite from the channel's
    /// index, which would read every waiter of the channel: 16 ms a send with 45,000 of them).
    static func waitCandidates(for message: OutgoingMessage, now: Int64) -> (sql: String, arguments: StatementArguments) {
        let candidates = """
            SELECT w.* FROM workflow_waits AS w JOIN workflow_instances AS i ON i.instance_id = w.instance_id
            WHERE i.status = 'running' AND i.cancel_requested = 0 AND (w.deadline IS NULL OR w.deadline > ?)
            """
        switch (message.kind, message.target) {
        case (_, let target?):
            return (
                candidates + " AND w.instance_id = ? AND +w.channel = ? AND +w.kind = ? ORDER BY w.created_at LIMIT 1",
                [now, target, message.channel, message.kind.rawValue]
            )
        case (.competing, nil):
            return (
                candidates + " AND w.channel = ? AND w.kind = ? ORDER BY w.created_at, w.instance_id LIMIT 1",
                [now, message.channel, message.kind.rawValue]
            )
        default:
            return (candidates + " AND w.channel = ? AND w.kind = ? ORDER BY w.instance_id", [now, message.channel, message.kind.rawValue])
        }
    }

    private static func publish(_ message: OutgoingMessage, envelope: String, now: Int64, _ db: Database) throws -> PublishOutcome {
        // Expired messages go a few at a time, with the writes that add new ones.
        try db.cachedStatement(
            sql: "DELETE FROM channel_messages WHERE sequence IN (SELECT sequence FROM channel_messages WHERE expires_at <= ? LIMIT 100)"
        ).execute(arguments: [now])

        let (sql, arguments) = waitCandidates(for: message, now: now)
        let waits = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
        // Broadcast messages stay for subscribers busy right now; the others only when nobody took them.
        var sequence: Int64?
        if message.isKept, message.kind == .broadcast || waits.isEmpty {
            try db.cachedStatement(
                sql: "INSERT INTO channel_messages (channel, kind, target_instance, envelope, published_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
            ).execute(arguments: [
                message.channel, message.kind.rawValue, message.target, envelope, now,
                now + Int64((message.retention.seconds * 1000).rounded()),
            ])
            sequence = db.lastInsertedRowID
        }
        var delivered: [String] = []
        for row in waits {
            let wait = MessageWait(
                instanceID: row["instance_id"], stepID: row["step_id"], position: row["position"], name: row["step_name"],
                channel: row["channel"], kind: message.kind, afterSequence: row["after_sequence"], deadline: nil
            )
            try deleteWait(wait.instanceID, wait.stepID, db)
            _ = try insertUnfenced(wait.deliveryRecord(sequence: sequence, envelope: envelope), db)
            try wake(wait.instanceID, now: now, db)
            delivered.append(wait.instanceID)
        }
        return .published(sequence: sequence, deliveredTo: delivered)
    }

    private static func deleteWait(_ instanceID: String, _ stepID: String, _ db: Database) throws {
        try db.cachedStatement(sql: "DELETE FROM workflow_waits WHERE instance_id = ? AND step_id = ?").execute(arguments: [instanceID, stepID])
    }

    /// Makes a waiting instance ready now; one still leased (its run is ending) is marked, so that
    /// its release makes it ready at once.
    private static func wake(_ instanceID: String, now: Int64, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                UPDATE workflow_instances
                SET ready_at = CASE WHEN lease_owner IS NULL THEN NULL ELSE ready_at END,
                    wake_pending = CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END, updated_at = ?
                WHERE instance_id = ? AND status IN ('running', 'compensating')
                """
        ).execute(arguments: [now, instanceID])
    }

    /// Appends a wait's outcome without a lease: the wait row it replaces is the guard (only one
    /// transaction can delete it), and the unique step index refuses a second outcome.
    private static func insertUnfenced(_ event: HistoryEvent, _ db: Database) throws -> HistoryEvent {
        let row = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    INSERT INTO workflow_history (instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at)
                    VALUES (?, ?, 0, ?, ?, ?, ?, ?)
                    RETURNING *
                    """
            ),
            arguments: [event.instanceID, event.stepID, event.position, event.name, event.kind.rawValue, event.payload?.json, now()]
        )
        guard let row else { throw StoreError(.database, "The record of step '\(event.stepID)' was not written.") }
        return try historyEvent(from: row)
    }
}
