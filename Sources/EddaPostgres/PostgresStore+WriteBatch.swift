@_spi(EddaStores) import Edda
import Foundation
import PostgresNIO

/// The write path's group commit: the steps' records, new instances and completed finishes of
/// concurrent runs share one statement, one round trip and one commit.
///
/// A run has at most one write in flight, so the writes of one batch belong to different runs
/// (or to parallel steps of one run, which have no order between them). A lone write runs a
/// statement of its own, shaped for it; two or more run the batch statement, where each write is a
/// row of one JSON parameter and the statement says which took effect.
extension PostgresStore {
    /// One write waiting for its batch.
    enum PendingWrite: Sendable {
        /// A history record, fenced by the run's lease.
        case append(HistoryEvent, Lease)
        /// A new top-level instance (a child's creation reads its parent: not batched).
        case create(NewInstance, LeaseRequest?)
        /// A completed top-level instance's outcome, fenced by its lease (other finishes also
        /// report to a parent or clean up waits: not batched).
        case complete(Lease, JSONPayload)

        var instanceID: String {
            switch self {
            case .append(let event, _): event.instanceID
            case .create(let instance, _): instance.instanceID
            case .complete(let lease, _): lease.instanceID
            }
        }

        /// Writes with the same key cannot share a statement: their results could not be told apart.
        var key: String {
            switch self {
            case .append(let event, _):
                let attempt = event.kind.isOutcome ? 0 : (event.retry?.totalAttempts ?? 1)
                return "\(event.instanceID)\u{0}\(event.stepID)\u{0}\(attempt)"
            case .create(let instance, _): return instance.instanceID
            case .complete(let lease, _): return lease.instanceID
            }
        }
    }

    /// What a write did.
    enum WriteOutcome: Sendable {
        case written
        /// The instance was inserted, at this server time (milliseconds since 1970); a child may be
        /// born asked to cancel.
        case created(at: Int64, cancelRequested: Bool, deadline: StoredDeadline = StoredDeadline())
        /// An instance with this ID already exists: the caller reads it.
        case exists
    }

    /// Runs a batch of writes and says how each fared.
    func write(_ writes: [PendingWrite]) async -> [Result<WriteOutcome, any Error>] {
        var seen: Set<String> = []
        var first: [Int] = []
        var repeated: [Int] = []
        for (index, write) in writes.enumerated() {
            if seen.insert(write.key).inserted { first.append(index) } else { repeated.append(index) }
        }
        if !repeated.isEmpty {
            // Repeats go to a statement of their own, after the first.
            var results = [Result<WriteOutcome, any Error>](repeating: .success(.written), count: writes.count)
            for (index, result) in zip(first, await write(first.map { writes[$0] })) { results[index] = result }
            for (index, result) in zip(repeated, await write(repeated.map { writes[$0] })) { results[index] = result }
            return results
        }
        return await writeBatch(writes)
    }

    /// Whether the write connections run the batch as a prepared statement: they find the tables
    /// through their `search_path`, a session setting (see
    /// ``Configuration-swift.struct/sendsSessionSettings``); without it, the statement names its
    /// tables and is parsed and planned at every batch.
    var preparesWrites: Bool { configuration.sendsSessionSettings }

    func writeBatch(_ writes: [PendingWrite]) async -> [Result<WriteOutcome, any Error>] {
        var columns = WriteBatchStatement.Columns(capacity: writes.count)
        var completed: [String] = []
        do {
            // In the order of their instances' IDs, as renewals lock them: a batch completing two
            // instances and a renewal of both take their row locks in the same order.
            for write in writes.sorted(by: { $0.instanceID < $1.instanceID }) {
                switch write {
                case .append(let event, let lease):
                    let (attempt, error, retry) = try event.storedColumns()
                    columns.add(
                        op: "a", instanceID: event.instanceID, stepID: event.stepID, attempt: attempt,
                        position: event.position.map(Int64.init), stepName: event.name, kind: event.kind.rawValue,
                        payload: event.payload?.json, error: error, retry: retry, owner: lease.owner, token: lease.token
                    )
                case .create(let instance, let lease):
                    columns.add(
                        op: "c", instanceID: instance.instanceID, owner: lease?.owner, workflowName: instance.workflowName,
                        serviceName: instance.serviceName, input: instance.input.json, leaseMilliseconds: lease?.duration.wholeMilliseconds,
                        trace: instance.storedTraceContext, applicationVersion: instance.applicationVersion
                    )
                case .complete(let lease, let output):
                    completed.append(lease.instanceID)
                    columns.add(op: "f", instanceID: lease.instanceID, payload: output.json, owner: lease.owner, token: lease.token)
                }
            }
        } catch {
            return writes.map { _ in .failure(error) }
        }
        // The finished instances' notification goes in the same statement when it fits in one.
        let notice = Notifier.payloads(ready: false, outbox: false, finished: completed)
        let notifyHere = notice.count == 1
        do {
            let statement = WriteBatchStatement(columns: columns, channel: tables.channel, notice: notifyHere ? notice.first : nil)
            let (appended, created, finished) = try await perform("write a batch") { [self] () -> (Set<String>, [String: Int64], Set<String>) in
                var appended: Set<String> = []
                var created: [String: Int64] = [:]
                var finished: Set<String> = []
                func take(_ row: WriteBatchStatement.Row) {
                    let (op, instance, step, attempt, createdAt) = row
                    switch op {
                    case "a": appended.insert("\(instance)\u{0}\(step)\u{0}\(attempt)")
                    case "c": created[instance] = createdAt
                    case "f": finished.insert(instance)
                    default: break
                    }
                }
                if preparesWrites {
                    for try await row in try await writers.execute(statement, logger: logger) { take(row) }
                } else {
                    let query = PostgresQuery(unsafeSQL: qualifiedWriteBatch, binds: try statement.makeBindings())
                    for try await row in try await writers.query(query, logger: logger).decode(WriteBatchStatement.Row.self) { take(row) }
                }
                return (appended, created, finished)
            }
            if !completed.isEmpty {
                outcomes.notify(completed)
                if !notifyHere { for id in completed { notifier.post(.finished(id)) } }
            }
            if writes.contains(where: { if case .create(_, nil) = $0 { true } else { false } }) {
                wakeUps.notify()
                notifier.post(.ready)
            }
            // Records not inserted: the fence refused them, or their step already has that record.
            let missing = writes.compactMap { write -> Lease? in
                guard case .append(_, let lease) = write, !appended.contains(write.key) else { return nil }
                return lease
            }
            let held = missing.isEmpty ? [] : try await heldLeases(missing)
            return writes.map { write -> Result<WriteOutcome, any Error> in
                switch write {
                case .append(let event, let lease):
                    if appended.contains(write.key) { return .success(.written) }
                    guard held.contains(lease) else { return .failure(StoreError.leaseLost(lease)) }
                    return .failure(Self.recordExists(event))
                case .create(let instance, _):
                    return .success(created[instance.instanceID].map { .created(at: $0, cancelRequested: false) } ?? .exists)
                case .complete(let lease, _):
                    return finished.contains(lease.instanceID) ? .success(.written) : .failure(StoreError.leaseLost(lease))
                }
            }
        } catch {
            return writes.map { _ in .failure(error) }
        }
    }

    /// The error for a record whose step already has one of that kind.
    static func recordExists(_ event: HistoryEvent) -> StoreError {
        StoreError(
            .database,
            "Instance \(event.instanceID) already has a \(event.kind) record for step '\(event.stepID)'; history is never rewritten."
        )
    }
}

/// The write batch's statement. Its text names the tables without their schema: the write
/// connections find them through `search_path` (and plan it once, generically), or the store
/// qualifies the names when it cannot set that (``PostgresStore/preparesWrites``).
///
/// The writes come as one array per column, in binary (`$1`–`$17` and `$20`, unnested together);
/// `$18` is the notification channel, `$19` the notification of the completed instances (`NULL`:
/// sent apart, by the notifier). Absent integers are -1.
struct WriteBatchStatement: PostgresPreparedStatement {
    static let name = "edda_write_batch_2"
    static let bindingDataTypes: [PostgresDataType] =
        [.textArray, .textArray, .textArray, .int8Array, .int8Array, .textArray, .textArray, .textArray, .textArray, .textArray,
         .textArray, .int8Array, .textArray, .textArray, .textArray, .int8Array, .textArray, .text, .text, .textArray]
    typealias Row = (String, String, String, Int64, Int64)

    /// The writes, column by column.
    struct Columns {
        var op: [String] = []
        var instanceID: [String] = []
        var stepID = TextArray()
        var attempt: [Int64] = []
        var position: [Int64] = []
        var stepName = TextArray()
        var kind = TextArray()
        var payload = TextArray()
        var error = TextArray()
        var retry = TextArray()
        var owner = TextArray()
        var token: [Int64] = []
        var workflowName = TextArray()
        var serviceName = TextArray()
        var input = TextArray()
        var leaseMilliseconds: [Int64] = []
        var trace = TextArray()
        var applicationVersion = TextArray()

        init(capacity: Int) {
            op.reserveCapacity(capacity)
            instanceID.reserveCapacity(capacity)
        }

        mutating func add(
            op: String, instanceID: String, stepID: String? = nil, attempt: Int64 = 0, position: Int64? = nil, stepName: String? = nil,
            kind: String? = nil, payload: String? = nil, error: String? = nil, retry: String? = nil, owner: String? = nil,
            token: Int64 = 0, workflowName: String? = nil, serviceName: String? = nil, input: String? = nil,
            leaseMilliseconds: Int64? = nil, trace: String? = nil, applicationVersion: String? = nil
        ) {
            self.op.append(op)
            self.instanceID.append(instanceID)
            self.stepID.values.append(stepID)
            self.attempt.append(attempt)
            self.position.append(position ?? -1)
            self.stepName.values.append(stepName)
            self.kind.values.append(kind)
            self.payload.values.append(payload)
            self.error.values.append(error)
            self.retry.values.append(retry)
            self.owner.values.append(owner)
            self.token.append(token)
            self.workflowName.values.append(workflowName)
            self.serviceName.values.append(serviceName)
            self.input.values.append(input)
            self.leaseMilliseconds.append(leaseMilliseconds ?? -1)
            self.trace.values.append(trace)
            self.applicationVersion.values.append(applicationVersion)
        }
    }

    var columns: Columns
    var channel: String
    var notice: String?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 20)
        bindings.append(columns.op)
        bindings.append(columns.instanceID)
        bindings.append(columns.stepID)
        bindings.append(columns.attempt)
        bindings.append(columns.position)
        bindings.append(columns.stepName)
        bindings.append(columns.kind)
        bindings.append(columns.payload)
        bindings.append(columns.error)
        bindings.append(columns.retry)
        bindings.append(columns.owner)
        bindings.append(columns.token)
        bindings.append(columns.workflowName)
        bindings.append(columns.serviceName)
        bindings.append(columns.input)
        bindings.append(columns.leaseMilliseconds)
        bindings.append(columns.trace)
        bindings.append(channel)
        bindings.append(notice)
        bindings.append(columns.applicationVersion)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }

    /// The statement with its tables qualified by `tables`' schema.
    static func qualified(by tables: Tables) -> String {
        sql.replacingOccurrences(of: "workflow_instances", with: tables.instances)
            .replacingOccurrences(of: "workflow_history", with: tables.history)
    }

    static let sql = """
        WITH v AS MATERIALIZED (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::text[],
                                 $9::text[], $10::text[], $11::text[], $12::int8[], $13::text[], $14::text[], $15::text[],
                                 $16::int8[], $17::text[], $20::text[])
                WITH ORDINALITY AS v(op, instance_id, step_id, attempt, position, step_name, kind, payload, error, retry, owner,
                                     token, workflow_name, service_name, input, lease_ms, trace, app_version, ord)
        ), created AS (
            INSERT INTO workflow_instances
                (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token, lease_expires_at,
                 created_at, updated_at, trace_context, claimed_at, cancel_requested, app_version)
            SELECT instance_id, workflow_name, service_name, 'running', input, owner,
                   CASE WHEN owner IS NULL THEN 0 ELSE 1 END, CASE WHEN owner IS NULL THEN NULL ELSE \(now) + lease_ms END,
                   \(now), \(now), trace, CASE WHEN owner IS NULL THEN NULL ELSE \(now) END, false, app_version
            FROM v WHERE op = 'c' ORDER BY ord
            ON CONFLICT (instance_id) DO NOTHING
            RETURNING instance_id, created_at
        ), appended AS (
            INSERT INTO workflow_history
                (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
            SELECT v.instance_id, v.step_id, v.attempt, nullif(v.position, -1), v.step_name, v.kind, v.payload, v.error, v.retry,
                   \(now)
            FROM v
            WHERE v.op = 'a' AND EXISTS (
                -- The fence, one index lookup per record. FOR KEY SHARE keeps another worker's
                -- claim (FOR UPDATE) from slipping in before the commit, without blocking this
                -- worker's own renewals (a deadlock with FOR SHARE), and keeps the planner from a
                -- hash join.
                SELECT 1 FROM workflow_instances AS w
                WHERE w.instance_id = v.instance_id AND w.lease_owner = v.owner AND w.lease_token = v.token
                FOR KEY SHARE
            )
            ORDER BY v.ord
            ON CONFLICT (instance_id, step_id, attempt) DO NOTHING
            RETURNING instance_id, step_id, attempt
        ), finished AS (
            UPDATE workflow_instances AS w
            SET status = 'completed', output = v.payload, error = NULL, lease_owner = NULL, lease_expires_at = NULL,
                ready_at = NULL, cancel_requested = false, updated_at = \(now)
            FROM v
            WHERE v.op = 'f' AND w.instance_id = v.instance_id AND w.lease_owner = v.owner AND w.lease_token = v.token
                AND w.status IN ('running', 'compensating')
            RETURNING w.instance_id
        ), notified AS (
            SELECT pg_notify($18, $19) FROM finished WHERE $19 IS NOT NULL HAVING count(*) > 0
        )
        SELECT 'c', instance_id, '', 0::bigint, created_at FROM created
        UNION ALL SELECT 'a', instance_id, step_id, attempt, 0 FROM appended
        UNION ALL SELECT 'f', instance_id, '', 0, 0 FROM finished
        UNION ALL SELECT 'n', '', '', 0, 0 FROM notified
        """

    private static let now = PostgresStore.nowMilliseconds
}

/// A `text[]` parameter whose elements may be `NULL`, in PostgreSQL's binary array format
/// (PostgresNIO encodes arrays of non-optional elements only).
struct TextArray: PostgresNonThrowingEncodable {
    var values: [String?] = []

    static var psqlType: PostgresDataType { .textArray }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(values.isEmpty ? 0 : 1, as: Int32.self)   // dimensions
        buffer.writeInteger(values.contains(nil) ? 1 : 0, as: Int32.self)   // has NULLs
        buffer.writeInteger(PostgresDataType.text.rawValue)
        guard !values.isEmpty else { return }
        buffer.writeInteger(Int32(values.count))   // length
        buffer.writeInteger(1, as: Int32.self)   // lower bound
        for value in values {
            guard let value else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            buffer.writeInteger(Int32(value.utf8.count))
            buffer.writeString(value)
        }
    }
}
