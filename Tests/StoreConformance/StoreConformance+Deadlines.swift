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
}
