public import Foundation

/// How workers share instances: claims with leases, renewals, releases and wake-ups.
///
/// An instance is **ready** when it is running or compensating, nobody holds a live lease on it,
/// and its ``WorkflowInstance/readyAt`` (if any) has passed. A worker claims ready instances, runs
/// them under their leases, renews the leases while it runs them, and releases or finishes each.
public protocol WorkQueue: Sendable {
    /// Makes this process a worker on the store. A SQLite store takes the file's ownership lock here
    /// — throwing ``StoreError/Code-swift.struct/databaseInUse`` if another process holds it — and,
    /// since the lock proves every earlier owner dead, frees every lease they left.
    @_spi(EddaStores) func attachWorker(_ workerID: String) async throws

    /// Releases what ``attachWorker(_:)`` took.
    @_spi(EddaStores) func detachWorker(_ workerID: String) async throws

    /// Whether a lease lapses unless renewed within its duration, so that another worker may then
    /// claim the instance (PostgreSQL: `true`). A store whose leases never lapse says `false` (SQLite:
    /// the file's process lock proves every other owner dead); its workers then never stop a run for
    /// a renewal they could not make. The worker asks this, never the shape of a ``Lease``.
    @_spi(EddaStores) var leasesLapse: Bool { get }

    /// Leases up to ``ClaimRequest/limit`` ready instances of the given workflows to the requesting
    /// worker, oldest first, bumping each one's token. Two concurrent claims never return the same instance.
    ///
    /// When ``ClaimRequest/queues`` names queues, the claim first admits ``InstanceStatus/queued``
    /// instances of them (making them `running`, leased to the worker): for each queue, as many as its
    /// stored limits (``declareQueues(_:)``) leave room for — fewer than its concurrency admitted and
    /// unfinished, fewer than its worker concurrency of those leased to this worker — lowest priority
    /// number first, oldest first within a priority. Admissions to a queue are serialized (PostgreSQL:
    /// a transaction-scoped advisory lock per queue, taken before the statement that counts), so
    /// that concurrent claims never admit past a limit. With no queues, the claim is the same as before.
    ///
    /// When ``ClaimRequest/applicationVersions`` is set, every part of the claim — ready, due, lapsed and
    /// admitted instances — takes only unversioned instances and those of these versions;
    /// the others are left as they are, for workers of their version.
    @_spi(EddaStores) func claim(_ request: ClaimRequest) async throws -> [ClaimedInstance]

    /// Stores the limits of these queues (inserted, or replaced if declared before): the ones every
    /// worker's claims honour.
    @_spi(EddaStores) func declareQueues(_ queues: [Queue]) async throws

    /// Extends every lease in `leases` that is still held, in one round trip, and returns the IDs
    /// of the instances whose lease was lost (claimed by another worker, finished, or released).
    @_spi(EddaStores) func renew(_ leases: [Lease], for duration: Duration) async throws -> Set<String>

    /// Gives the instance back: unleased, ready again at `readyAt` (at once when `nil`). Fenced:
    /// releasing a lease already lost throws ``StoreError/Code-swift.struct/leaseLost``.
    @_spi(EddaStores) func release(_ lease: Lease, readyAt: Date?) async throws

    /// How many unfinished instances wait, released, until a time later than `now` or for a message:
    /// the `edda_instances_waiting` gauge.
    @_spi(EddaStores) func waitingCount(at now: Date) async throws -> Int

    /// The earliest `readyAt` later than `after` among unfinished instances of these workflows that
    /// were released until then (a durable timer, a backoff), or `nil`. A worker sleeps until it, so
    /// timers fire on time after a restart or when another worker released them.
    @_spi(EddaStores) func nextReadyAt(after: Date, workflowNames: [String]) async throws -> Date?

    /// Asks an unfinished instance to stop: marks it cancel-requested and, if it waits released (a
    /// timer), makes it ready at once so that a worker claims it and runs its cancellation. Running
    /// ones learn it from ``cancellationRequests(among:)``, the next time their worker asks. Its
    /// unfinished descendants (child workflows, theirs…) are marked with it, and so is a child
    /// created under it later (``WorkflowStore/createInstance(_:leasedTo:)``).
    func requestCancellation(of instanceID: String) async throws -> CancellationRequest

    /// Makes a failed instance run again from its failed step, in one transaction: if the last outcome
    /// recorded is a failed activity, its records (``HistoryEventKind/activityFailed`` and the step's
    /// ``HistoryEventKind/attemptFailed``) move to the archive under the run's number — nothing is
    /// deleted — and the instance is `running` and ready again. Compensation records stay: those
    /// compensations are not run again. The next run replays every other recorded step and runs the
    /// failed one afresh. An instance started on a ``Queue`` is made ``InstanceStatus/queued`` instead of
    /// running: a claim admits it within the queue's limits again. (If its deduplication ID was taken by
    /// another start meanwhile, the store's unique index refuses the retry with a ``StoreError``.)
    ///
    /// The same transaction appends a ``HistoryEventKind/retried`` record, before moving the failure:
    /// step ID the failed step (empty if there is none), name `retry`, and a ``RetryRecord`` payload
    /// naming `requestedBy`, the run, the compensations recorded, and the failure as it was recorded.
    /// Outcomes recorded later are after it in history; the last outcome a retry looks for skips it.
    func retry(_ instanceID: String, requestedBy: String) async throws -> RetryRequest

    /// Which of these instances were asked to cancel. A worker asks about the instances it holds,
    /// with each lease renewal.
    @_spi(EddaStores) func cancellationRequests(among instanceIDs: [String]) async throws -> Set<String>

    /// The database server's clock now, where workers on several machines share the store
    /// (PostgreSQL), or `nil` (SQLite: one machine). A worker compares it with its own clock: the
    /// deadlines of durable timers and backoffs are set and claimed on workers' clocks.
    @_spi(EddaStores) func serverNow() async throws -> Date?

    /// Notified when an instance may have become ready (created without a lease, released), here or
    /// — where the store can tell (PostgreSQL's LISTEN/NOTIFY) — in another process. A worker also
    /// polls, for changes the store cannot announce (another process on a SQLite file, say).
    @_spi(EddaStores) var wakeUps: WakeUpSignal { get }

    /// Notified when an instance was asked to cancel (``requestCancellation(of:)``), here or — where
    /// the store can tell (PostgreSQL's LISTEN/NOTIFY) — in another process: a worker then asks
    /// ``cancellationRequests(among:)`` about the runs it holds at once, instead of at its next renewal.
    @_spi(EddaStores) var cancellations: WakeUpSignal { get }

    /// Notified with the IDs of instances that may have finished, here or, where the store can tell,
    /// in another process: `result()` of an instance running elsewhere looks at the store again at
    /// once instead of waiting for its next poll.
    @_spi(EddaStores) var outcomes: OutcomeSignal { get }
}

/// Result of ``WorkQueue/requestCancellation(of:)`` and ``EddaApp/requestCancellation(of:)``:
/// whether the request took effect.
public enum CancellationRequest: Sendable {
    /// The request took effect: the instance, as marked, will stop at its next step boundary (it may
    /// already have been marked). If its last step finishes first, it keeps that outcome and the
    /// request is cleared.
    case requested(WorkflowInstance)
    /// The instance had already finished (completed, failed or cancelled: its ``WorkflowInstance/status``);
    /// nothing was changed.
    case finished(WorkflowInstance)
    /// No instance has this ID.
    case notFound
}

/// Result of ``WorkQueue/retry(_:requestedBy:)``.
public enum RetryRequest: Sendable {
    /// The instance is running again; `step` is the step ID whose failure was moved aside, if one was.
    case retried(WorkflowInstance, step: String?)
    /// The instance has not failed (it runs, or completed, or was cancelled); nothing was changed.
    case notFailed(WorkflowInstance)
    case notFound
}

/// What ``WorkQueue/claim(_:)`` is asked for.
@_spi(EddaStores) public struct ClaimRequest: Sendable, Hashable {
    /// The claiming worker and its lease duration.
    public var lease: LeaseRequest
    /// At most this many instances.
    public var limit: Int
    /// Only instances of these workflows: the ones the worker has registered.
    public var workflowNames: [String]
    /// Released instances are ready once their `readyAt` is at or before this time: the worker's
    /// now on its app's clock, the clock `readyAt` was set with (a timer's deadline, a backoff).
    public var readyBy: Date
    /// When set, the claim also takes back, first, the instances leased to this worker
    /// (``LeaseRequest/owner``) that are not in this set — the ones it runs or is starting. A claim
    /// whose answer was lost (a statement given up that committed anyway) leaves instances leased to
    /// a worker that does not know it holds them; its next claim asks for them this way.
    public var adoptingLeasedExcept: Set<String>?
    /// The queues whose queued instances the claim may admit, sorted: the worker's registered ones.
    /// Empty: the claim admits none.
    public var queues: [String]
    /// The application versions whose instances the claim may take, sorted, besides unversioned ones
    /// (``WorkflowInstance/applicationVersion`` `nil`); `nil`: instances of any version, or none (an
    /// unversioned worker). A versioned worker passes its own version and those it declares compatible.
    public var applicationVersions: [String]?

    public init(
        lease: LeaseRequest, limit: Int, workflowNames: [String], readyBy: Date = Date(), adoptingLeasedExcept: Set<String>? = nil,
        queues: [String] = [], applicationVersions: Set<String>? = nil
    ) {
        self.applicationVersions = applicationVersions.map { $0.sorted() }
        self.queues = queues.sorted()
        self.lease = lease
        self.limit = limit
        self.workflowNames = workflowNames
        self.readyBy = readyBy
        self.adoptingLeasedExcept = adoptingLeasedExcept
    }
}

/// An instance a claim returned, with the lease to run it under.
@_spi(EddaStores) public struct ClaimedInstance: Sendable {
    public var instance: WorkflowInstance
    public var lease: Lease

    public init(instance: WorkflowInstance, lease: Lease) {
        self.instance = instance
        self.lease = lease
    }
}

extension WorkQueue {
    /// `nil`: the store has no clock of its own to compare with.
    @_spi(EddaStores) public func serverNow() async throws -> Date? { nil }
}
