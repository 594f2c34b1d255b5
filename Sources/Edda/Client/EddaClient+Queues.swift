import Foundation

/// Queues: starting on one, registering one, and reading them.
extension EddaClient {
    /// Validates the arguments and creates an instance on `queue`: it is ``InstanceStatus/queued``
    /// until a worker admits it within the queue's limits (see ``Queue``), lowest `priority` number
    /// first, oldest first within a priority.
    ///
    /// The queue is registered (``register(_:)``) if it was not, and its limits are written to the
    /// store if this process has not written them yet.
    /// An instance on a queue is never leased to this app's worker at creation, even when it has room:
    /// every start goes through the queue.
    ///
    /// ```swift
    /// let payments = Queue("payments", concurrency: 5, workerConcurrency: 2)
    /// let handle = try await client.start(charge, order, on: payments, priority: 0, deduplicationID: "order-\(order.id)")
    /// ```
    ///
    /// - Parameters:
    ///   - workflow: The workflow to run; registered (in ``registry``) if it was not.
    ///   - arguments: Its arguments.
    ///   - instanceID: The instance's ID. Defaults to a new UUID. An existing ID behaves as in ``start(_:_:instanceID:timeout:runTimeout:)``.
    ///   - queue: The queue to start it on.
    ///   - priority: Lower numbers are admitted first; 0 by default. Negative numbers are allowed.
    ///   - deduplicationID: While an instance started on this queue with this ID is queued or running,
    ///     another start with it is refused; once that instance has finished, the ID is free again.
    ///   - partitionKey: On a ``Queue/partitioned`` queue, the partition whose limits it counts against
    ///     (required there, refused elsewhere).
    ///   - queueTimeout: If it is still queued this long from now — no worker admitted it — it is taken
    ///     out of line and cancelled, whatever the queue's limits, with ``DeadlineExceeded`` of kind
    ///     ``DeadlineExceeded/Kind-swift.struct/queueTimeout`` as the reason. `nil` (the default): it waits its turn however long.
    ///   - timeout: The workflow timeout, counted from now (queued time included). Defaults to the workflow's.
    ///   - runTimeout: The timeout of each run. Defaults to the workflow's.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/deduplicationIDInUse`` (its
    ///   ``EngineError/instanceID`` is the instance holding the ID; nothing was written),
    ///   ``EngineError/Code-swift.struct/invalidQueueOptions``, or any error of ``start(_:_:instanceID:timeout:runTimeout:)``.
    @discardableResult
    public func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        instanceID: String? = nil,
        on queue: Queue,
        priority: Int = 0,
        deduplicationID: String? = nil,
        partitionKey: String? = nil,
        queueTimeout: Duration? = nil,
        timeout: Duration? = nil,
        runTimeout: Duration? = nil
    ) async throws -> WorkflowHandle<Output> {
        let placement = try Self.placement(
            on: queue, priority: priority, deduplicationID: deduplicationID, partitionKey: partitionKey, timeout: queueTimeout, instanceID: instanceID
        )
        try await declare(queue)
        return try await start(
            workflow, repeat each arguments, instanceID: instanceID, placement: placement, timeouts: InstanceTimeouts(workflow: timeout, run: runTimeout)
        )
    }

    /// Where a start on `queue` goes, or a typed error when its options do not fit the queue.
    static func placement(
        on queue: Queue, priority: Int, deduplicationID: String?, partitionKey: String?, timeout: Duration? = nil, instanceID: String?
    ) throws -> QueuePlacement {
        if let timeout, timeout < .milliseconds(1) {
            throw EngineError(
                .invalidQueueOptions,
                "A queue timeout must be at least 1 ms; it is \(timeout). Leave it out to let the instance wait its turn however long. "
                    + "Nothing was started.",
                instanceID: instanceID
            )
        }
        if queue.partitioned, partitionKey?.isEmpty ?? true {
            throw EngineError(
                .invalidQueueOptions,
                "Queue '\(queue.name)' is partitioned: its limits apply per partition key, so a start on it needs a non-empty "
                    + "partitionKey (a customer or tenant ID, say). Nothing was started.",
                instanceID: instanceID
            )
        }
        if !queue.partitioned, partitionKey != nil {
            throw EngineError(
                .invalidQueueOptions,
                "Queue '\(queue.name)' is not partitioned, so a start on it takes no partition key. Declare it with "
                    + "Queue(\"\(queue.name)\", …, partitioned: true) for limits per key, or leave the key out. Nothing was started.",
                instanceID: instanceID
            )
        }
        return QueuePlacement(queue: queue.name, priority: priority, deduplicationID: deduplicationID, partitionKey: partitionKey, timeout: timeout)
    }

    /// Registers `queue` with this client's registry: a worker admits queued instances only of the
    /// queues registered with its app. Its limits are written to the store — where every worker's
    /// claims read them — when the app's worker starts, or at the first start on it from this
    /// process. Registering a queue again with other limits replaces them, for every worker, once written.
    public func register(_ queue: Queue) {
        registry.register(queue)
    }

    /// Writes `queue`'s limits to the store unless this process already wrote them.
    func declare(_ queue: Queue) async throws {
        registry.register(queue)
        guard !registry.isDeclared(queue) else { return }
        try await store.declareQueues([queue])
        registry.markDeclared([queue])
    }

    /// Every queue declared in the store, with its limits and how many of its instances are queued
    /// and running: ``InstanceReader/queues()``.
    public func queues() async throws -> [QueueSummary] {
        try await store.queues()
    }

    /// The application versions with unfinished instances, with their counts: a version that is no
    /// longer listed needs no workers any more. ``InstanceReader/applicationVersions()``.
    public func applicationVersions() async throws -> [ApplicationVersionSummary] {
        try await store.applicationVersions()
    }

    /// Where a queued instance stands on its queue (1: next to be admitted), or `nil` when it is not
    /// queued: ``InstanceReader/queuePosition(of:)``.
    public func queuePosition(of instanceID: String) async throws -> Int? {
        try await store.queuePosition(of: instanceID)
    }
}
