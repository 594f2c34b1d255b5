/// A named queue of workflow instances with limits on how many of them run at once.
///
/// Declare a queue in code, register it with the app (its worker writes the limits to the store when
/// it starts, so that every worker on the store honours the same ones) and start workflows on it:
///
/// ```swift
/// let payments = Queue("payments", concurrency: 5, workerConcurrency: 2)
/// app.register(payments)
/// try await app.start(chargeCard, order, on: payments, priority: 1, deduplicationID: "order-\(order.id)")
/// ```
///
/// An instance started on a queue is ``InstanceStatus/queued`` until a worker admits it. A claim
/// admits queued instances, lowest ``start(_:_:instanceID:on:priority:deduplicationID:timeout:runTimeout:)`` priority
/// number first and oldest first within a priority, while fewer than ``concurrency`` instances of the
/// queue are admitted and unfinished across all workers, and fewer than ``workerConcurrency`` of them
/// are leased to the claiming worker. An admitted instance holds its place until it finishes —
/// completed, failed or cancelled — including while it waits on a timer, an event or a message.
public struct Queue: Sendable, Hashable {
    /// The queue's name, unique per store.
    public let name: String
    /// At most this many of the queue's instances are admitted and unfinished at once, across all workers.
    public let concurrency: Int
    /// At most this many of the queue's instances are leased to one worker at a time, when admitted.
    public let workerConcurrency: Int

    /// Declares a queue.
    ///
    /// - Parameters:
    ///   - name: The queue's name: what the store keys its limits and instances by.
    ///   - concurrency: How many of its instances may run at once across all workers (at least 1).
    ///   - workerConcurrency: How many may run at once on one worker; defaults to `concurrency`.
    public init(_ name: String, concurrency: Int, workerConcurrency: Int? = nil) {
        precondition(!name.isEmpty, "A queue needs a name.")
        precondition(concurrency > 0, "Queue '\(name)': concurrency must be at least 1.")
        precondition((workerConcurrency ?? 1) > 0, "Queue '\(name)': workerConcurrency must be at least 1.")
        self.name = name
        self.concurrency = concurrency
        self.workerConcurrency = min(workerConcurrency ?? concurrency, concurrency)
    }
}

/// Where a started instance goes when it is started on a queue: what ``NewInstance`` carries to the store.
@_spi(EddaStores) public struct QueuePlacement: Sendable, Hashable {
    /// The queue's name.
    public var queue: String
    /// Lower numbers are admitted first.
    public var priority: Int
    /// While an instance with this ID on the queue is queued or running, no other starts on it.
    public var deduplicationID: String?

    public init(queue: String, priority: Int = 0, deduplicationID: String? = nil) {
        self.queue = queue
        self.priority = priority
        self.deduplicationID = deduplicationID
    }
}
