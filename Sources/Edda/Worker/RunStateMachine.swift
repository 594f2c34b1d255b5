import Foundation

/// The life of one run of one instance, as a pure value: the one owner of everything that decides
/// how the run goes on and how it ends.
///
/// A run is created fresh for each run of an instance (a claim, a continue-as-new, a retry after a
/// store failure), so nothing of one run leaks into the next. The workflow's context and its step
/// executor ask it at each step boundary what to do — replay this record, run this step, start
/// this attempt, record this outcome, or stop — and the worker feeds it what it learns from outside
/// (shutdown, a lost lease, a renewal, a cancellation). It does no I/O and reads no clock: times come
/// in as arguments, so every transition is tested on its own (`RunStateMachineTests`).
///
/// ```
///            reserveStep / beforeAttempt / mayRecord
///   running ───────────────────────────────────────► running
///      │  stop(shutdown | leaseLost | waiting | continueAsNew | storeFailure)
///      │  fatal error (divergence, reused ID, unreadable record)
///      │  cancellation met at a step boundary
///      ▼
///   workflowEnded(result) ──► .finish(outcome) | .compensate(then: outcome) | .continueAsNew | .stop(RunResult)
///      │
///   compensating (beginCompensation … compensationsEnded) ──► finish, or stop
///      ▼
///   ended: no step, attempt or record of this run is allowed any more
/// ```
struct RunStateMachine: Sendable {
    enum Phase: Sendable, Equatable {
        case running
        /// The run's compensations are being run (the instance is `compensating` in the store).
        case compensating
        /// The run is over: a context or task that escaped it can no longer act.
        case ended
    }

    /// How the run ends, once the workflow's body has returned or thrown.
    enum Ending: Sendable {
        /// Record this outcome.
        case finish(InstanceOutcome)
        /// Mark the instance compensating, run the compensations, then record this outcome.
        case compensate(then: InstanceOutcome)
        /// Record the start of the next run with this input, and run it under the same lease.
        case continueAsNew(JSONPayload)
        /// Record nothing; the worker acts on this result.
        case stop(RunResult)
    }

    let instanceID: String
    /// Until when the lease surely holds, on the monotonic clock: no attempt starts after it. `nil`
    /// for a lease that never lapses (SQLite).
    private(set) var leaseValidUntil: ContinuousClock.Instant?
    private(set) var phase: Phase = .running
    private(set) var stop: Stop?
    /// An error that ends the run whatever the workflow does with it (non-determinism, unreadable
    /// history, a misused API). Kept so that a workflow that catches it cannot carry on.
    private(set) var fatal: (any Error)?
    /// Somebody asked to cancel the instance, or its deadline passed: its next fresh step (or wait)
    /// ends the run cancelled.
    private(set) var cancellationRequested = false
    /// The deadline that cancels the run, when one did (and no request came first): the reason recorded.
    private(set) var deadlineExceeded: DeadlineExceeded?
    /// The run met its cancellation at a step boundary (or in a wait): it ends cancelled.
    private(set) var cancelled = false
    /// The instance was already `compensating` when this run began (an earlier run was rolling back).
    private(set) var resumedCompensating = false
    private(set) var replay: ReplayState
    /// Compensations of completed steps, in completion order.
    private(set) var compensations: [PendingCompensation] = []
    private var compensationIDs: Set<String> = []
    private var manualCompensationCounts: [String: Int] = [:]
    /// Broadcast channels: the sequence number of the last message seen (or of the subscription),
    /// as history says; the next receive takes the first message after it.
    private var channelCursors: [String: Int64] = [:]

    /// Replay only (the test kit's `Replayer`): no step runs and nothing is recorded; the first step
    /// history lacks stops the run, and is kept in ``unrecordedStep``.
    private(set) var replayOnly = false
    /// In replay only: the first step the run asked for that history lacks.
    private(set) var unrecordedStep: UnrecordedStep?

    /// A step asked for in a replay-only run that history does not hold.
    struct UnrecordedStep: Sendable, Equatable {
        var stepID: String
        var name: String
        var position: Int?
        /// Whether history holds steps beyond it: it is not just the end of an unfinished history.
        var historyGoesOn: Bool
    }

    /// The run's first deadline, checked at each step boundary (its timer, ``ActiveRun/watchDeadline()``,
    /// ends waits; a step that returns just after the deadline must not start the next before the
    /// timer's task has run).
    private let deadline: RunDeadlines.Deadline?

    init(instanceID: String, leaseValidUntil: ContinuousClock.Instant?, deadline: RunDeadlines.Deadline? = nil) {
        self.instanceID = instanceID
        self.leaseValidUntil = leaseValidUntil
        self.deadline = deadline
        self.replay = ReplayState(instanceID: instanceID, history: [])
    }

    // MARK: - Inputs from the run

    /// The run has read its history and starts replaying it.
    mutating func begin(history: [HistoryEvent], resumedCompensating: Bool, cancelRequested: Bool, replayOnly: Bool = false) {
        replay = ReplayState(instanceID: instanceID, history: history)
        self.replayOnly = replayOnly
        self.resumedCompensating = resumedCompensating
        if cancelRequested { requestCancellation() }
    }

    /// Reserves the next step, or says (by throwing) why the run cannot take one.
    ///
    /// - Parameters:
    ///   - topLevel: whether the request comes from the workflow's own task, whose order is deterministic.
    ///   - now: the monotonic time, checked against the lease.
    mutating func reserveStep(
        name: String, explicitID: String?, topLevel: Bool, now: @autoclosure () -> ContinuousClock.Instant
    ) throws -> ReplayState.Reservation {
        try checkRunning(now: now)
        if let fatal { throw fatal }
        if let stop { throw error(for: stop) }
        if explicitID == nil, !topLevel {
            // Default IDs count calls in arrival order, and concurrent tasks arrive in any order: on a
            // replay two calls of one activity could each receive the other's result.
            let failure = EngineError(
                .concurrentStepWithoutID,
                "Step '\(replay.nextDefaultID(for: name))' of instance \(instanceID) was asked for from a concurrent task (async let or "
                    + "a task group) without an explicit ID. Default IDs follow the order calls arrive in, which can change on a "
                    + "replay and swap results. Give the call an explicit ID (activityID:, timerID:, childID:, receiveID:, …) "
                    + "or reserve it from the workflow's own code with prepare(…) before starting the tasks.",
                instanceID: instanceID, stepID: replay.nextDefaultID(for: name)
            )
            fatal = failure
            throw failure
        }
        let reservation: ReplayState.Reservation
        do {
            reservation = try replay.reserve(name: name, explicitID: explicitID, topLevel: topLevel)
        } catch {
            // Divergence, a reused ID, unreadable history: the run cannot go on.
            fatal = error
            throw error
        }
        // Cancelled: recorded steps still replay (the compensations need their results); the first
        // fresh one is where the workflow stops.
        if cancellationRequested, case .execute = reservation.decision {
            cancelled = true
            throw cancellationError
        }
        if replayOnly, case .execute = reservation.decision {
            throw stopUnrecorded(stepID: reservation.stepID, name: name, position: reservation.position)
        }
        return reservation
    }

    /// In replay only: the run asked for a step history lacks; it stops there, and the step is kept.
    private mutating func stopUnrecorded(stepID: String, name: String, position: Int?) -> RunStopped {
        let goesOn = position.map { replay.hasRecordedStep(afterPosition: $0) } ?? replay.isReplaying
        unrecordedStep = UnrecordedStep(stepID: stepID, name: name, position: position, historyGoesOn: goesOn)
        stop(.shutdown)
        return RunStopped(reason: .shutdown, instanceID: instanceID)
    }

    /// Answers ``WorkflowContext/patched(_:)`` (see ``ReplayState/patch(_:topLevel:)``), or says (by
    /// throwing) why the run cannot go on.
    mutating func patch(_ patchID: String, topLevel: Bool, now: @autoclosure () -> ContinuousClock.Instant) throws -> ReplayState.PatchDecision {
        try checkRunning(now: now)
        if let fatal { throw fatal }
        if let stop { throw error(for: stop) }
        let decision: ReplayState.PatchDecision
        do {
            decision = try replay.patch(patchID, topLevel: topLevel)
        } catch {
            fatal = error
            throw error
        }
        if replayOnly, case .recordMarker(let stepID, let position) = decision {
            throw stopUnrecorded(stepID: stepID, name: patchID, position: position)
        }
        return decision
    }

    /// Answers ``WorkflowContext/deprecatePatch(_:)``: skips the patch's marker, if history has one here.
    mutating func deprecatePatch(_ patchID: String, topLevel: Bool) throws {
        if let fatal { throw fatal }
        do {
            try replay.deprecatePatch(patchID, topLevel: topLevel)
        } catch {
            fatal = error
            throw error
        }
    }

    /// Whether an attempt of a reserved step may start now; throws why not. Compensations run on
    /// through a cancellation (a rollback is not left half done); activities stop at it.
    mutating func beforeAttempt(isCompensation: Bool, now: @autoclosure () -> ContinuousClock.Instant) throws {
        try checkRunning(now: now)
        switch stop {
        case .shutdown?, .leaseLost?: throw error(for: stop!)
        default: break
        }
        if !isCompensation, cancellationRequested {
            cancelled = true
            throw cancellationError
        }
    }

    /// Whether this run may still append a record. A run that ended (its context escaped in a task
    /// the workflow left running) or lost its lease may not: the record would land in the history of
    /// the instance's next run.
    func mayRecord() -> Bool {
        phase != .ended && !leaseLost
    }

    /// Whether the run stopped because its lease is (or may be) lost.
    var leaseLost: Bool {
        if case .leaseLost? = stop { true } else { false }
    }

    /// Whether a wait in place must end now: the run is over or must stop at once, or (when the wait
    /// is `cancellable`) the instance is cancelled.
    func interruptsSleep(cancellable: Bool) -> Bool {
        if phase == .ended { return true }
        switch stop {
        case .shutdown?, .leaseLost?: return true
        default: return cancellable && cancellationRequested
        }
    }

    /// Before a wait sleeps in place: throws when the run must stop instead, or the wait is cancelled.
    mutating func beforeSleep(cancellable: Bool) throws {
        if phase == .ended { throw RunStopped(reason: .ended, instanceID: instanceID) }
        switch stop {
        case .shutdown?, .leaseLost?: throw error(for: stop!)
        default: break
        }
        if cancellable, cancellationRequested {
            cancelled = true
            throw cancellationError
        }
    }

    /// The run must stop without an outcome. The strongest reason wins (see ``Stop``).
    mutating func stop(_ reason: Stop) {
        guard let current = stop else {
            stop = reason
            return
        }
        if reason.rank > current.rank {
            stop = reason
        } else if case .waiting(let later) = current, case .waiting(let sooner) = reason, sooner < later {
            // Waits in parallel branches: the run resumes at the earliest of them.
            stop = reason
        }
    }

    /// A write of this run failed: a refused fence means the lease is lost; anything else is a store failure.
    mutating func writeFailed(_ error: any Error) {
        if (error as? StoreError)?.code == .leaseLost {
            stop(.leaseLost)
        } else {
            stop(.storeFailure(error))
        }
    }

    /// The run cannot go on, whatever the workflow does next.
    mutating func fail(with error: any Error) {
        if fatal == nil { fatal = error }
    }

    /// The run met its cancellation outside a step reservation (a wait ended by it).
    mutating func noteCancelled() {
        cancelled = true
    }

    /// Somebody asked to cancel the instance (`deadline` `nil`), or its deadline passed. The first
    /// cause is the one recorded.
    mutating func requestCancellation(deadline: DeadlineExceeded? = nil) {
        guard !cancellationRequested else { return }
        cancellationRequested = true
        deadlineExceeded = deadline
    }

    /// What a step met by the cancellation throws, and what the outcome records.
    private var cancellationError: WorkflowCancelledError {
        WorkflowCancelledError(instanceID: instanceID, deadlineExceeded: deadlineExceeded)
    }

    /// The worker renewed the lease: it surely holds until `validUntil`.
    mutating func leaseRenewed(validUntil: ContinuousClock.Instant?) {
        leaseValidUntil = validUntil
    }

    // MARK: - Compensations and channels

    mutating func pushCompensation(_ compensation: PendingCompensation) throws {
        guard compensationIDs.insert(compensation.stepID).inserted else {
            let error = EngineError(
                .duplicateStepID,
                "Compensation ID '\(compensation.stepID)' was registered twice in one run of instance \(instanceID); give each a distinct id:.",
                instanceID: instanceID, stepID: compensation.stepID
            )
            fail(with: error)
            throw error
        }
        compensations.append(compensation)
    }

    /// The step ID of a compensation registered by hand without one: `name#N`.
    mutating func manualCompensationKey(_ name: String) -> String {
        manualCompensationCounts[name, default: 0] += 1
        return "\(name)#\(manualCompensationCounts[name]!)"
    }

    func channelCursor(_ channel: String) -> Int64? {
        channelCursors[channel]
    }

    mutating func advanceChannelCursor(_ channel: String, to sequence: Int64) {
        channelCursors[channel] = max(channelCursors[channel] ?? sequence, sequence)
    }

    /// The compensation phase begins.
    mutating func beginCompensation() {
        if phase == .running { phase = .compensating }
    }

    /// The compensations have run (or stopped): `nil` to go on and record the outcome, or how the run stops.
    func compensationsEnded() -> RunResult? {
        stop.map(result(for:))
    }

    // MARK: - The end of the run

    /// Decides how the run ends, once the workflow's body returned `result`.
    ///
    /// - Parameter taskCancelled: the engine's own task was cancelled (the app stops): stop without an outcome.
    mutating func workflowEnded(_ result: Result<JSONPayload, any Error>, taskCancelled: Bool) -> Ending {
        if replayOnly {
            // Nothing is recorded and no compensation runs: the replay only checks the steps asked for.
            if fatal == nil, unrecordedStep == nil, stop == nil, !taskCancelled {
                do { try replay.verifyAllConsumed() } catch { fail(with: error) }
            }
            return .stop(.released(.shutdown))
        }
        switch result {
        case .success(let output):
            // A workflow that caught its cancellation and returned is cancelled all the same.
            if cancelled { return workflowEnded(.failure(cancellationError), taskCancelled: taskCancelled) }
            if let fatal { return compensating(then: .failed(ErrorRecord(fatal))) }
            if let stop { return ending(for: stop) }
            if resumedCompensating {
                // It failed before and was rolling back; now the same history leads to success (the
                // code changed). The rollback it started still finishes.
                return compensating(then: .failed(ErrorRecord(NonDeterminismError(instanceID: instanceID))))
            }
            do {
                try replay.verifyAllConsumed()
            } catch {
                fail(with: error)
                return compensating(then: .failed(ErrorRecord(error)))
            }
            return .finish(.completed(output))
        case .failure(let error):
            // Divergent code, a reused step ID, unreadable history: the run cannot go on, but the steps
            // replayed before that point did happen, so their compensations run.
            if let fatal { return compensating(then: .failed(ErrorRecord(fatal))) }
            if let stop { return ending(for: stop) }
            if taskCancelled { return .stop(.released(.shutdown)) }
            // Cancelled at a step boundary — or, asked to cancel, the workflow met a cancellation some
            // other way first (its child, born cancelled with it, reported so): cancelled either way.
            if cancelled || (cancellationRequested && error is WorkflowCancelledError) {
                cancelled = true
                return compensating(then: .cancelled(ErrorRecord(cancellationError)))
            }
            return compensating(then: .failed(ErrorRecord(error)))
        }
    }

    /// The run is over: nothing of it may act any more.
    mutating func end() {
        phase = .ended
    }

    /// How a run stopped by `error` (a failed write of the run's own, say) ends, with nothing recorded.
    mutating func stopped(by error: any Error) -> RunResult {
        if error is CancellationError {
            stop(.shutdown)
        } else if let stopped = error as? RunStopped {
            stop(stopped.reason == .leaseLost ? .leaseLost : .shutdown)
        } else {
            writeFailed(error)
        }
        return result(for: stop!)
    }

    private func compensating(then outcome: InstanceOutcome) -> Ending {
        compensations.isEmpty ? .finish(outcome) : .compensate(then: outcome)
    }

    private func ending(for stop: Stop) -> Ending {
        if case .continueAsNew(let input) = stop { return .continueAsNew(input) }
        return .stop(result(for: stop))
    }

    private func result(for stop: Stop) -> RunResult {
        switch stop {
        case .shutdown, .continueAsNew: .released(.shutdown)
        case .leaseLost: .leaseLost
        case .waiting(let until): .waiting(until: until)
        case .storeFailure(let error): .released(.storeFailure(error))
        }
    }

    /// Throws when the run is over, or its lease may have lapsed (the worker may have been paused
    /// past it): no step of a run that may no longer own its instance starts.
    private mutating func checkRunning(now: () -> ContinuousClock.Instant) throws {
        if phase == .ended { throw RunStopped(reason: .ended, instanceID: instanceID) }
        // The clock is read only for a lease that can lapse, or a deadline.
        if let leaseValidUntil, now() >= leaseValidUntil {
            stop(.leaseLost)
            throw RunStopped(reason: .leaseLost, instanceID: instanceID)
        }
        if let deadline, !cancellationRequested, now() >= deadline.at { requestCancellation(deadline: deadline.exceeded) }
    }

    /// What a step of a stopped run throws.
    private func error(for stop: Stop) -> any Error {
        switch stop {
        case .shutdown: RunStopped(reason: .shutdown, instanceID: instanceID)
        case .leaseLost: RunStopped(reason: .leaseLost, instanceID: instanceID)
        case .waiting(let until): RunWaiting(until: until, instanceID: instanceID)
        case .continueAsNew(let input): ContinueAsNew(input: input, instanceID: instanceID)
        case .storeFailure(let error): error
        }
    }
}
