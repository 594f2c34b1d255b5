/// The write path of a workflow run.
///
/// Every write but ``createInstance(_:leasedTo:)`` carries the run's ``Lease`` and is **fenced**:
/// the store checks, in the same statement or transaction as the write, that the instance's lease
/// owner and token still match. If they do not — another worker claimed the instance, or the
/// instance finished — the write changes nothing and throws ``StoreError`` with code
/// ``StoreError/Code-swift.struct/leaseLost``. The check must not cost a round trip of its own.
///
/// A conforming type must also:
/// - make every write durable before returning (per its configured durability);
/// - never rewrite or delete a history record once appended;
/// - reject a second outcome record (``HistoryEventKind/isOutcome``) with the same instance and step ID.
public protocol WorkflowStore: InstanceReader {
    /// Inserts a new instance in status ``InstanceStatus/running``, or returns the existing one with
    /// the same ID, untouched.
    ///
    /// An instance with a ``NewInstance/placement`` is inserted ``InstanceStatus/queued``, unleased
    /// (`lease` is ignored), with its queue, priority and deduplication ID. If another instance queued
    /// or running (or compensating) on the same queue holds the same deduplication ID, nothing is
    /// inserted and the store returns ``CreateInstanceOutcome/deduplicated(holder:)``; the check and
    /// the insert are one statement (a unique index), so two concurrent starts cannot both pass.
    ///
    /// A child workflow (``NewInstance/parentInstanceID``) whose parent is cancel-requested or has
    /// finished is inserted cancel-requested (``WorkflowInstance/cancelRequested``), checked in the
    /// inserting statement or transaction: its parent may start it before hearing of its own
    /// cancellation, and no concurrent ``WorkQueue/requestCancellation(of:)`` of the parent may slip
    /// between the check and the insert (the cancellation marks the child, or the child sees the mark).
    ///
    /// - Parameter lease: When given, the new instance is created already leased to that worker
    ///   (token 1), so it runs there at once with no claim. When `nil`, it is created ready, for any
    ///   worker to claim, and the store's ``WorkQueue/wakeUps`` are notified.
    @_spi(EddaStores) func createInstance(_ instance: NewInstance, leasedTo lease: LeaseRequest?) async throws -> CreateInstanceOutcome

    /// Inserts `instance` unleased and `running` (on no queue), forked from `original` at step
    /// `fromStep`, with a copy of `original`'s history records before sequence number `before` —
    /// except ``HistoryEventKind/retried`` records — in one transaction, unless the ID exists
    /// (``CreateInstanceOutcome/existing(_:)``, nothing written). The copies keep their step IDs,
    /// positions, payloads, errors and times; `original` is not changed.
    @_spi(EddaStores) func createFork(_ instance: NewInstance, of original: String, fromStep: String, before: Int64) async throws
        -> CreateInstanceOutcome

    /// Appends one history record in its own transaction (or a shared group commit), fenced by
    /// `lease`. Returns once the record is durable.
    @_spi(EddaStores) func append(_ event: HistoryEvent, lease: Lease) async throws

    /// Appends a step's outcome together with what the step asked to commit with it, in one
    /// transaction fenced by `lease`: run `transaction`'s bodies with the store's connection
    /// (``StepTransaction/run(session:savepoint:)``), insert its ``StepTransaction/outboxEvents``,
    /// then the record. If a body throws, roll back all of it and rethrow; other writers sharing a
    /// group commit must not be affected. (A body that ends the transaction itself — `COMMIT`,
    /// `ROLLBACK` — breaks this; the API forbids it.)
    @_spi(EddaStores) func append(_ event: HistoryEvent, with transaction: StepTransaction, lease: Lease) async throws

    /// Runs a whole attempt of a ``TransactionMode/wholeBody`` step inside one transaction fenced by
    /// `lease`, and appends the record it returns in that transaction.
    ///
    /// Open a transaction, check the fence (and hold it: a claim of the instance must wait for this
    /// transaction or make it fail), call ``StepTransaction/run(session:savepoint:then:)`` with the
    /// connection and `attempt`, insert ``StepTransaction/outboxEvents`` and the returned record, and
    /// commit. If `attempt` throws, roll back and rethrow. A store may bound how long `attempt` runs
    /// (it cannot be stopped, only abandoned): past that, close the connection — so that the
    /// transaction rolls back and nothing the abandoned body still holds can reach the database —
    /// and fail the attempt through ``StepTransaction/refuse(_:)``. A store that cannot hold a transaction
    /// across async work fails the step: throw ``StepTransaction/refuse(_:)`` with a
    /// ``TerminalError`` (the default implementation does).
    @_spi(EddaStores) func appendRunningAttempt<Result: Sendable>(
        _ transaction: StepTransaction, lease: Lease,
        attempt: @escaping @Sendable () async throws -> (HistoryEvent, Result)
    ) async throws -> Result

    /// Starts a new run of the leased instance with `input` (continue-as-new), in one transaction:
    /// the current run's history is moved to the archive under its run number, the instance's input
    /// is replaced and its run number grows by one.
    ///
    /// The lease is kept, for the new run, but its fencing token grows by one, so that a write of the
    /// finished run still in flight (from a task its workflow left running) is refused instead of
    /// landing in the new run's history.
    ///
    /// - Returns: The lease the new run writes under: the same owner and expiry, the next token.
    @_spi(EddaStores) func continueAsNew(lease: Lease, input: JSONPayload) async throws -> Lease

    /// Moves the leased instance from running to ``InstanceStatus/compensating``.
    @_spi(EddaStores) func markCompensating(lease: Lease) async throws

    /// Records how the leased instance ended — status, output or error — and ends the lease; drops
    /// its open waits and clears a pending cancellation request (one that lost the race with this
    /// outcome: a finished instance is never ``WorkflowInstance/cancelRequested``). For a child workflow (`parent` is its ``WorkflowInstance/parentInstanceID``),
    /// reports the outcome to the parent in the same transaction: a ``HistoryEventKind/messageReceived``
    /// record if the parent waits for it, or a message kept for it on the child's event channel, and
    /// the parent made ready (or, leased, marked to be ready when released).
    @_spi(EddaStores) func finishInstance(lease: Lease, with outcome: InstanceOutcome, reportingTo parent: String?) async throws
}

extension WorkflowStore {
    /// Records how the leased instance (not a child workflow) ended.
    @_spi(EddaStores) public func finishInstance(lease: Lease, with outcome: InstanceOutcome) async throws {
        try await finishInstance(lease: lease, with: outcome, reportingTo: nil)
    }
}

extension WorkflowStore {
    /// Refuses: this store runs no activity body inside its transaction.
    @_spi(EddaStores) public func appendRunningAttempt<Result: Sendable>(
        _ transaction: StepTransaction, lease: Lease,
        attempt: @escaping @Sendable () async throws -> (HistoryEvent, Result)
    ) async throws -> Result {
        throw transaction.refuse(
            TerminalError(
                "\(Self.self) cannot run an activity's whole body inside its transaction (TransactionMode.wholeBody). "
                    + "Use the default mode and put the database work in ctx.transaction, or use a store that supports it."
            )
        )
    }
}

/// Result of ``WorkflowStore/createInstance(_:leasedTo:)``.
@_spi(EddaStores) public enum CreateInstanceOutcome: Sendable {
    /// The instance was inserted; `lease` is the creator's when it asked for one.
    case created(WorkflowInstance, lease: Lease?)
    /// An instance with that ID already existed; it is returned as stored.
    case existing(WorkflowInstance)
    /// The instance was started on a queue (``NewInstance/placement``) with a deduplication ID that
    /// this instance, queued or running on that queue, holds; nothing was inserted.
    case deduplicated(holder: WorkflowInstance)
}
