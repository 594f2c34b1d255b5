@_spi(EddaStores) import Edda
import Foundation
import Testing

/// Deadlines: set from the timeouts on the store's clock, inherited by children, moved by a
/// continue-as-new, and honoured by a release that waits past them.
extension StoreConformance {
    static func timed(_ id: String, workflow: Duration? = nil, run: Duration? = nil, parent: String? = nil) -> NewInstance {
        var instance = new(id)
        instance.timeouts = InstanceTimeouts(workflow: workflow, run: run)
        instance.parentInstanceID = parent
        return instance
    }

    static func deadlines(_ store: any Store) async throws {
        // No timeout, no deadline.
        _ = try await create(store, "plain")
        let plain = try #require(try await store.instance("plain"))
        #expect(plain.deadline == nil && plain.workflowDeadline == nil && plain.workflowTimeout == nil && plain.runTimeout == nil)

        // The workflow's deadline is its start plus its timeout; the instance's, the earlier of that and the run's.
        let created = try await store.createInstance(timed("p", workflow: .seconds(60), run: .seconds(10)), leasedTo: leaseRequest)
        guard case .created(let returned, let lease?) = created else {
            Issue.record("p was not created leased")
            return
        }
        let parent = try #require(try await store.instance("p"))
        for instance in [returned, parent] {
            let start = instance.lastClaimedAt ?? instance.createdAt
            #expect(instance.workflowTimeout == .seconds(60))
            #expect(instance.runTimeout == .seconds(10))
            let (workflowDeadline, deadline) = (try #require(instance.workflowDeadline), try #require(instance.deadline))
            #expect(abs(workflowDeadline.timeIntervalSince(start) - 60) < 0.5)
            #expect(abs(deadline.timeIntervalSince(start) - 10) < 0.5)
            #expect(instance.deadlineExceeded?.kind == .runTimeout)
        }

        // A child takes its parent's deadline when that is earlier than its own, and keeps its own when it is later.
        _ = try await store.createInstance(timed("p/late", workflow: .seconds(3600), parent: "p"), leasedTo: nil)
        _ = try await store.createInstance(timed("p/soon", workflow: .seconds(2), parent: "p"), leasedTo: nil)
        _ = try await store.createInstance(timed("p/none", parent: "p"), leasedTo: nil)
        let late = try #require(try await store.instance("p/late"))
        let soon = try #require(try await store.instance("p/soon"))
        let none = try #require(try await store.instance("p/none"))
        #expect(late.deadline == parent.deadline && late.workflowDeadline == parent.deadline)
        #expect(late.deadlineExceeded?.kind == .inherited && late.deadlineExceeded?.parentInstanceID == "p")
        #expect(none.deadline == parent.deadline && none.deadlineExceeded?.kind == .inherited)
        let (soonDeadline, parentDeadline) = (try #require(soon.deadline), try #require(parent.deadline))
        #expect(soonDeadline < parentDeadline)
        #expect(soon.deadlineExceeded?.kind == .workflowTimeout)

        // A continue-as-new starts the run's deadline again; the workflow's stays.
        try await Task.sleep(for: .milliseconds(20))
        let next = try await store.continueAsNew(lease: lease, input: JSONPayload(json: "[2]"))
        let second = try #require(try await store.instance("p"))
        #expect(second.workflowDeadline == parent.workflowDeadline)
        let (moved, workflowDeadline) = (try #require(second.deadline), try #require(second.workflowDeadline))
        #expect(moved > parentDeadline, "the run's deadline moved on")
        #expect(moved < workflowDeadline)

        // A release until later than the deadline makes the instance ready at its deadline; one
        // until sooner keeps its own time; one with none is ready now.
        try await store.release(next, readyAt: Date().addingTimeInterval(86_400))
        #expect(try await store.instance("p")?.readyAt == second.deadline)
        let secondDeadline = try #require(second.deadline)
        let third = try #require(try await claim(store, owner: "worker-a", readyBy: secondDeadline).first)
        #expect(third.instance.instanceID == "p")
        #expect(third.instance.deadline == second.deadline, "a claim returns the deadline with the instance")
        let sooner = Date().addingTimeInterval(1)
        try await store.release(third.lease, readyAt: sooner)
        #expect(try await store.instance("p")?.readyAt?.millisecondsSince1970 == sooner.millisecondsSince1970)
    }

    static func queuedDeadlines(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q", concurrency: 1)])
        var instance = queued("q1", on: "q")
        instance.timeouts = InstanceTimeouts(workflow: .seconds(30))
        _ = try await store.createInstance(instance, leasedTo: nil)
        let stored = try #require(try await store.instance("q1"))
        #expect(stored.workflowTimeout == .seconds(30))
        let deadline = try #require(stored.deadline)
        #expect(abs(deadline.timeIntervalSince(stored.createdAt) - 30) < 0.5, "counted from the start, queued time included")
        let admitted = try #require(try await claim(store, owner: "worker-a", queues: ["q"]).first)
        #expect(admitted.instance.deadline == stored.deadline)
    }

    static func queueTimeouts(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q", concurrency: 1)])
        func enqueue(_ id: String, timeout: Duration? = nil) async throws {
            var instance = queued(id, on: "q")
            instance.placement?.timeout = timeout
            _ = try await store.createInstance(instance, leasedTo: nil)
        }
        try await enqueue("holder")
        let holder = try #require(try await claim(store, owner: "worker-a", queues: ["q"]).first)
        try await enqueue("cancelled")
        try await enqueue("patient", timeout: .seconds(60))
        try await enqueue("impatient", timeout: .milliseconds(500))
        let impatient = try #require(try await store.instance("impatient"))
        #expect(impatient.queueTimeout == .milliseconds(500))
        let queueDeadline = try #require(impatient.queueDeadline)
        #expect(abs(queueDeadline.timeIntervalSince(impatient.createdAt) - 0.5) < 0.01)
        // The queue is full: the next time to look is the queue deadline, and nothing leaves the line before its time.
        let next = try #require(try await store.nextReadyAt(after: Date().addingTimeInterval(-60), workflowNames: ["w"]))
        #expect(next.millisecondsSince1970 == queueDeadline.millisecondsSince1970)
        let early = try await claim(store, owner: "worker-b", queues: ["q"])
        if Date() < queueDeadline.addingTimeInterval(-0.05) { #expect(early.isEmpty) }
        // A cancellation takes a queued instance out of line at once, whatever the queue's limits:
        // unadmitted, leased. Past its queue deadline, the impatient one leaves too, its queue deadline
        // kept to name the reason.
        guard case .requested = try await store.requestCancellation(of: "cancelled") else {
            Issue.record("cancelling a queued instance did not take effect")
            return
        }
        var taken: [String: ClaimedInstance] = Dictionary(uniqueKeysWithValues: early.map { ($0.instance.instanceID, $0) })
        for claimed in try await claim(store, owner: "worker-b", queues: ["q"]) { taken[claimed.instance.instanceID] = claimed }
        let cancelled = try #require(taken["cancelled"])
        #expect(cancelled.instance.status == .running)
        #expect(cancelled.instance.cancelRequested)
        #expect(cancelled.lease.owner == "worker-b")
        let wait = queueDeadline.timeIntervalSinceNow
        if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000) + 20)) }
        for claimed in try await claim(store, owner: "worker-b", queues: ["q"]) { taken[claimed.instance.instanceID] = claimed }
        #expect(Set(taken.keys) == ["cancelled", "impatient"], "the patient one waits for room")
        let late = try #require(taken["impatient"])
        #expect(late.instance.queueDeadline?.millisecondsSince1970 == queueDeadline.millisecondsSince1970)
        #expect(try #require(late.instance.lastClaimedAt) >= queueDeadline)
        #expect(try await store.instance("patient")?.status == .queued)
        // Admitted in its turn, the patient one's queue deadline is cleared. (Those taken out of line
        // hold a place until their cancellation is recorded.)
        for held in Array(taken.values) + [holder] {
            try await store.finishInstance(lease: held.lease, with: .completed(JSONPayload(json: "1")))
        }
        let patient = try #require(try await claim(store, owner: "worker-b", queues: ["q"]).first)
        #expect(patient.instance.instanceID == "patient")
        #expect(patient.instance.queueDeadline == nil)
        #expect(patient.instance.queueTimeout == .seconds(60))
        // Retried, it is queued again, its queue timeout counted from the retry.
        try await store.finishInstance(lease: patient.lease, with: .failed(ErrorRecord(type: "Boom", message: "boom")))
        guard case .retried(let retried, _) = try await store.retry("patient", requestedBy: "conformance") else {
            Issue.record("the failed instance was not retried")
            return
        }
        #expect(retried.status == .queued)
        let again = try #require(retried.queueDeadline)
        #expect(abs(again.timeIntervalSince(retried.updatedAt) - 60) < 0.01)
    }
}
