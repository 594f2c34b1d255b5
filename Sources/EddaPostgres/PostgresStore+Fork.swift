@_spi(EddaStores) public import Edda
import Foundation
import PostgresNIO

/// Forks: a new instance with a copy of another's history before a step, in one transaction.
extension PostgresStore {
    @_spi(EddaStores) public func createFork(_ instance: NewInstance, of original: String, fromStep: String, before: Int64) async throws
        -> CreateInstanceOutcome
    {
        let (workflowTimeout, runTimeout) = (instance.timeouts.workflow?.milliseconds, instance.timeouts.run?.milliseconds)
        let outcome = try await perform("fork an instance") { [self] () -> CreateInstanceOutcome in
            try await client.withTransaction(logger: logger) { connection -> CreateInstanceOutcome in
                let inserted = try await connection.query(
                    """
                    INSERT INTO \(unescaped: tables.instances)
                        (instance_id, workflow_name, service_name, status, input, lease_token, created_at, updated_at, trace_context,
                         workflow_timeout_ms, run_timeout_ms, workflow_deadline_at, deadline_at, forked_from, forked_from_step, app_version)
                    VALUES (\(instance.instanceID), \(instance.workflowName), \(instance.serviceName), 'running', \(instance.input.json), 0,
                            \(unescaped: Self.nowMilliseconds), \(unescaped: Self.nowMilliseconds), \(instance.storedTraceContext),
                            \(workflowTimeout)::bigint, \(runTimeout)::bigint, \(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint,
                            LEAST(\(unescaped: Self.nowMilliseconds) + \(workflowTimeout)::bigint, \(unescaped: Self.nowMilliseconds) + \(runTimeout)::bigint),
                            \(original), \(fromStep), \(instance.applicationVersion))
                    ON CONFLICT (instance_id) DO NOTHING
                    RETURNING \(unescaped: Self.instanceColumns)
                    """,
                    logger: logger
                )
                var created: WorkflowInstance?
                for try await row in inserted { created = try Self.instance(from: row).instance }
                guard let created else {
                    guard let existing = try await self.instance(instance.instanceID) else {
                        throw StoreError(.database, "Fork \(instance.instanceID) of \(original) could not be inserted.")
                    }
                    return .existing(existing)
                }
                // The copies, in the original's order: new sequence numbers, the same steps.
                try await connection.query(
                    """
                    INSERT INTO \(unescaped: tables.history)
                        (instance_id, step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at)
                    SELECT \(instance.instanceID), step_id, attempt, position, step_name, kind, payload, error, retry_metadata, recorded_at
                    FROM \(unescaped: tables.history)
                    WHERE instance_id = \(original) AND sequence < \(before) AND kind <> 'Retried' ORDER BY sequence
                    """,
                    logger: logger
                ).collect()
                return .created(created, lease: nil)
            }
        }
        if case .created = outcome {
            wakeUps.notify()
            notifier.post(.ready)
        }
        return outcome
    }
}
