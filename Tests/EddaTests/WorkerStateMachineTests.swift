@testable import Edda
import Testing

@Suite("Worker state machine (no I/O)")
struct WorkerStateMachineTests {
    @Test func claimsUpToItsCapacityOneClaimAtATime() {
        var machine = WorkerStateMachine(maxInFlight: 8, maxClaimBatch: 5)
        let value1 = machine.nextClaim()
        #expect(value1 == 5, "at start, leftovers may be waiting: claim a batch")
        let value2 = machine.nextClaim()
        #expect(value2 == nil, "one claim at a time")
        let action = machine.claimSucceeded(["a", "b", "c", "d", "e"], requested: 5)
        #expect(action.run == ["a", "b", "c", "d", "e"])
        #expect(action.release.isEmpty)
        let value3 = machine.nextClaim()
        #expect(value3 == 3, "a full batch means more may wait; only 3 slots are free")
        _ = machine.claimSucceeded(["f"], requested: 3)
        let value4 = machine.nextClaim()
        #expect(value4 == nil, "a short batch drained the store")
        machine.wakeUp()
        let value5 = machine.nextClaim()
        #expect(value5 == 2)
    }

    @Test func afterAFailedClaimTheNextTakesBackWhatItMayHaveLeasedHere() {
        var machine = WorkerStateMachine(maxInFlight: 8, maxClaimBatch: 5)
        _ = machine.nextClaim()
        _ = machine.claimSucceeded(["a"], requested: 5)
        #expect(machine.adoptingLeasedExcept == nil, "no claim failed: nothing to take back")
        machine.wakeUp()
        _ = machine.nextClaim()
        machine.claimFailed()
        #expect(machine.adoptingLeasedExcept == ["a"], "the next claim takes back what is leased here, but what runs here")
        machine.wakeUp()
        _ = machine.nextClaim()
        _ = machine.claimSucceeded(["b"], requested: 5)
        #expect(machine.adoptingLeasedExcept == ["a", "b"], "a claim asked before the failure was known took nothing back")
        machine.wakeUp()
        _ = machine.nextClaim()
        _ = machine.claimSucceeded(["c"], requested: 5, adopted: true)
        #expect(machine.adoptingLeasedExcept == nil, "taken back once")
    }

    @Test func aStartDuringAClaimCannotTakeTheRoomTheClaimMayFill() {
        var machine = WorkerStateMachine(maxInFlight: 1)
        let claim = machine.nextClaim()
        #expect(claim == 1)
        let reservedDuringClaim = machine.reserve("started")
        #expect(!reservedDuringClaim, "the claim in flight may bring an instance for the only slot")
        _ = machine.claimSucceeded(["claimed"], requested: 1)
        #expect(machine.inFlight == ["claimed"])
        #expect(machine.freeCapacity == 0)

        var drained = WorkerStateMachine(maxInFlight: 1)
        let drainedClaim = drained.nextClaim()
        #expect(drainedClaim == 1)
        _ = drained.claimSucceeded([], requested: 1)
        let reservedAfter = drained.reserve("started")
        #expect(reservedAfter, "the claim came back empty: the slot is free again")
    }

    @Test func aFullWorkerClaimsAgainOnlyWhenARunEnds() {
        var machine = WorkerStateMachine(maxInFlight: 2)
        let value6 = machine.nextClaim()
        #expect(value6 == 2)
        _ = machine.claimSucceeded(["a", "b"], requested: 2)
        machine.wakeUp()
        let value7 = machine.nextClaim()
        #expect(value7 == nil, "no room")
        let value8 = machine.runEnded("a")
        #expect(value8 == (claim: true, stopped: false), "room freed and work may wait")
        let value9 = machine.nextClaim()
        #expect(value9 == 1)
        _ = machine.claimSucceeded([], requested: 1)
        let value10 = machine.runEnded("b")
        #expect(value10 == (claim: false, stopped: false), "nothing known to wait: no claim")
    }

    @Test func localStartsReserveRoomOrLeaveTheInstanceForAClaim() {
        var machine = WorkerStateMachine(maxInFlight: 1)
        _ = machine.claimSucceeded([], requested: machine.nextClaim()!)
        let value11 = machine.reserve("new-1")
        #expect(value11)
        let value12 = machine.reserve("new-2")
        #expect(!value12, "full: the instance is created ready instead")
        let value13 = machine.runEnded("new-1")
        #expect(value13.claim, "the ready instance is claimed once room frees")
    }

    /// A claim taking back unknown leases keeps out what was in flight when it began: an instance
    /// reserved after that would be taken over under its own run. None is reserved until it is done.
    @Test func noReservationWhileUnknownLeasesAreBeingTakenBack() {
        var machine = WorkerStateMachine(maxInFlight: 8, maxClaimBatch: 5)
        let limit = machine.nextClaim()!
        machine.claimFailed()
        let meanwhile = machine.reserve("started-meanwhile")
        #expect(!meanwhile, "created ready instead, for the next claim")
        machine.wakeUp()
        _ = machine.nextClaim()
        let except = machine.adoptingLeasedExcept
        #expect(except == [], "the adopting claim keeps out what is in flight now")
        let during = machine.reserve("started-during-the-adopting-claim")
        #expect(!during)
        _ = machine.claimSucceeded(["orphan"], requested: limit, adopted: true)
        let after = machine.reserve("started-after")
        #expect(after, "taken back: reservations resume")
    }

    @Test func claimFailureWaitsForThePoll() {
        var machine = WorkerStateMachine(maxInFlight: 4)
        let value14 = machine.nextClaim()
        #expect(value14 == 4)
        machine.claimFailed()
        let value15 = machine.nextClaim()
        #expect(value15 == nil)
        machine.wakeUp()
        let value16 = machine.nextClaim()
        #expect(value16 == 4)
    }

    @Test func shutdownStopsRunsThenCompletesWhenTheLastEnds() {
        var machine = WorkerStateMachine(maxInFlight: 4)
        _ = machine.claimSucceeded(["a", "b"], requested: machine.nextClaim()!)
        let (stop, stopped) = machine.shutdown()
        #expect(stop == ["a", "b"])
        #expect(!stopped)
        #expect(machine.phase == .stopping)
        machine.wakeUp()
        let value17 = machine.nextClaim()
        #expect(value17 == nil, "no claims while stopping")
        let value18 = machine.reserve("c")
        #expect(!value18, "no new runs while stopping")
        let value19 = machine.runEnded("a")
        #expect(value19 == (claim: false, stopped: false))
        let value20 = machine.runEnded("b")
        #expect(value20 == (claim: false, stopped: true))
        #expect(machine.phase == .stopped)
    }

    @Test func aClaimReturningDuringShutdownIsReleased() {
        var machine = WorkerStateMachine(maxInFlight: 4)
        let limit = machine.nextClaim()!
        let value21 = machine.shutdown()
        #expect(value21 == ([], false), "a claim is on its way: not stopped yet")
        let action = machine.claimSucceeded(["late"], requested: limit)
        #expect(action.run.isEmpty)
        #expect(action.release == ["late"])
        let value22 = machine.claimSettled()
        #expect(value22)
        #expect(machine.phase == .stopped)
    }

    @Test func shutdownOfAnIdleWorkerIsImmediate() {
        var machine = WorkerStateMachine(maxInFlight: 4)
        let value23 = machine.shutdown()
        #expect(value23 == ([], true))
        let value24 = machine.shutdown()
        #expect(value24 == ([], true), "twice is harmless")
    }
}
