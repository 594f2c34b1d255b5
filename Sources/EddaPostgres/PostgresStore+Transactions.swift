@_spi(EddaStores) public import Edda
import Foundation
import Logging
import PostgresNIO

/// Steps whose database work commits with their record: `ctx.transaction` bodies, outbox events and
/// ``Edda/TransactionMode/wholeBody`` activities. Each runs in a transaction of its own on one pooled
/// connection (not in the shared group commit): the user's queries need a connection to themselves.
extension PostgresStore {
    @_spi(EddaStores) public func append(_ event: HistoryEvent, with transaction: StepTransaction, lease: Lease) async throws {
        try await inStepTransaction(transaction, lease: lease) { connection in
            try await transaction.run(session: connection, savepoint: Self.savepoint(on: connection, logger: logger)) { (event, ()) }
        }
    }

    @_spi(EddaStores) public func appendRunningAttempt<Result: Sendable>(
        _ transaction: StepTransaction, lease: Lease,
        attempt: @escaping @Sendable () async throws -> (HistoryEvent, Result)
    ) async throws -> Result {
        let timeout = configuration.wholeBodyTimeout
        return try await inStepTransaction(transaction, lease: lease) { [logger] connection in
            do {
                // In a task of its own, given up after the timeout: a body that hangs (a call that
                // never answers) must not hold the transaction, its locks and the instance for ever.
                return try await watchdog.run("run a whole-body activity", timeout: timeout) {
                    try await transaction.run(session: connection, savepoint: Self.savepoint(on: connection, logger: logger), then: attempt)
                }
            } catch is CancellationError {
                // Abandoned (the run was cancelled) while the body may still run: the same as a timeout,
                // without failing the attempt.
                try? await connection.close()
                throw CancellationError()
            } catch where QueryTimedOut.caused(error) {
                // The body may still hold the connection: close it, so that the server rolls the
                // transaction back and nothing the body does later reaches the database.
                try? await connection.close()
                throw transaction.refuse(WholeBodyTimeoutError(timeout: timeout))
            }
        }
    }

    /// Opens a transaction, locks the instance's row if `lease` still holds it (`FOR KEY SHARE`: a
    /// claim skips the row until this commits, renewals go on), runs `work`, inserts the outbox events
    /// and the record `work` returns, and commits. Rolls back if anything throws; an error of the
    /// step's own work is rethrown as is (the attempt failed), others as ``Edda/StoreError``.
    private func inStepTransaction<Result>(
        _ transaction: StepTransaction, lease: Lease,
        _ work: (PostgresConnection) async throws -> (HistoryEvent, Result)
    ) async throws -> Result {
        try await readiness.wait(logger: logger)
        var wroteEvents = false
        var workRan = false
        let result: Result
        do {
            result = try await client.withConnection { connection in
                do {
                    try await execute("begin a step's transaction", "BEGIN", on: connection)
                    let fence = try await execute(
                        "check a lease",
                        """
                        SELECT 1 FROM \(unescaped: tables.instances)
                        WHERE instance_id = \(lease.instanceID) AND lease_owner = \(lease.owner) AND lease_token = \(lease.token)
                        FOR KEY SHARE
                        """,
                        on: connection
                    )
                    guard fence > 0 else { throw StoreError.leaseLost(lease) }
                    let (event, result) = try await work(connection)
                    workRan = true
                    let events = transaction.outboxEvents
                    do {
                        try await insertOutboxEvents(events, instanceID: event.instanceID, stepID: event.stepID, on: connection)
                        try await insertRecord(event, on: connection)
                        try await execute("commit a step's transaction", "COMMIT", on: connection)
                    } catch where ServerError(error).sqlState?.hasPrefix("40") == true {
                        throw OwnStatementConflict(underlying: error)
                    }
                    wroteEvents = !events.isEmpty
                    return result
                } catch {
                    if connection.isClosed {
                        // Closed on purpose (an abandoned whole-body attempt) or lost: the server rolled back.
                    } else if QueryTimedOut.caused(error) {
                        // A statement went unanswered: the connection may be lost, or stalled mid-transaction.
                        // Close it rather than hand it back to the pool with a transaction open.
                        try? await connection.close()
                    } else {
                        // A connection that failed mid-transaction is closed by the pool; nothing committed.
                        _ = try? await execute("roll back a step's transaction", "ROLLBACK", on: connection)
                    }
                    throw error
                }
            }
        } catch {
            if let failure = transaction.bodyFailure { throw failure }
            if let conflict = error as? OwnStatementConflict {
                // A serialization failure or deadlock met by Edda's own statements (the record, the
                // outbox rows, the commit): the store's failure, run again like any other, and not a
                // failed attempt of the activity.
                throw StoreError(
                    .database,
                    "PostgreSQL could not record a step: Edda's own statements met a serialization failure or deadlock. "
                        + "The step runs again; this is not counted as a failed attempt.",
                    cause: ServerError(conflict.underlying)
                )
            }
            // The step's own work left the transaction unable to commit — a body that caught a failed
            // query (25P02), a deferred constraint (23…), a serialization failure or deadlock of its
            // own queries (40…): the attempt failed, to be retried by its policy, not the store.
            if workRan, let state = ServerError(error).sqlState, state == "25P02" || state.hasPrefix("23") || state.hasPrefix("40") {
                throw transaction.refuse(ServerError(error))
            }
            if let error = error as? StoreError { throw error }
            throw StoreError(.database, "PostgreSQL could not record a step with its transaction.", cause: ServerError(error))
        }
        if wroteEvents {
            outboxSignal.notify()
            notifier.post(.outbox)
        }
        return result
    }

    /// Runs one of the store's own statements on a leased connection, bounded by the watchdog (a
    /// connection that closed under it must not hang the step); returns how many rows came back.
    @discardableResult
    private func execute(_ what: String, _ query: PostgresQuery, on connection: PostgresConnection) async throws -> Int {
        try await watchdog.run(what) { [logger] in
            var rows = 0
            for try await _ in try await connection.query(query, logger: logger) { rows += 1 }
            return rows
        }
    }

    /// Runs a nested `ctx.transaction` body in a savepoint of the open transaction.
    private static func savepoint(
        on connection: PostgresConnection, logger: Logger
    ) -> @Sendable (@Sendable () async throws -> Void) async throws -> Void {
        { body in
            try await connection.query("SAVEPOINT edda_nested", logger: logger)
            do {
                try await body()
            } catch {
                try await connection.query("ROLLBACK TO SAVEPOINT edda_nested", logger: logger)
                try await connection.query("RELEASE SAVEPOINT edda_nested", logger: logger)
                throw error
            }
            try await connection.query("RELEASE SAVEPOINT edda_nested", logger: logger)
        }
    }

    /// Inserts a history record inside a transaction that already holds the fence.
    private func insertRecord(_ event: HistoryEvent, on connection: PostgresConnection) async throws {
        let record = try event.storedColumns()
        try await execute(
            "append a history record",
            """
            INSERT INTO \(unescaped: tables.history)
                (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
            VALUES (\(event.instanceID), \(event.stepID), \(record.attempt), \(event.position.map(Int64.init)), \(event.name),
                    \(event.kind.rawValue), \(event.payload?.json), \(record.error), \(record.retry), \(unescaped: Self.nowMilliseconds))
            """,
            on: connection
        )
    }

    /// Inserts a step's outbox events, in one statement.
    private func insertOutboxEvents(_ events: [CloudEvent], instanceID: String, stepID: String, on connection: PostgresConnection) async throws {
        guard !events.isEmpty else { return }
        // JSON encodes `data` as base64 and `time` as seconds since 1970.
        let rows = String(decoding: try Self.outboxEncoder.encode(events), as: UTF8.self)
        try await execute(
            "insert outbox events",
            """
            INSERT INTO \(unescaped: tables.outbox)
                (event_id, instance_id, step_id, type, source, subject, event_time, data_content_type, data,
                 status, next_attempt_at, created_at, updated_at, extensions)
            SELECT e.id, \(instanceID), \(stepID), e.type, e.source, e.subject, e.time, e."dataContentType", decode(e.data, 'base64'),
                   'pending', \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds),
                   NULLIF(e.extensions::text, '{}')
            FROM ROWS FROM (
                json_to_recordset(\(rows)::json)
                    AS (id text, type text, source text, subject text, time float8, "dataContentType" text, data text, extensions json)
            ) WITH ORDINALITY AS e(id, type, source, subject, time, "dataContentType", data, extensions, ordinal)
            ORDER BY e.ordinal
            """,
            on: connection
        )
    }

    private static let outboxEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }()
}

/// A ``Edda/TransactionMode/wholeBody`` activity ran longer than
/// ``PostgresStore/Configuration-swift.struct/wholeBodyTimeout``: its transaction was rolled back and
/// its connection closed. The attempt failed, and is retried by the activity's policy.
public struct WholeBodyTimeoutError: EddaError {
    /// The limit it ran past.
    public var timeout: Duration
    public var cause: (any Error)? { nil }

    public var message: String {
        "A whole-body transactional activity ran longer than wholeBodyTimeout (\(timeout)); its transaction was rolled back "
            + "and its connection closed, and the attempt is retried by the activity's policy. If it needs longer, raise "
            + "PostgresStore.Configuration.wholeBodyTimeout; if it waits on the network, move that wait out of the transaction."
    }
}

/// A serialization failure or deadlock (SQLSTATE 40…) raised by one of Edda's own statements in a
/// step's transaction, after the step's work ran.
struct OwnStatementConflict: Error {
    let underlying: any Error
}
