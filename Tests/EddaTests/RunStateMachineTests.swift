import Foundation
import Testing

@_spi(EddaStores) @testable import Edda

@Suite("Run state machine (no I/O)")
struct RunStateMachineTests {
    let start = ContinuousClock.now

    func machine(validFor: Duration? = nil, history: [HistoryEvent] = [], compensating: Bool = false) -> RunStateMachine {
        var machine = RunStateMachine(instanceID: "i", leaseValidUntil: validFor.map { start + $0 })
        machine.begin(history: history, resumedCompensating: compensating, cancelRequested: false)
        return machine
    }

    func recorded(_ stepID: String, _ name: String, position: Int?) -> HistoryEvent {
        HistoryEvent(
            sequence: 1, instanceID: "i", stepID: stepID, position: position, name: name, kind: .activityCompleted,
            payload: JSONPayload(json: "1"), error: nil, retry: nil, recordedAt: Date()
        )
    }

    func compensation(_ id: String) -> PendingCompensation {
        PendingCompensation(stepID: "compensate:\(id)", name: "undo", retryPolicy: nil) { _ in }
    }

    @Test func aReplayOnlyRunStopsAtTheFirstStepHistoryLacksAndNeitherRecordsNorCompensates() throws {
        var machine = RunStateMachine(instanceID: "i", leaseValidUntil: nil)
        machine.begin(
            history: [recorded("a:1", "a", position: 1), recorded("c:1", "c", position: 3)], resumedCompensating: false, cancelRequested: false,
            replayOnly: true
        )
        guard case .replay = try machine.reserveStep(name: "a", explicitID: nil, topLevel: true, now: start).decision else {
            Issue.record("a:1 replays")
            return
        }
        try machine.pushCompensation(compensation("a"))
        #expect(throws: RunStopped.self) { try machine.reserveStep(name: "b", explicitID: nil, topLevel: true, now: start) }
        #expect(machine.unrecordedStep == .init(stepID: "b:1", name: "b", position: 2, historyGoesOn: true))
        #expect(throws: RunStopped.self) { try machine.reserveStep(name: "c", explicitID: nil, topLevel: true, now: start) }
        guard case .stop(.released(.shutdown)) = machine.workflowEnded(.failure(CancellationError()), taskCancelled: false) else {
            Issue.record("a replay-only run records no outcome and runs no compensation")
            return
        }

        var patched = RunStateMachine(instanceID: "i", leaseValidUntil: nil)
        patched.begin(history: [recorded("a:1", "a", position: 1)], resumedCompensating: false, cancelRequested: false, replayOnly: true)
        _ = try patched.reserveStep(name: "a", explicitID: nil, topLevel: true, now: start)
        #expect(throws: RunStopped.self) { try patched.patch("p", topLevel: true, now: start) }
        #expect(patched.unrecordedStep == .init(stepID: "edda.patch:p", name: "p", position: 2, historyGoesOn: false))
    }

    @Test func aStepFromAConcurrentTaskWithoutAnIDFailsTheRun() throws {
        var machine = machine()
        let error = #expect(throws: EngineError.self) {
            try machine.reserveStep(name: "charge", explicitID: nil, topLevel: false, now: start)
        }
        #expect(error?.code == .concurrentStepWithoutID)
        #expect(error?.stepID == "charge:1")
        #expect("\(error!)".contains("activityID:"))
        // The run cannot go on, even with explicit IDs: it fails (after its compensations).
        #expect(throws: EngineError.self) { try machine.reserveStep(name: "ship", explicitID: "ship", topLevel: true, now: start) }
        guard case .finish(.failed(let record)) = machine.workflowEnded(.success(JSONPayload(json: "1")), taskCancelled: false) else {
            Issue.record("the run should fail")
            return
        }
        #expect(record.type == "EngineError")
    }

    @Test func concurrentTasksWithExplicitIDsAndTheTopLevelTaskWithDefaultsReserve() throws {
        var machine = machine()
        #expect(try machine.reserveStep(name: "charge", explicitID: "charge:a", topLevel: false, now: start).stepID == "charge:a")
        #expect(try machine.reserveStep(name: "charge", explicitID: nil, topLevel: true, now: start).stepID == "charge:1")
    }

    @Test func noAttemptStartsOnceTheLeaseMayHaveLapsed() throws {
        var machine = machine(validFor: .seconds(10))
        try machine.beforeAttempt(isCompensation: false, now: start + .seconds(9))
        // Paused past the lease (SIGSTOP, a long GC pause elsewhere): no renewal came, and the lapse
        // check has not run yet. The attempt must not start.
        let error = #expect(throws: RunStopped.self) { try machine.beforeAttempt(isCompensation: false, now: start + .seconds(11)) }
        #expect(error?.reason == .leaseLost)
        #expect(machine.leaseLost)
        #expect(!machine.mayRecord())
        guard case .stop(.leaseLost) = machine.workflowEnded(.failure(error!), taskCancelled: false) else {
            Issue.record("the run should stop as lease lost")
            return
        }
    }

    @Test func aRenewalMovesTheLeaseDeadline() throws {
        var machine = machine(validFor: .seconds(10))
        machine.leaseRenewed(validUntil: start + .seconds(20))
        try machine.beforeAttempt(isCompensation: false, now: start + .seconds(15))
        #expect(throws: RunStopped.self) { try machine.reserveStep(name: "a", explicitID: nil, topLevel: true, now: start + .seconds(21)) }
    }

    @Test func aLeaseThatNeverLapsesIsNeverCheckedAgainstTime() throws {
        var machine = machine()
        try machine.beforeAttempt(isCompensation: false, now: start + .seconds(86_400 * 365))
    }

    @Test func anEndedRunNeitherStartsStepsNorRecords() throws {
        var machine = machine()
        #expect(machine.mayRecord())
        machine.end()
        #expect(!machine.mayRecord())
        let error = #expect(throws: RunStopped.self) { try machine.reserveStep(name: "a", explicitID: "a", topLevel: false, now: start) }
        #expect(error?.reason == .ended)
        #expect(throws: RunStopped.self) { try machine.beforeAttempt(isCompensation: true, now: start) }
        #expect(machine.interruptsSleep(cancellable: false))
    }

    @Test func theStrongestStopWinsAndTheEarliestWait() {
        var machine = machine()
        let later = Date(timeIntervalSince1970: 2_000)
        let sooner = Date(timeIntervalSince1970: 1_000)
        machine.stop(.waiting(until: later))
        machine.stop(.waiting(until: sooner))
        guard case .waiting(let until)? = machine.stop, until == sooner else {
            Issue.record("parallel waits resume at the earliest")
            return
        }
        machine.stop(.storeFailure(CancellationError()))
        machine.stop(.waiting(until: Date(timeIntervalSince1970: 1)))
        guard case .storeFailure? = machine.stop else {
            Issue.record("a store failure outranks a wait")
            return
        }
        machine.stop(.shutdown)
        machine.stop(.leaseLost)
        machine.stop(.shutdown)
        #expect(machine.leaseLost, "a lost lease outranks everything")
    }

    @Test func aWriteRefusedByTheFenceLosesTheLease() {
        var machine = machine()
        machine.writeFailed(StoreError.leaseLost(Lease(instanceID: "i", owner: "w", token: 1)))
        #expect(machine.leaseLost)
        var other = self.machine()
        other.writeFailed(CancellationError())
        guard case .stop(.released(.storeFailure)) = other.workflowEnded(.failure(CancellationError()), taskCancelled: false) else {
            Issue.record("another write failure releases the run for a retry")
            return
        }
    }

    @Test func cancellationStopsTheFirstFreshStepButRecordedOnesReplay() throws {
        var machine = machine(history: [recorded("a:1", "a", position: 1)])
        machine.requestCancellation()
        guard case .replay = try machine.reserveStep(name: "a", explicitID: nil, topLevel: true, now: start).decision else {
            Issue.record("a:1 replays: its compensation needs its result")
            return
        }
        #expect(throws: WorkflowCancelledError.self) { try machine.reserveStep(name: "b", explicitID: nil, topLevel: true, now: start) }
        try machine.pushCompensation(compensation("a:1"))
        guard case .compensate(then: .cancelled) = machine.workflowEnded(.success(JSONPayload(json: "1")), taskCancelled: false) else {
            Issue.record("a workflow that caught its cancellation still ends cancelled, after compensating")
            return
        }
    }

    @Test func cancellationStopsActivitiesButNotCompensations() throws {
        var machine = machine()
        machine.requestCancellation()
        try machine.beforeAttempt(isCompensation: true, now: start)
        #expect(throws: WorkflowCancelledError.self) { try machine.beforeAttempt(isCompensation: false, now: start) }
        #expect(machine.interruptsSleep(cancellable: true))
        #expect(!machine.interruptsSleep(cancellable: false))
    }

    @Test func continueAsNewEndsTheRunUnlessAHardStopCame() {
        var machine = machine()
        let input = JSONPayload(json: "[2]")
        machine.stop(.continueAsNew(input))
        guard case .continueAsNew(let next) = machine.workflowEnded(.failure(CancellationError()), taskCancelled: false) else {
            Issue.record("the next run starts")
            return
        }
        #expect(next == input)
        machine.stop(.shutdown)
        guard case .stop(.released(.shutdown)) = machine.workflowEnded(.failure(CancellationError()), taskCancelled: false) else {
            Issue.record("shutdown wins: the next claim replays and continues again")
            return
        }
    }

    @Test func aReturnWithUnrequestedHistoryIsADivergence() {
        var machine = machine(history: [recorded("a:1", "a", position: 1)])
        guard case .finish(.failed(let record)) = machine.workflowEnded(.success(JSONPayload(json: "1")), taskCancelled: false) else {
            Issue.record("a recorded step the code no longer asks for fails the instance")
            return
        }
        #expect(record.type == "NonDeterminismError")
    }

    @Test func aFatalErrorCompensatesWhatWasReplayedThenFails() throws {
        var machine = machine(history: [recorded("a:1", "a", position: 1), recorded("b:1", "b", position: 2)])
        _ = try machine.reserveStep(name: "a", explicitID: nil, topLevel: true, now: start)
        try machine.pushCompensation(compensation("a:1"))
        #expect(throws: NonDeterminismError.self) { try machine.reserveStep(name: "z", explicitID: nil, topLevel: true, now: start) }
        guard case .compensate(then: .failed(let record)) = machine.workflowEnded(.failure(CancellationError()), taskCancelled: false) else {
            Issue.record("compensate, then fail with the divergence")
            return
        }
        #expect(record.type == "NonDeterminismError")
        machine.beginCompensation()
        #expect(machine.phase == .compensating)
        #expect(machine.compensationsEnded() == nil)
        machine.stop(.shutdown)
        guard case .released(.shutdown)? = machine.compensationsEnded() else {
            Issue.record("a rollback stopped by shutdown is finished by the next run")
            return
        }
    }

    @Test func aResumedRollbackFinishesEvenWhenTheCodeNowSucceeds() throws {
        var machine = machine(compensating: true)
        try machine.pushCompensation(compensation("x"))
        guard case .compensate(then: .failed(let record)) = machine.workflowEnded(.success(JSONPayload(json: "1")), taskCancelled: false) else {
            Issue.record("the rollback an earlier run started still finishes")
            return
        }
        #expect(record.type == "NonDeterminismError")
    }

    @Test func aCancelledInstanceThatFailsWithAChildsCancellationEndsCancelled() {
        var machine = machine()
        machine.requestCancellation()
        // The child was born cancelled with its parent and reported before the parent took a step.
        guard case .finish(.cancelled) = machine.workflowEnded(.failure(WorkflowCancelledError(instanceID: "i/edda.child:1")), taskCancelled: false)
        else {
            Issue.record("asked to cancel, it ends cancelled, not failed")
            return
        }
        var other = self.machine()
        guard case .finish(.failed) = other.workflowEnded(.failure(WorkflowCancelledError(instanceID: "i/edda.child:1")), taskCancelled: false)
        else {
            Issue.record("not asked to cancel, a child's cancellation it does not handle fails it")
            return
        }
    }

    @Test func theEnginesOwnCancellationReleasesWithoutAnOutcome() {
        var machine = machine()
        guard case .stop(.released(.shutdown)) = machine.workflowEnded(.failure(CancellationError()), taskCancelled: true) else {
            Issue.record("the app's task was cancelled: stop, record nothing")
            return
        }
    }

    @Test func aCompensationRegisteredTwiceFailsTheRun() throws {
        var machine = machine()
        try machine.pushCompensation(compensation("a"))
        #expect(throws: EngineError.self) { try machine.pushCompensation(compensation("a")) }
        #expect(machine.fatal != nil)
        #expect(machine.manualCompensationKey("undo") == "undo#1")
        #expect(machine.manualCompensationKey("undo") == "undo#2")
    }
}
