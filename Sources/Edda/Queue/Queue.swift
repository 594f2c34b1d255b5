/// A named queue of workflow instances with limits on how many of them run at once, and how often
/// they may start.
///
/// Declare a queue in code, register it with the app (its worker writes the limits to the store when
/// it starts, so that every worker on the store honours the same ones) and start workflows on it:
///
/// ```swift
/// let payments = Queue("payments", concurrency: 5, workerConcurrency: 2, rateLimit: .init(10, per: .seconds(60)))
/// app.register(payments)
/// try await app.start(chargeCard, order, on: payments, priority: 1, deduplicationID: "order-\(order.id)")
/// ```
///
/// An instance started on a queue is ``InstanceStatus/queued`` until a worker admits it. A claim
/// admits queued instances, lowest ``EddaApp/start(_:_:instanceID:on:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)`` priority
/// number first and oldest first within a priority, while fewer than ``concurrency`` instances of the
/// queue are admitted and unfinished across all workers, fewer than ``workerConcurrency`` of them
/// are leased to the claiming worker, and fewer than the ``rateLimit`` allows were admitted within
/// its period before now. An admitted instance holds its place until it finishes — completed,
/// failed or cancelled — including while it waits on a timer, an event or a message.
public struct Queue: Sendable, Hashable {
    /// At most ``limit`` admissions (starts) within any ``period``, across all workers.
    ///
    /// The store checks it against its own clock at each admission: the instances of the queue
    /// admitted within the period before now must be fewer than the limit. So any span of time as
    /// long as the period holds at most `limit` admissions. An instance admitted again after a retry
    /// counts once, at its latest admission.
    public struct RateLimit: Sendable, Hashable {
        /// How many admissions a period allows (at least 1).
        public let limit: Int
        /// The period: at least one millisecond.
        public let period: Duration

        /// At most `limit` starts per `period`: `.init(10, per: .seconds(60))`.
        public init(_ limit: Int, per period: Duration) {
            precondition(limit > 0, "A queue's rate limit must allow at least 1 start per period.")
            precondition(period >= .milliseconds(1), "A queue's rate limit needs a period of at least 1 ms.")
            self.limit = limit
            self.period = period
        }

        /// The period in whole milliseconds, as stores keep it (at least 1).
        @_spi(EddaStores) public var periodMilliseconds: Int64 {
            let (seconds, attoseconds) = period.components
            return max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        }
    }

    /// The queue's name, unique per store.
    public let name: String
    /// At most this many of the queue's instances are admitted and unfinished at once, across all
    /// workers; `nil` for no limit.
    public let concurrency: Int?
    /// At most this many of the queue's instances are leased to one worker at a time, when admitted;
    /// `nil` for no limit.
    public let workerConcurrency: Int?
    /// At most this many admissions per period, across all workers; `nil` for no limit.
    public let rateLimit: RateLimit?
    /// Whether the limits apply per partition key rather than to the whole queue: each start gives a
    /// key (a customer, a tenant), and each key's instances are admitted within ``concurrency``,
    /// ``workerConcurrency`` and ``rateLimit`` of their own — one at a time per customer, say.
    public let partitioned: Bool

    /// Declares a queue.
    ///
    /// - Parameters:
    ///   - name: The queue's name: what the store keys its limits and instances by.
    ///   - concurrency: How many of its instances may run at once across all workers (at least 1), or
    ///     `nil` for no limit.
    ///   - workerConcurrency: How many may run at once on one worker (at least 1); defaults to
    ///     `concurrency`, and is never more than it.
    ///   - rateLimit: How many may start per period, across all workers; `nil` for no limit.
    ///   - partitioned: Whether the limits apply per partition key: then every start on the queue
    ///     gives one (`partitionKey:`), and none may on a queue that is not partitioned.
    public init(
        _ name: String, concurrency: Int? = nil, workerConcurrency: Int? = nil, rateLimit: RateLimit? = nil, partitioned: Bool = false
    ) {
        precondition(!name.isEmpty, "A queue needs a name.")
        precondition((concurrency ?? 1) > 0, "Queue '\(name)': concurrency must be at least 1.")
        precondition((workerConcurrency ?? 1) > 0, "Queue '\(name)': workerConcurrency must be at least 1.")
        self.name = name
        self.concurrency = concurrency
        switch (concurrency, workerConcurrency) {
        case (let all?, let each?): self.workerConcurrency = min(all, each)
        case (let all, nil): self.workerConcurrency = all
        case (nil, let each): self.workerConcurrency = each
        }
        self.rateLimit = rateLimit
        self.partitioned = partitioned
    }
}

extension Queue {
    /// What a store keeps for "no limit" in its concurrency columns (which are `NOT NULL`).
    @_spi(EddaStores) public static let storedUnlimited = Int(Int32.max)
    /// ``concurrency`` as stored: ``storedUnlimited`` for none.
    @_spi(EddaStores) public var storedConcurrency: Int { concurrency ?? Self.storedUnlimited }
    /// ``workerConcurrency`` as stored: ``storedUnlimited`` for none.
    @_spi(EddaStores) public var storedWorkerConcurrency: Int { workerConcurrency ?? Self.storedUnlimited }
}

/// Where a started instance goes when it is started on a queue: what ``NewInstance`` carries to the store.
@_spi(EddaStores) public struct QueuePlacement: Sendable, Hashable {
    /// The queue's name.
    public var queue: String
    /// Lower numbers are admitted first.
    public var priority: Int
    /// While an instance with this ID on the queue is queued or running, no other starts on it.
    public var deduplicationID: String?
    /// Its partition on a partitioned queue; `nil` on one that is not (stored as `''`).
    public var partitionKey: String?
    /// Taken out of line and cancelled if still queued this long after it was queued; `nil` for never.
    public var timeout: Duration?

    public init(queue: String, priority: Int = 0, deduplicationID: String? = nil, partitionKey: String? = nil, timeout: Duration? = nil) {
        self.queue = queue
        self.priority = priority
        self.deduplicationID = deduplicationID
        self.partitionKey = partitionKey
        self.timeout = timeout
    }

    /// The queue deadline of an instance queued at `now` (milliseconds, the store's clock).
    public func storedQueueDeadline(now: Int64) -> Int64? {
        timeout.map { now + $0.milliseconds }
    }
}
