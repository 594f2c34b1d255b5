@_spi(EddaStores) public import Edda
import Foundation
import GRDB

/// Forks on the file: a new instance with a copy of another's history before a step, in one write.
extension SQLiteStore {
    @_spi(EddaStores) public func createFork(_ instance: NewInstance, of original: String, fromStep: String, before: Int64) async throws
        -> CreateInstanceOutcome
    {
        let outcome = try await write { db -> CreateInstanceOutcome in
            let now = Self.now()
            let deadline = try Self.storedDeadline(of: instance, now: now, db)
            let inserted = try Row.fetchOne(
                db,
                sql: """
                    INSERT INTO workflow_instances
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         deadline_at, workflow_deadline_at, workflow_timeout_ms, run_timeout_ms, forked_from, forked_from_step, app_version)
                    VALUES (?, ?, ?, 'running', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (instance_id) DO NOTHING
                    RETURNING *
                    """,
                arguments: [
                    instance.instanceID, instance.workflowName, instance.serviceName, instance.input.json, now, now, instance.storedTraceContext,
                    deadline.deadlineAt, deadline.workflowDeadlineAt, deadline.workflowTimeoutMilliseconds, deadline.runTimeoutMilliseconds,
                    original, fromStep, instance.applicationVersion,
                ]
            )
            guard let inserted else {
                guard let existing = try Row.fetchOne(db, sql: "SELECT * FROM workflow_instances WHERE instance_id = ?", arguments: [instance.instanceID])
                else { throw StoreError(.database, "Fork \(instance.instanceID) of \(original) could not be inserted.") }
                return .existing(try Self.instance(from: existing))
            }
            // The copies, in the original's order: new sequence numbers, the same steps.
            try db.execute(
                sql: """
                    INSERT INTO workflow_history
                        (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
                    SELECT ?, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at
                    FROM workflow_history WHERE instance_id = ? AND sequence < ? AND kind <> 'Retried' ORDER BY sequence
                    """,
                arguments: [instance.instanceID, original, before]
            )
            return .created(try Self.instance(from: inserted), lease: nil)
        }
        if case .created = outcome { wakeUps.notify() }
        return outcome
    }
}
