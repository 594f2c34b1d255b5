@_spi(EddaStores) public import Edda
import Foundation
import GRDB

extension SQLiteStore: OutboxStore {
    public func claimOutboxEvents(_ claim: OutboxClaim) async throws -> [OutboxEvent] {
        let now = claim.now.millisecondsSince1970
        return try await write { db in
            var claimed: [Row] = []
            try db.inSavepoint {
                // A claim this old belongs to a relay that died mid-delivery: deliver it again.
                try db.cachedStatement(
                    sql: """
                        UPDATE outbox_events SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = ?
                        WHERE status = 'processing' AND claimed_at < ?
                        """
                ).execute(arguments: [now, claim.reclaimClaimedBefore.millisecondsSince1970])
                if let expiry = claim.expireCreatedBefore {
                    try db.cachedStatement(
                        sql: "UPDATE outbox_events SET status = 'expired', updated_at = ? WHERE status = 'pending' AND created_at < ?"
                    ).execute(arguments: [now, expiry.millisecondsSince1970])
                }
                // Longest due first (as on PostgreSQL): an event waiting for its retry does not hold back
                // newer ones due before it. The (status, next_attempt_at) index gives this order (its
                // entries end with the rowid, the sequence), without a sort.
                claimed = try Row.fetchAll(
                    db.cachedStatement(
                        sql: """
                            UPDATE outbox_events SET status = 'processing', claimed_by = ?, claimed_at = ?, updated_at = ?
                            WHERE sequence IN (
                                SELECT sequence FROM outbox_events
                                WHERE status = 'pending' AND next_attempt_at <= ?
                                ORDER BY next_attempt_at, sequence LIMIT ?
                            )
                            RETURNING *
                            """
                    ),
                    arguments: [claim.relayID, now, now, now, max(claim.limit, 0)]
                )
                return .commit
            }
            return try claimed.map(Self.outboxEvent(from:)).sorted { $0.sequence < $1.sequence }
        }
    }

    public func recordOutboxDelivery(sequence: Int64, relayID: String, _ delivery: OutboxDelivery) async throws {
        let now = Self.now()
        let (status, nextAttemptAt, error, publishedAt): (OutboxStatus, Int64?, String?, Int64?)
        switch delivery {
        case .published(let at): (status, nextAttemptAt, error, publishedAt) = (.published, nil, nil, at.millisecondsSince1970)
        case .retry(let at, let message): (status, nextAttemptAt, error, publishedAt) = (.pending, at.millisecondsSince1970, message, nil)
        case .failed(let message): (status, nextAttemptAt, error, publishedAt) = (.failed, nil, message, nil)
        case .invalid(let message): (status, nextAttemptAt, error, publishedAt) = (.invalid, nil, message, nil)
        }
        try await write { db in
            try db.cachedStatement(
                sql: """
                    UPDATE outbox_events
                    SET status = ?, attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at),
                        last_error = ?, published_at = ?, claimed_by = NULL, claimed_at = NULL, updated_at = ?
                    WHERE sequence = ? AND status = 'processing' AND claimed_by = ?
                    """
            ).execute(arguments: [status.rawValue, nextAttemptAt, error, publishedAt, now, sequence, relayID])
        }
    }

    public func outboxEvents(status: OutboxStatus?, limit: Int) async throws -> [OutboxEvent] {
        try await read { db in
            if let status {
                return try Row.fetchAll(
                    db.cachedStatement(sql: "SELECT * FROM outbox_events WHERE status = ? ORDER BY sequence LIMIT ?"),
                    arguments: [status.rawValue, max(limit, 0)]
                ).map(Self.outboxEvent(from:))
            }
            return try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM outbox_events ORDER BY sequence LIMIT ?"), arguments: [max(limit, 0)]
            ).map(Self.outboxEvent(from:))
        }
    }

    public func waitForOutboxEvents(upTo timeout: Duration) async {
        await outboxSignal.wait(upTo: timeout)
    }

    /// Inserts a step's outbox events; part of the step's transaction.
    static func insertOutboxEvents(_ events: [CloudEvent], instanceID: String, stepID: String, now: Int64, _ db: Database) throws {
        for event in events {
            try db.cachedStatement(
                sql: """
                    INSERT INTO outbox_events
                        (event_id, instance_id, step_id, type, source, subject, event_time, data_content_type, data,
                         status, next_attempt_at, created_at, updated_at, extensions)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                event.id, instanceID, stepID, event.type, event.source, event.subject, event.time.timeIntervalSince1970,
                event.dataContentType, event.data, now, now, now, event.storedExtensions,
            ])
        }
    }

    static func outboxEvent(from row: Row) throws -> OutboxEvent {
        let sequence: Int64 = row["sequence"]
        let statusText: String = row["status"]
        guard let status = OutboxStatus(rawValue: statusText) else {
            throw StoreError(.corruptRecord, "Outbox event \(sequence) has status '\(statusText)', which this version of Edda does not know.")
        }
        var event = CloudEvent(
            id: row["event_id"], type: row["type"], source: row["source"], subject: row["subject"],
            time: Date(timeIntervalSince1970: row["event_time"]), data: row["data"], dataContentType: row["data_content_type"]
        )
        event.extensions = CloudEvent.extensions(stored: row["extensions"])
        return OutboxEvent(
            sequence: sequence, event: event, instanceID: row["instance_id"], stepID: row["step_id"], status: status,
            attempts: row["attempts"], nextAttemptAt: date(row["next_attempt_at"]), lastError: row["last_error"],
            createdAt: date(row["created_at"]), publishedAt: (row["published_at"] as Int64?).map(date)
        )
    }
}
