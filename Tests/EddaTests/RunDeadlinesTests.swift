import Foundation
import Testing

@_spi(EddaStores) @testable import Edda

/// How a run learns its deadlines from a claimed instance, and how its state machine records the
/// deadline that cancels it (no I/O).
@Suite("Run deadlines (no I/O)")
struct RunDeadlinesTests {
    let stored = Date(timeIntervalSince1970: 1_800_000_000)
    let received = ContinuousClock.now

    func instance(deadline: Double?, workflowDeadline: Double?, workflowTimeout: Duration?, runTimeout: Duration?, parent: String? = nil) -> WorkflowInstance {
        var instance = WorkflowInstance(
            instanceID: "i", workflowName: "w", serviceName: "s", status: .running, input: JSONPayload(json: "[]"), createdAt: stored,
            updatedAt: stored, parentInstanceID: parent, lastClaimedAt: stored.addingTimeInterval(5)
        )
        instance.deadline = deadline.map { stored.addingTimeInterval($0) }
        instance.workflowDeadline = workflowDeadline.map { stored.addingTimeInterval($0) }
        instance.workflowTimeout = workflowTimeout
        instance.runTimeout = runTimeout
        return instance
    }

    @Test func theTimeLeftCountsFromTheClaimOnTheStoresClock() throws {
        // Claimed 5 s after its start (the store's clock); a run deadline 10 s and a workflow one 60 s after its start.
        let instance = instance(deadline: 10, workflowDeadline: 60, workflowTimeout: .seconds(60), runTimeout: .seconds(10))
        let deadlines = try #require(RunDeadlines(instance, received: received))
        #expect(deadlines.run?.at == received + .seconds(5))
        #expect(deadlines.workflow?.at == received + .seconds(55))
        #expect(deadlines.next?.exceeded.kind == .runTimeout)
        #expect(deadlines.next?.exceeded.timeout == .seconds(10))
        // The next run of a continue-as-new chain: the run deadline moves, the workflow's stays.
        let next = deadlines.nextRun(startingAt: received + .seconds(3))
        #expect(next.run?.at == received + .seconds(13))
        #expect(next.run?.exceeded.deadline == stored.addingTimeInterval(18))
        #expect(next.workflow?.at == deadlines.workflow?.at)
        #expect(RunDeadlines(self.instance(deadline: nil, workflowDeadline: nil, workflowTimeout: nil, runTimeout: nil), received: received) == nil)
    }

    @Test func aChildsEarlierParentDeadlineIsNamedAsInherited() throws {
        let child = instance(deadline: 20, workflowDeadline: 20, workflowTimeout: .seconds(3600), runTimeout: nil, parent: "p")
        #expect(child.deadlineExceeded?.kind == .inherited)
        #expect(child.deadlineExceeded?.parentInstanceID == "p")
        let own = instance(deadline: 20, workflowDeadline: 20, workflowTimeout: .seconds(20), runTimeout: nil, parent: "p")
        #expect(own.deadlineExceeded?.kind == .workflowTimeout)
        let deadlines = try #require(RunDeadlines(child, received: received))
        #expect(deadlines.run == nil && deadlines.next?.exceeded.kind == .inherited)
    }

    @Test func theFirstCauseOfACancellationIsTheOneRecorded() {
        let exceeded = DeadlineExceeded(kind: .workflowTimeout, timeout: .seconds(1), deadline: stored)
        var byDeadline = RunStateMachine(instanceID: "i", leaseValidUntil: nil)
        byDeadline.begin(history: [], resumedCompensating: false, cancelRequested: false)
        byDeadline.requestCancellation(deadline: exceeded)
        byDeadline.requestCancellation()
        let error = #expect(throws: WorkflowCancelledError.self) {
            try byDeadline.reserveStep(name: "a", explicitID: nil, topLevel: true, now: received)
        }
        #expect(error?.deadlineExceeded == exceeded)
        guard case .finish(.cancelled(let record)) = byDeadline.workflowEnded(.failure(error!), taskCancelled: false) else {
            Issue.record("the run should end cancelled")
            return
        }
        #expect(record.deadlineExceeded == exceeded)

        var byRequest = RunStateMachine(instanceID: "i", leaseValidUntil: nil)
        byRequest.begin(history: [], resumedCompensating: false, cancelRequested: true)
        byRequest.requestCancellation(deadline: exceeded)
        #expect(byRequest.deadlineExceeded == nil, "asked for first: no deadline reason")
    }
}

extension RunDeadlinesTests {
    @Test func aStepBoundaryPastTheDeadlineCancelsEvenBeforeTheTimerFires() {
        let exceeded = DeadlineExceeded(kind: .runTimeout, timeout: .seconds(1), deadline: stored)
        var machine = RunStateMachine(instanceID: "i", leaseValidUntil: nil, deadline: RunDeadlines.Deadline(at: received, exceeded: exceeded))
        machine.begin(history: [], resumedCompensating: false, cancelRequested: false)
        #expect(throws: Never.self) { try machine.beforeAttempt(isCompensation: false, now: received - .milliseconds(1)) }
        let error = #expect(throws: WorkflowCancelledError.self) {
            try machine.reserveStep(name: "next", explicitID: nil, topLevel: true, now: received + .milliseconds(1))
        }
        #expect(error?.deadlineExceeded == exceeded)
    }
}
