@_spi(EddaStores) import Edda
import Foundation
import PostgresNIO

extension PostgresStore {
    /// An instance row, with the lease columns the engine needs after a claim.
    struct DecodedInstance {
        var instance: WorkflowInstance
        var leaseToken: Int64
    }

    static let instanceColumns = instanceColumns(prefix: "")

    static func instanceColumns(prefix: String) -> String {
        [
            "instance_id", "workflow_name", "service_name", "status", "input", "output", "error", "created_at",
            "updated_at", "lease_owner", "ready_at", "lease_token", "cancel_requested", "parent_instance_id", "run_generation",
            "trace_context", "claimed_at", "queue_name", "priority", "partition_key", "deadline_at", "workflow_deadline_at",
            "workflow_timeout_ms", "run_timeout_ms", "queue_deadline_at", "queue_timeout_ms", "forked_from", "forked_from_step",
            "app_version",
        ].map { prefix + $0 }.joined(separator: ", ")
    }

    static let historyColumns = "sequence, instance_id, step_id, position, step_name, kind, payload, error, retry_metadata, recorded_at"

    static func instance(from row: PostgresRow) throws -> DecodedInstance {
        let (id, workflowName, serviceName, status, input, output, error, createdAt, updatedAt, leaseOwner, readyAt, leaseToken,
             cancelRequested, parentInstanceID, runNumber, traceContext, claimedAt, queue, priority, partitionKey, deadlineAt,
             workflowDeadlineAt, workflowTimeout, runTimeout, queueDeadlineAt, queueTimeout, forkedFrom, forkedFromStep, applicationVersion) =
            try row.decode(
                (String, String, String, String, String, String?, String?, Int64, Int64, String?, Int64?, Int64, Bool, String?, Int32, String?,
                 Int64?, String?, Int32, String, Int64?, Int64?, Int64?, Int64?, Int64?, Int64?, String?, String?, String?).self
            )
        let instance = WorkflowInstance(
            storedID: id, workflowName: workflowName, serviceName: serviceName, status: status, input: input, output: output,
            error: error, createdAt: createdAt, updatedAt: updatedAt, leaseOwner: leaseOwner, readyAt: readyAt,
            cancelRequested: cancelRequested, parentInstanceID: parentInstanceID, runNumber: Int(runNumber), traceContext: traceContext,
            claimedAt: claimedAt, queue: queue, priority: Int(priority), partitionKey: partitionKey,
            deadline: StoredDeadline(
                deadlineAt: deadlineAt, workflowDeadlineAt: workflowDeadlineAt, workflowTimeoutMilliseconds: workflowTimeout,
                runTimeoutMilliseconds: runTimeout, queueDeadlineAt: queueDeadlineAt, queueTimeoutMilliseconds: queueTimeout
            ),
            forkedFrom: forkedFrom, forkedFromStep: forkedFromStep, applicationVersion: applicationVersion
        )
        return DecodedInstance(instance: instance, leaseToken: leaseToken)
    }

    static func historyEvent(from row: PostgresRow) throws -> HistoryEvent {
        let (sequence, instanceID, stepID, position, name, kind, payload, error, retry, recordedAt) =
            try row.decode((Int64, String, String, Int64?, String, String, String?, String?, String?, Int64).self)
        return try HistoryEvent(
            storedSequence: sequence, instanceID: instanceID, stepID: stepID, position: position.map(Int.init), name: name, kind: kind,
            payload: payload, error: error, retry: retry, recordedAt: recordedAt
        )
    }
}
