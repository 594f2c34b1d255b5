import Foundation

/// The worker's decisions, as a pure value: when to claim and how many, which instances run here,
/// and when shutdown is complete. The ``Worker`` feeds it events and performs the actions it
/// returns; it does no I/O, so every transition is tested on its own.
///
/// Capacity is ``maxInFlight`` instances: running, or holding a lease while they back off after a
/// store failure. The machine claims only when it has room and there may be ready work: at start,
/// after a wake-up or a poll, or when the last claim came back full (more may be waiting).
struct WorkerStateMachine: Sendable {
    enum Phase: Sendable, Equatable {
        case running
        /// Shutdown began: no claims, runs stop at their next step, leases are released.
        case stopping
        /// Nothing runs any more.
        case stopped
    }

    /// What to do after a claim returned.
    struct ClaimedAction: Sendable, Equatable {
        /// Start these runs.
        var run: [String]
        /// Release these leases at once: they arrived after shutdown began.
        var release: [String]
    }

    let maxInFlight: Int
    let maxClaimBatch: Int
    private(set) var phase: Phase = .running
    private(set) var inFlight: Set<String> = []
    /// A claim is on its way to the store; one at a time.
    private(set) var claiming = false
    /// How many instances the claim in flight may bring: counted against capacity until it returns,
    /// so that a `start` reserving meanwhile cannot push the worker past its limit.
    private(set) var claimingLimit = 0
    /// A claim failed since the last that succeeded: it may have leased instances here anyway.
    private(set) var mayHoldUnknownLeases = false
    /// Ready work may be waiting in the store.
    private(set) var claimWanted = true
    /// The earliest time a released instance becomes ready again (on the app's clock): the claim loop
    /// wakes then, instead of at its next poll.
    private(set) var nextReadyAt: Date?

    init(maxInFlight: Int, maxClaimBatch: Int = 100) {
        precondition(maxInFlight >= 1, "A worker runs at least one instance at a time")
        self.maxInFlight = maxInFlight
        self.maxClaimBatch = max(maxClaimBatch, 1)
    }

    var freeCapacity: Int { max(maxInFlight - inFlight.count - claimingLimit, 0) }

    /// Work may be ready: a wake-up from the store, or the poll interval passed.
    mutating func wakeUp() {
        if phase == .running { claimWanted = true }
    }

    /// Makes the claim loop wake at `deadline`. Returns whether it is sooner than what the loop waits
    /// for now (then the loop must re-arm its wait at once).
    mutating func arm(_ deadline: Date) -> Bool {
        guard deadline < nextReadyAt ?? .distantFuture else { return false }
        nextReadyAt = deadline
        return true
    }

    /// The claim loop woke (a signal, its poll, or its deadline) at `now`: ready work may be waiting,
    /// and a deadline that has come is done with.
    mutating func waited(now: Date) {
        if let ready = nextReadyAt, ready <= now { nextReadyAt = nil }
        wakeUp()
    }

    /// How many instances to claim now, if any; marks the claim as under way.
    mutating func nextClaim() -> Int? {
        guard phase == .running, claimWanted, !claiming, freeCapacity > 0 else { return nil }
        let limit = min(freeCapacity, maxClaimBatch)
        claiming = true
        claimingLimit = limit
        claimWanted = false
        return limit
    }

    /// A claim for `requested` instances returned `claimed`.
    /// `adopted`: the claim took back this worker's unknown leases (``adoptingLeasedExcept``).
    mutating func claimSucceeded(_ claimed: [String], requested: Int, adopted: Bool = false) -> ClaimedAction {
        claiming = false
        claimingLimit = 0
        if adopted { mayHoldUnknownLeases = false }
        guard phase == .running else { return ClaimedAction(run: [], release: claimed) }
        var run: [String] = []
        var release: [String] = []
        for id in claimed {
            // The store never hands out an instance leased here; a duplicate means a bug, not work.
            if inFlight.insert(id).inserted { run.append(id) } else { release.append(id) }
        }
        // A full batch: more may be waiting.
        if claimed.count >= requested { claimWanted = true }
        return ClaimedAction(run: run, release: release)
    }

    /// The claim failed; the next poll tries again, and takes back what the failed one may have
    /// leased here after all (its answer lost, its statement committed).
    mutating func claimFailed() {
        claiming = false
        claimingLimit = 0
        mayHoldUnknownLeases = true
    }

    /// Instances may be leased here that this worker does not know of (a store call whose answer
    /// was lost): the next claim takes them back.
    mutating func takeBackUnknownLeases() {
        mayHoldUnknownLeases = true
        claimWanted = true
    }

    /// The instances to keep out of a claim that takes back this worker's unknown leases, or `nil`
    /// when no claim failed since the last one that did.
    var adoptingLeasedExcept: Set<String>? { mayHoldUnknownLeases ? inFlight : nil }

    /// An instance started in this process wants to run here at once, under a lease taken when it is
    /// created. Returns `false` when the worker is full or stopping: the instance is then created
    /// ready, for the next claim (here, once capacity frees, or on another worker). Also while a
    /// claim is to take back this worker's unknown leases: that claim keeps out only the instances
    /// in flight when it began, and would take over one created leased here after that, under the
    /// run that the reservation starts (whose writes its new lease would then refuse).
    mutating func reserve(_ instanceID: String) -> Bool {
        guard phase == .running, freeCapacity > 0, !mayHoldUnknownLeases else {
            if phase == .running { claimWanted = true }
            return false
        }
        return inFlight.insert(instanceID).inserted
    }

    /// A run ended, or a reservation was not used. Returns whether to claim now (capacity freed and
    /// work may be waiting) and whether shutdown has just completed.
    mutating func runEnded(_ instanceID: String) -> (claim: Bool, stopped: Bool) {
        inFlight.remove(instanceID)
        if phase == .stopping, inFlight.isEmpty, !claiming {
            phase = .stopped
            return (false, true)
        }
        return (phase == .running && claimWanted && !claiming && freeCapacity > 0, false)
    }

    /// Shutdown begins. Returns the runs to stop, and whether the worker is already stopped.
    mutating func shutdown() -> (stop: Set<String>, stopped: Bool) {
        guard phase == .running else { return ([], phase == .stopped) }
        phase = .stopping
        claimWanted = false
        if inFlight.isEmpty && !claiming {
            phase = .stopped
            return ([], true)
        }
        return (inFlight, false)
    }

    /// After a claim that returned during shutdown: whether the worker is now stopped.
    mutating func claimSettled() -> Bool {
        if phase == .stopping, inFlight.isEmpty, !claiming {
            phase = .stopped
            return true
        }
        return false
    }
}
