@_spi(EddaStores) public import Edda
import Foundation
import PostgresNIO

/// The transactional outbox on PostgreSQL. Several relays — in one process or many — share the
/// table: each claims due events with `FOR UPDATE SKIP LOCKED`, so two live relays never claim the
/// same event; a claim older than the relay's `claimTimeout` is taken to belong to a dead relay and
/// delivered again. Times are the database server's clock: the claim's times are read as intervals
/// from its `now` (a claim timeout, a maximum age), so relays' clocks need not agree.
extension PostgresStore: OutboxStore {
    public func claimOutboxEvents(_ claim: OutboxClaim) async throws -> [OutboxEvent] {
        let now = Self.nowMilliseconds
        let claimTimeout = claim.now.millisecondsSince1970 - claim.reclaimClaimedBefore.millisecondsSince1970
        let maxAge = claim.expireCreatedBefore.map { claim.now.millisecondsSince1970 - $0.millisecondsSince1970 }
        return try await perform("claim outbox events") { [self] in
            try await client.withTransaction(logger: logger) { connection in
                // A claim this old belongs to a relay that died mid-delivery: deliver it again.
                try await connection.query(
                    """
                    UPDATE \(unescaped: tables.outbox) SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = \(unescaped: now)
                    WHERE status = 'processing' AND claimed_at < \(unescaped: now) - \(claimTimeout)
                    """,
                    logger: logger
                )
                if let maxAge {
                    try await connection.query(
                        """
                        UPDATE \(unescaped: tables.outbox) SET status = 'expired', updated_at = \(unescaped: now)
                        WHERE status = 'pending' AND created_at < \(unescaped: now) - \(maxAge)
                        """,
                        logger: logger
                    )
                }
                let rows = try await connection.query(
                    """
                    WITH due AS (
                        SELECT sequence FROM \(unescaped: tables.outbox)
                        WHERE status = 'pending' AND next_attempt_at <= \(unescaped: now)
                        ORDER BY next_attempt_at, sequence
                        LIMIT \(Int64(max(claim.limit, 0)))
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE \(unescaped: tables.outbox) AS o
                    SET status = 'processing', claimed_by = \(claim.relayID), claimed_at = \(unescaped: now), updated_at = \(unescaped: now)
                    FROM due WHERE o.sequence = due.sequence
                    RETURNING \(unescaped: Self.outboxColumns(prefix: "o."))
                    """,
                    logger: logger
                )
                var events: [OutboxEvent] = []
                for try await row in rows { events.append(try Self.outboxEvent(from: row)) }
                return events.sorted { $0.sequence < $1.sequence }
            }
        }
    }

    public func recordOutboxDelivery(sequence: Int64, relayID: String, _ delivery: OutboxDelivery) async throws {
        // The relay's times, as offsets from its clock's now, on the server's clock.
        let relayNow = Date().millisecondsSince1970
        let (status, retryAfter, error, publishedAgo): (OutboxStatus, Int64?, String?, Int64?)
        switch delivery {
        case .published(let at): (status, retryAfter, error, publishedAgo) = (.published, nil, nil, max(relayNow - at.millisecondsSince1970, 0))
        case .retry(let at, let message): (status, retryAfter, error, publishedAgo) = (.pending, at.millisecondsSince1970 - relayNow, message, nil)
        case .failed(let message): (status, retryAfter, error, publishedAgo) = (.failed, nil, message, nil)
        case .invalid(let message): (status, retryAfter, error, publishedAgo) = (.invalid, nil, message, nil)
        }
        let now = Self.nowMilliseconds
        _ = try await perform("record an outbox delivery") { [self] in
            // Only the relay that holds the claim writes: one whose claim was taken back changes nothing.
            try await client.query(
                """
                UPDATE \(unescaped: tables.outbox)
                SET status = \(status.rawValue), attempts = attempts + 1,
                    next_attempt_at = COALESCE(\(unescaped: now) + \(retryAfter), next_attempt_at),
                    last_error = \(error), published_at = \(unescaped: now) - \(publishedAgo), claimed_by = NULL, claimed_at = NULL,
                    updated_at = \(unescaped: now)
                WHERE sequence = \(sequence) AND status = 'processing' AND claimed_by = \(relayID)
                """,
                logger: logger
            )
        }
    }

    public func outboxEvents(status: OutboxStatus?, limit: Int) async throws -> [OutboxEvent] {
        try await perform("read the outbox") { [self] in
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.outboxColumns(prefix: "")) FROM \(unescaped: tables.outbox)
                WHERE \(status?.rawValue)::text IS NULL OR status = \(status?.rawValue)
                ORDER BY sequence LIMIT \(Int64(max(limit, 0)))
                """,
                logger: logger
            )
            var events: [OutboxEvent] = []
            for try await row in rows { events.append(try Self.outboxEvent(from: row)) }
            return events
        }
    }

    public func waitForOutboxEvents(upTo timeout: Duration) async {
        await outboxSignal.wait(upTo: timeout)
    }

    static func outboxColumns(prefix: String) -> String {
        [
            "sequence", "event_id", "type", "source", "subject", "event_time", "data", "data_content_type", "instance_id", "step_id",
            "status", "attempts", "next_attempt_at", "last_error", "created_at", "published_at", "extensions",
        ].map { prefix + $0 }.joined(separator: ", ")
    }

    static func outboxEvent(from row: PostgresRow) throws -> OutboxEvent {
        let (sequence, id, type, source, subject, time, data, contentType, instanceID, stepID, statusText, attempts, nextAttemptAt, lastError,
             createdAt, publishedAt, extensions) =
            try row.decode(
                (Int64, String, String, String, String?, Double, ByteBuffer?, String?, String?, String?, String, Int, Int64, String?, Int64, Int64?,
                 String?).self
            )
        guard let status = OutboxStatus(rawValue: statusText) else {
            throw StoreError(.corruptRecord, "Outbox event \(sequence) has status '\(statusText)', which this version of Edda does not know.")
        }
        var event = CloudEvent(
            id: id, type: type, source: source, subject: subject, time: Date(timeIntervalSince1970: time),
            data: data.map { Data($0.readableBytesView) }, dataContentType: contentType
        )
        event.extensions = CloudEvent.extensions(stored: extensions)
        return OutboxEvent(
            sequence: sequence, event: event, instanceID: instanceID, stepID: stepID, status: status, attempts: attempts,
            nextAttemptAt: Date(storedMilliseconds: nextAttemptAt), lastError: lastError, createdAt: Date(storedMilliseconds: createdAt),
            publishedAt: publishedAt.map(Date.init(storedMilliseconds:))
        )
    }
}
