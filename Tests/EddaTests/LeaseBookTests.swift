import Foundation
import Testing

@testable import Edda

/// The worker's lease bookkeeping, driven by instants the test chooses: no clock is read.
@Suite("Lease book (no I/O)")
struct LeaseBookTests {
    let start = ContinuousClock.now

    func lease(_ id: String, token: Int64 = 1) -> Lease {
        Lease(instanceID: id, owner: "w", token: token)
    }

    var book: LeaseBook<String> { LeaseBook(leaseDuration: .seconds(15), renewalInterval: .seconds(5), leasesLapse: true) }

    @Test func aLeaseHoldsUntilOneRenewalIntervalBeforeItLapses() {
        var book = self.book
        book.hold(lease("a"), run: "run-a", grantedAt: start)
        #expect(book.validUntil(lease("a"), grantedAt: start) == start + .seconds(10))
        #expect(book.lapsing(now: start + .seconds(9)).isEmpty)
        #expect(book.lapsing(now: start + .seconds(10)) == ["run-a"])
        #expect(book.entry("a")?.lost == true)
        #expect(book.lapsing(now: start + .seconds(60)).isEmpty, "a lease is reported lapsing once")
    }

    @Test func aLeaseThatNeverLapsesIsNeverStopped() {
        var book = LeaseBook<String>(leaseDuration: .seconds(15), renewalInterval: .seconds(5), leasesLapse: false)
        book.hold(lease("a"), run: "run-a", grantedAt: start)
        #expect(book.validUntil(lease("a"), grantedAt: start) == nil)
        #expect(book.lapsing(now: start + .seconds(86_400)).isEmpty)
    }

    @Test func aRenewalMovesTheDeadlineAndReportsLostLeases() {
        var book = self.book
        book.hold(lease("a"), run: "run-a", grantedAt: start)
        book.hold(lease("b"), run: "run-b", grantedAt: start)
        let sent = book.leases
        let (renewed, lost) = book.renewed(sent, lost: ["b"], sentAt: start + .seconds(5))
        #expect(renewed.map(\.0) == ["run-a"])
        #expect(renewed.first?.1 == start + .seconds(15))
        #expect(lost == ["run-b"])
        #expect(book.lapsing(now: start + .seconds(12)).isEmpty, "a renewed at 5 s holds until 15 s; b is already lost")
        #expect(book.lapsing(now: start + .seconds(15)) == ["run-a"])
    }

    @Test func anAnswerAboutAnOlderTokenIsIgnored() {
        var book = self.book
        book.hold(lease("a", token: 1), run: "first", grantedAt: start)
        let sent = book.leases
        // Meanwhile the instance continued as new: the same lease, its token moved on.
        _ = book.nextRun("a", run: "second", lease: lease("a", token: 2))
        let (renewed, lost) = book.renewed(sent, lost: ["a"], sentAt: start + .seconds(5))
        #expect(renewed.isEmpty)
        #expect(lost.isEmpty)
        #expect(book.entry("a")?.lost == false)
        #expect(book.entry("a")?.run == "second")
    }

    @Test func theNextRunInheritsALostLease() {
        var book = self.book
        book.hold(lease("a"), run: "first", grantedAt: start)
        _ = book.renewed(book.leases, lost: ["a"], sentAt: start)
        let next = book.nextRun("a", run: "second", lease: lease("a"))
        #expect(next?.lost == true, "a run after a store-failure backoff stops at once")
        #expect(next?.validUntil == start + .seconds(10))
        book.forget("a")
        #expect(book.nextRun("a", run: "third", lease: lease("a")) == nil)
        #expect(book.entries.isEmpty)
    }
}

/// When the claim loop wakes for released instances: the earliest deadline, on the app's clock.
@Suite("Worker state machine: deadlines")
struct WorkerDeadlineTests {
    @Test func aNearerDeadlineRearmsAndAPassedOneIsDoneWith() {
        var machine = WorkerStateMachine(maxInFlight: 4)
        let now = Date(timeIntervalSince1970: 1_000)
        let first = machine.arm(now.addingTimeInterval(60))
        #expect(first)
        let later = machine.arm(now.addingTimeInterval(90))
        #expect(!later, "a later deadline changes nothing")
        let nearer = machine.arm(now.addingTimeInterval(30))
        #expect(nearer, "a nearer one re-arms the wait")
        #expect(machine.nextReadyAt == now.addingTimeInterval(30))
        _ = machine.nextClaim()
        _ = machine.claimSucceeded([], requested: 4)
        machine.waited(now: now.addingTimeInterval(10))
        #expect(machine.nextReadyAt == now.addingTimeInterval(30), "not yet")
        machine.waited(now: now.addingTimeInterval(30))
        #expect(machine.nextReadyAt == nil)
        let claim = machine.nextClaim()
        #expect(claim == 4, "waking means ready work may be waiting")
    }
}
