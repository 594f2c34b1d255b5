public import Foundation

/// A queue as the store holds it — its limits as last declared — with how many of its instances
/// wait and run: what `edda queues`, the viewer and the API show.
public struct QueueSummary: Sendable, Hashable {
    /// The queue's name.
    public var name: String
    /// At most this many admitted and unfinished across all workers; `nil` for no limit.
    public var concurrency: Int?
    /// At most this many leased to one worker; `nil` for no limit.
    public var workerConcurrency: Int?
    /// At most this many admissions per period; `nil` for no limit.
    public var rateLimit: Queue.RateLimit?
    /// Whether the limits apply per partition key (``Queue/partitioned``).
    public var partitioned: Bool
    /// Its instances waiting to be admitted (``InstanceStatus/queued``).
    public var queued: Int
    /// Its instances admitted and not finished (running or compensating, waiting included): the
    /// places taken.
    public var running: Int
    /// When the limits were last written (by a worker's start, or a first start on the queue).
    public var declaredAt: Date

    public init(
        name: String, concurrency: Int?, workerConcurrency: Int?, rateLimit: Queue.RateLimit?, partitioned: Bool = false, queued: Int,
        running: Int, declaredAt: Date
    ) {
        self.partitioned = partitioned
        self.name = name
        self.concurrency = concurrency
        self.workerConcurrency = workerConcurrency
        self.rateLimit = rateLimit
        self.queued = queued
        self.running = running
        self.declaredAt = declaredAt
    }

    /// Builds a summary from the stored columns: no limit is stored as ``Queue/storedUnlimited``, no rate limit as
    /// `NULL`; times in milliseconds since 1970.
    package init(
        storedName name: String, concurrency: Int, workerConcurrency: Int, rateLimit: Int?, ratePeriodMilliseconds: Int64?, partitioned: Bool,
        queued: Int, running: Int, updatedAt: Int64
    ) {
        let unlimited = Queue.storedUnlimited
        self.init(
            name: name, concurrency: concurrency >= unlimited ? nil : concurrency,
            workerConcurrency: workerConcurrency >= unlimited ? nil : workerConcurrency,
            rateLimit: rateLimit.flatMap { limit in
                ratePeriodMilliseconds.map { Queue.RateLimit(max(1, limit), per: .milliseconds(max(1, $0))) }
            },
            partitioned: partitioned, queued: queued, running: running, declaredAt: Date(storedMilliseconds: updatedAt)
        )
    }
}
