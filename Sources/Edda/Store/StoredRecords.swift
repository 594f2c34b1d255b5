import Foundation

// How instances and history records map to a backend's columns: the encoding and decoding every
// SQL backend shares, so that they read and write the same text and fail the same way on bad rows.

extension InstanceOutcome {
    /// The `status`, `output` and `error` columns that record this outcome (JSON text).
    package func storedColumns() throws -> (status: String, output: String?, error: String?) {
        switch self {
        case .completed(let payload):
            (InstanceStatus.completed.rawValue, payload.json, nil)
        case .failed(let record):
            (InstanceStatus.failed.rawValue, nil, try JSONPayload.encode(record).json)
        case .cancelled(let record):
            (InstanceStatus.cancelled.rawValue, nil, try JSONPayload.encode(record).json)
        }
    }
}

extension HistoryEvent {
    /// The `attempt`, `error` and `retry_metadata` columns of this record. Outcomes take attempt 0,
    /// so a unique index on (instance, step, attempt) allows one per step; failed attempts their number.
    package func storedColumns() throws -> (attempt: Int64, error: String?, retry: String?) {
        (
            Int64(kind.isOutcome ? 0 : (retry?.totalAttempts ?? 1)),
            try error.map { try JSONPayload.encode($0).json },
            try retry.map { try JSONPayload.encode($0).json }
        )
    }
}

extension NewInstance {
    /// The `trace_context` column: the trace context as a JSON object, or `NULL`.
    package var storedTraceContext: String? {
        traceContext.flatMap { try? JSONPayload.encode($0).json }
    }
}

extension WorkflowInstance {
    /// Builds an instance from its stored columns (times in milliseconds since 1970). What cannot be
    /// read — an unknown status, an unreadable error column — is named in ``unreadable`` rather than
    /// thrown, so that one bad row does not hide the others.
    package init(
        storedID id: String, workflowName: String, serviceName: String, status statusText: String, input: String,
        output: String?, error errorText: String?, createdAt: Int64, updatedAt: Int64, leaseOwner: String?, readyAt: Int64?,
        cancelRequested: Bool = false, parentInstanceID: String? = nil, runNumber: Int = 1, traceContext: String? = nil,
        claimedAt: Int64? = nil, queue: String? = nil, priority: Int = 0, partitionKey: String? = nil,
        deadline: StoredDeadline = StoredDeadline(), forkedFrom: String? = nil, forkedFromStep: String? = nil,
        applicationVersion: String? = nil
    ) {
        var problems: [String] = []
        let status = InstanceStatus(stored: statusText)
        if !status.isKnown { problems.append("status '\(statusText)' is not one this version of Edda knows") }
        var error: ErrorRecord?
        do {
            error = try errorText.map { try JSONPayload(json: $0).decode(ErrorRecord.self) }
        } catch let cause {
            problems.append("the error column cannot be read (\(cause))")
            error = ErrorRecord(type: "UnreadableRecord", message: "The stored error cannot be read.")
        }
        self.init(
            instanceID: id, workflowName: workflowName, serviceName: serviceName, status: status, input: JSONPayload(json: input),
            output: output.map(JSONPayload.init(json:)), error: error, createdAt: Date(storedMilliseconds: createdAt),
            updatedAt: Date(storedMilliseconds: updatedAt), leaseOwner: leaseOwner, readyAt: readyAt.map(Date.init(storedMilliseconds:)),
            cancelRequested: cancelRequested, parentInstanceID: parentInstanceID, runNumber: runNumber,
            // A trace context that cannot be read only costs the link to the starting trace.
            traceContext: traceContext.flatMap { try? JSONPayload(json: $0).decode([String: String].self) },
            lastClaimedAt: claimedAt.map(Date.init(storedMilliseconds:)), queue: queue, priority: priority,
            partitionKey: partitionKey.flatMap { $0.isEmpty ? nil : $0 }
        )
        if !problems.isEmpty { unreadable = "Instance \(id): " + problems.joined(separator: "; ") + "." }
        self.deadline = deadline.deadlineAt.map(Date.init(storedMilliseconds:))
        self.workflowDeadline = deadline.workflowDeadlineAt.map(Date.init(storedMilliseconds:))
        self.workflowTimeout = deadline.workflowTimeoutMilliseconds.map { .milliseconds($0) }
        self.runTimeout = deadline.runTimeoutMilliseconds.map { .milliseconds($0) }
        self.queueDeadline = deadline.queueDeadlineAt.map(Date.init(storedMilliseconds:))
        self.queueTimeout = deadline.queueTimeoutMilliseconds.map { .milliseconds($0) }
        self.forkedFrom = forkedFrom
        self.forkedFromStep = forkedFromStep
        self.applicationVersion = applicationVersion
    }
}

/// The deadline columns of an instance: `deadline_at`, `workflow_deadline_at` (milliseconds since
/// 1970, the database's clock), `workflow_timeout_ms` and `run_timeout_ms`.
package struct StoredDeadline: Sendable {
    package var deadlineAt: Int64?
    package var workflowDeadlineAt: Int64?
    package var workflowTimeoutMilliseconds: Int64?
    package var runTimeoutMilliseconds: Int64?
    /// `queue_deadline_at` and `queue_timeout_ms`: see ``WorkflowInstance/queueDeadline``.
    package var queueDeadlineAt: Int64?
    package var queueTimeoutMilliseconds: Int64?

    package init(
        deadlineAt: Int64? = nil, workflowDeadlineAt: Int64? = nil, workflowTimeoutMilliseconds: Int64? = nil, runTimeoutMilliseconds: Int64? = nil,
        queueDeadlineAt: Int64? = nil, queueTimeoutMilliseconds: Int64? = nil
    ) {
        self.deadlineAt = deadlineAt
        self.workflowDeadlineAt = workflowDeadlineAt
        self.workflowTimeoutMilliseconds = workflowTimeoutMilliseconds
        self.runTimeoutMilliseconds = runTimeoutMilliseconds
        self.queueDeadlineAt = queueDeadlineAt
        self.queueTimeoutMilliseconds = queueTimeoutMilliseconds
    }

    /// When a queued instance inserted at `now` with these deadlines and `placement` leaves the line
    /// unadmitted (`dequeue_at`): the earlier of its queue deadline and its deadline — or `now`, for
    /// one born cancel-requested.
    package func dequeueAt(now: Int64, cancelRequested: Bool) -> Int64? {
        cancelRequested ? now : [queueDeadlineAt, deadlineAt].compactMap(\.self).min()
    }
}

extension InstanceTimeouts {
    /// The deadline columns of an instance inserted at `now` (the store's clock), under a parent
    /// whose deadline is `parentDeadline`: the earlier of the parent's and its own.
    package func storedDeadline(now: Int64, parentDeadline: Int64?) -> StoredDeadline {
        let workflow = self.workflow?.milliseconds
        let run = self.run?.milliseconds
        let workflowDeadline = [workflow.map { now + $0 }, parentDeadline].compactMap(\.self).min()
        return StoredDeadline(
            deadlineAt: [workflowDeadline, run.map { now + $0 }].compactMap(\.self).min(), workflowDeadlineAt: workflowDeadline,
            workflowTimeoutMilliseconds: workflow, runTimeoutMilliseconds: run
        )
    }
}

extension HistoryEvent {
    /// Builds a record from its stored columns, or throws ``StoreError/Code-swift.struct/corruptRecord``
    /// naming the instance, the step and the bad column.
    package init(
        storedSequence sequence: Int64, instanceID: String, stepID: String, position: Int?, name: String, kind kindText: String,
        payload: String?, error errorText: String?, retry retryText: String?, recordedAt: Int64
    ) throws {
        guard let kind = HistoryEventKind(rawValue: kindText) else {
            throw StoreError(
                .corruptRecord, "Step '\(stepID)' of instance \(instanceID) has kind '\(kindText)', which this version of Edda does not know."
            )
        }
        let error: ErrorRecord?
        let retry: RetryMetadata?
        do {
            error = try errorText.map { try JSONPayload(json: $0).decode(ErrorRecord.self) }
            retry = try retryText.map { try JSONPayload(json: $0).decode(RetryMetadata.self) }
        } catch {
            throw StoreError(.corruptRecord, "Step '\(stepID)' of instance \(instanceID) has unreadable error or retry metadata.", cause: error)
        }
        self.init(
            sequence: sequence, instanceID: instanceID, stepID: stepID, position: position, name: name, kind: kind,
            payload: payload.map(JSONPayload.init(json:)), error: error, retry: retry, recordedAt: Date(storedMilliseconds: recordedAt)
        )
    }
}

extension StoreError {
    /// The error of a fenced write that changed nothing: the lease is no longer held.
    package static func leaseLost(_ lease: Lease) -> StoreError {
        StoreError(
            .leaseLost,
            "The lease on instance \(lease.instanceID) (owner \(lease.owner), token \(lease.token)) is no longer held: "
                + "another worker claimed the instance, or it finished. Nothing was written."
        )
    }
}

extension Date {
    /// A time stored as milliseconds since 1970.
    package init(storedMilliseconds milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}

extension CloudEvent {
    /// The `extensions` column of an outbox event: a JSON object, or `NULL` when there are none.
    package var storedExtensions: String? {
        extensions.isEmpty ? nil : try? JSONPayload.encode(extensions).json
    }

    /// Reads the `extensions` column; a value that cannot be read leaves the event without them.
    package static func extensions(stored text: String?) -> [String: String] {
        text.flatMap { try? JSONPayload(json: $0).decode([String: String].self) } ?? [:]
    }
}
