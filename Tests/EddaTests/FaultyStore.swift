@_spi(EddaStores) import Edda
import Foundation
import Synchronization

/// A store that forwards to a real one, failing chosen writes as a flaky disk or a dropped
/// connection would: before anything is written. It can also ignore `leasedTo`, as a store may.
/// Wraps either backend; a `PostgresStore` underneath must already run (``Backend/withStore(_:)``
/// runs it): an app runs only a store that is itself a `Service`, which this wrapper is not.
final class FaultyStore: Store {
    let base: any Store
    let leasesNewInstances: Bool
    /// Leases carry an expiry, as PostgreSQL's do, and every renewal fails: a store cut off.
    let renewalsFail: Bool
    /// Whether the worker hears of cancellations asked for elsewhere at once (PostgreSQL's NOTIFY);
    /// `false`: only at its next lease renewal, as a worker whose notification was lost would.
    let hearsCancellations: Bool
    private let deafness = WakeUpSignal()
    private let state = Mutex<(writes: Int, failing: Set<Int>, failed: Int)>((0, [], 0))
    /// Releases: how many to fail before letting them through, and how many were asked for.
    private let releases = Mutex<(failing: Int, asked: Int)>((0, 0))
    /// How many creates commit and then fail, as a statement whose answer was lost (a timeout) would.
    let lostCreateAnswers = Mutex(0)
    /// How many claims that take something commit and then fail, the same way.
    let lostClaimAnswers = Mutex(0)

    /// `failingWrites`: which writes fail, counting every write from 1 (create, append, mark, finish).
    init(
        _ base: any Store, failingWrites: Set<Int> = [], leasesNewInstances: Bool = true, renewalsFail: Bool = false, failingReleases: Int = 0,
        hearsCancellations: Bool = true
    ) {
        self.base = base
        self.hearsCancellations = hearsCancellations
        self.leasesNewInstances = leasesNewInstances
        self.renewalsFail = renewalsFail
        state.withLock { $0.failing = failingWrites }
        releases.withLock { $0.failing = failingReleases }
    }

    /// How many releases were asked for, failed ones included.
    var releasesAsked: Int { releases.withLock { $0.asked } }

    /// How many writes failed so far.
    var failedWrites: Int { state.withLock { $0.failed } }

    private func write() throws {
        try state.withLock { state in
            state.writes += 1
            if state.failing.contains(state.writes) {
                state.failed += 1
                throw StoreError(.database, "Injected failure of write #\(state.writes).")
            }
        }
    }

    func instance(_ instanceID: String) async throws -> WorkflowInstance? { try await base.instance(instanceID) }
    func history(of instanceID: String) async throws -> [HistoryEvent] { try await base.history(of: instanceID) }
    func instances(matching query: InstanceQuery) async throws -> InstancePage { try await base.instances(matching: query) }
    func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent] {
        try await base.history(of: instanceID, matching: query)
    }
    func waitingCount(at now: Date) async throws -> Int { try await base.waitingCount(at: now) }
    func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int] { try await base.statusCounts(matching: query) }
    func queues() async throws -> [QueueSummary] { try await base.queues() }
    func applicationVersions() async throws -> [ApplicationVersionSummary] { try await base.applicationVersions() }
    func queuePosition(of instanceID: String) async throws -> Int? { try await base.queuePosition(of: instanceID) }

    func createFork(_ instance: NewInstance, of original: String, fromStep: String, before: Int64) async throws -> CreateInstanceOutcome {
        try await base.createFork(instance, of: original, fromStep: fromStep, before: before)
    }

    func createInstance(_ instance: NewInstance, leasedTo lease: LeaseRequest?) async throws -> CreateInstanceOutcome {
        try write()
        let outcome = try await base.createInstance(instance, leasedTo: leasesNewInstances ? lease : nil)
        let loseAnswer = lostCreateAnswers.withLock { lost in
            defer { lost = max(lost - 1, 0) }
            return lost > 0
        }
        if loseAnswer { throw StoreError(.database, "Injected: the create committed, and its answer was lost.") }
        return outcome
    }

    func append(_ event: HistoryEvent, lease: Lease) async throws {
        try write()
        try await base.append(event, lease: lease)
    }

    func append(_ event: HistoryEvent, with transaction: StepTransaction, lease: Lease) async throws {
        try write()
        try await base.append(event, with: transaction, lease: lease)
    }

    func continueAsNew(lease: Lease, input: JSONPayload) async throws -> Lease {
        try write()
        return try await base.continueAsNew(lease: lease, input: input)
    }

    func markCompensating(lease: Lease) async throws {
        try write()
        try await base.markCompensating(lease: lease)
    }

    func finishInstance(lease: Lease, with outcome: InstanceOutcome, reportingTo parent: String?) async throws {
        try write()
        try await base.finishInstance(lease: lease, with: outcome, reportingTo: parent)
    }

    func attachWorker(_ workerID: String) async throws { try await base.attachWorker(workerID) }
    func detachWorker(_ workerID: String) async throws { try await base.detachWorker(workerID) }
    func declareQueues(_ queues: [Queue]) async throws { try await base.declareQueues(queues) }
    func claim(_ request: ClaimRequest) async throws -> [ClaimedInstance] {
        let claimed = try await base.claim(request)
        let loseAnswer = !claimed.isEmpty && lostClaimAnswers.withLock { lost in
            defer { lost = max(lost - 1, 0) }
            return lost > 0
        }
        if loseAnswer { throw StoreError(.database, "Injected: the claim committed, and its answer was lost.") }
        return claimed
    }

    func renew(_ leases: [Lease], for duration: Duration) async throws -> Set<String> {
        if renewalsFail { throw StoreError(.database, "Injected failure: the store cannot be reached to renew leases.") }
        return try await base.renew(leases, for: duration)
    }
    func release(_ lease: Lease, readyAt: Date?) async throws {
        try releases.withLock { releases in
            releases.asked += 1
            if releases.failing > 0 {
                releases.failing -= 1
                throw StoreError(.database, "Injected failure of a release (database is locked).")
            }
        }
        try await base.release(lease, readyAt: readyAt)
    }
    func nextReadyAt(after: Date, workflowNames: [String]) async throws -> Date? {
        try await base.nextReadyAt(after: after, workflowNames: workflowNames)
    }
    func requestCancellation(of instanceID: String) async throws -> CancellationRequest {
        try await base.requestCancellation(of: instanceID)
    }
    func retry(_ instanceID: String, requestedBy: String) async throws -> RetryRequest {
        try await base.retry(instanceID, requestedBy: requestedBy)
    }
    func cancellationRequests(among instanceIDs: [String]) async throws -> Set<String> {
        try await base.cancellationRequests(among: instanceIDs)
    }
    func receive(_ wait: MessageWait, lease: Lease, now: Date) async throws -> ReceiveOutcome {
        try write()
        return try await base.receive(wait, lease: lease, now: now)
    }
    func publish(_ message: OutgoingMessage, recordedAs record: (event: HistoryEvent, lease: Lease)?, now: Date) async throws -> PublishOutcome {
        try write()
        return try await base.publish(message, recordedAs: record, now: now)
    }
    func subscribe(to channel: String, mode: ChannelMode, now: Date) async throws -> Int64 {
        try await base.subscribe(to: channel, mode: mode, now: now)
    }
    var wakeUps: WakeUpSignal { base.wakeUps }
    /// Cut off from renewals, its leases lapse as PostgreSQL's do.
    var leasesLapse: Bool { renewalsFail || base.leasesLapse }
    var cancellations: WakeUpSignal { hearsCancellations ? base.cancellations : deafness }
    var outcomes: OutcomeSignal { base.outcomes }
}
