/// The seam between the engine and a database.
///
/// The engine speaks to storage in a few coarse operations, each one transaction, so a backend can
/// make each a single round trip (and batch many callers' appends into one commit). Backends:
/// `SQLiteStore` in `EddaSQLite` (the embedded default).
///
/// A conforming type must:
/// - make every write durable before returning (per its configured durability);
/// - never rewrite or delete a history record once appended;
/// - reject a second outcome record (``HistoryEventKind/isOutcome``) with the same instance and step ID.
public protocol Store: Sendable {
    /// Makes this process a worker on the store. A SQLite store takes the file's ownership lock here
    /// and throws ``StoreError/Code-swift.struct/databaseInUse`` if another process holds it.
    func attachWorker(_ workerID: String) async throws

    /// Releases what ``attachWorker(_:)`` took.
    func detachWorker(_ workerID: String) async throws

    /// Inserts a new instance in status ``InstanceStatus/running``, or returns the existing one with
    /// the same ID, untouched.
    func createInstance(_ instance: NewInstance) async throws -> CreateInstanceOutcome

    /// Appends one history record in its own transaction (or a shared group commit).
    /// Returns once the record is durable.
    func append(_ event: NewHistoryEvent) async throws

    /// Appends a step's outcome together with what the step asked to commit with it, in one
    /// transaction: run `transaction`'s bodies with the store's connection
    /// (``StepTransaction/run(session:savepoint:)``), insert its ``StepTransaction/outboxEvents``,
    /// then the record. If a body throws, roll back all of it and rethrow; other writers sharing a
    /// group commit must not be affected. (A body that ends the transaction itself — `COMMIT`,
    /// `ROLLBACK` — breaks this; the API forbids it.)
    func append(_ event: NewHistoryEvent, with transaction: StepTransaction) async throws

    /// Moves a running instance to ``InstanceStatus/compensating``.
    func markCompensating(_ instanceID: String) async throws

    /// Records how an instance ended: status, output or error. Only a running or compensating
    /// instance changes; a finished one is left as it is.
    func finishInstance(_ instanceID: String, with outcome: InstanceOutcome) async throws

    /// One instance, or `nil`.
    func instance(_ instanceID: String) async throws -> WorkflowInstance?

    /// An instance's history in append order.
    func history(of instanceID: String) async throws -> [HistoryEvent]

    /// Instances matching the query, newest first.
    func instances(matching query: InstanceQuery) async throws -> [WorkflowInstance]

    /// Takes over every instance left ``InstanceStatus/running`` or ``InstanceStatus/compensating``
    /// whose worker is gone, and returns them, oldest first. On SQLite that is every such instance:
    /// one process owns the file.
    func claimResumableInstances(workerID: String) async throws -> [WorkflowInstance]
}

/// Result of ``Store/createInstance(_:)``.
public enum CreateInstanceOutcome: Sendable {
    /// The instance was inserted.
    case created(WorkflowInstance)
    /// An instance with that ID already existed; it is returned as stored.
    case existing(WorkflowInstance)
}
