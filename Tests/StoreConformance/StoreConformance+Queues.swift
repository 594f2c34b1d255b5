@_spi(EddaStores) public import Edda
import Foundation
import Testing

/// Queues: admissions within limits, their order, deduplication.
extension StoreConformance {
    static func queued(
        _ id: String, on queue: String, priority: Int = 0, deduplicationID: String? = nil, partitionKey: String? = nil
    ) -> NewInstance {
        var instance = new(id)
        instance.placement = QueuePlacement(queue: queue, priority: priority, deduplicationID: deduplicationID, partitionKey: partitionKey)
        return instance
    }

    static func claim(_ store: any Store, owner: String, limit: Int = 10, queues: [String]) async throws -> [ClaimedInstance] {
        try await store.claim(
            ClaimRequest(lease: LeaseRequest(owner: owner, duration: .seconds(30)), limit: limit, workflowNames: ["w"], queues: queues)
        )
    }

    static func queueLimits(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q", concurrency: 3, workerConcurrency: 2)])
        for index in 1...5 {
            let created = try await store.createInstance(queued("q\(index)", on: "q"), leasedTo: leaseRequest)
            guard case .created(let instance, let lease) = created else {
                Issue.record("q\(index) was not created")
                return
            }
            #expect(instance.status == .queued)
            #expect(lease == nil, "a queued instance is never leased at creation")
        }
        #expect(try await store.instance("q1")?.status == .queued)
        #expect(try await store.statusCounts(matching: InstanceQuery())[.queued] == 5)
        // A claim that names no queue admits none: only the queue's limits let them run.
        #expect(try await claim(store, owner: "worker-a").isEmpty)
        // At most two per worker, three in all.
        let first = try await claim(store, owner: "worker-a", queues: ["q"])
        #expect(first.map(\.instance.instanceID) == ["q1", "q2"])
        #expect(first.allSatisfy { $0.instance.status == .running && $0.lease.owner == "worker-a" })
        #expect(try await claim(store, owner: "worker-a", queues: ["q"]).isEmpty)
        #expect(try await claim(store, owner: "worker-b", queues: ["q"]).map(\.instance.instanceID) == ["q3"])
        #expect(try await claim(store, owner: "worker-c", queues: ["q"]).isEmpty)
        // A finished instance frees its place; a released one (a wait) keeps it.
        try await store.release(first[1].lease, readyAt: Date().addingTimeInterval(3600))
        #expect(try await claim(store, owner: "worker-c", queues: ["q"]).isEmpty)
        try await store.finishInstance(lease: first[0].lease, with: .completed(JSONPayload(json: "1")))
        #expect(try await claim(store, owner: "worker-c", queues: ["q"]).map(\.instance.instanceID) == ["q4"])
        #expect(try await store.instance("q5")?.status == .queued)
        // Limits declared again replace the stored ones.
        try await store.declareQueues([Queue("q", concurrency: 4)])
        let fifth = try #require(try await claim(store, owner: "worker-c", queues: ["q"]).first)
        #expect(fifth.instance.instanceID == "q5")
        // A failed instance retried goes back to its queue: admitted again within the limits.
        try await store.finishInstance(lease: fifth.lease, with: .failed(ErrorRecord(type: "Boom", message: "boom")))
        guard case .retried(let retried, _) = try await store.retry("q5", requestedBy: "conformance") else {
            Issue.record("the failed instance was not retried")
            return
        }
        #expect(retried.status == .queued)
        #expect(try await claim(store, owner: "worker-c").isEmpty, "a claim that names no queue does not take it")
        #expect(try await claim(store, owner: "worker-c", queues: ["q"]).map(\.instance.instanceID) == ["q5"])
    }

    static func queuePriorityOrder(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q", concurrency: 10), Queue("other", concurrency: 10)])
        // Created in ID order; lower priority numbers first, then oldest first.
        for (id, priority) in [("p1", 5), ("p2", 1), ("p3", 5), ("p4", 1), ("p5", -1)] {
            _ = try await store.createInstance(queued(id, on: "q", priority: priority), leasedTo: nil)
        }
        _ = try await store.createInstance(queued("elsewhere", on: "other"), leasedTo: nil)
        // Each queued instance's place: the order admissions will take.
        for (id, position) in [("p5", 1), ("p2", 2), ("p4", 3), ("p1", 4), ("p3", 5), ("elsewhere", 1)] {
            #expect(try await store.queuePosition(of: id) == position, "\(id)")
        }
        #expect(try await store.queuePosition(of: "nobody") == nil)
        #expect(try await store.instances(matching: { var q = InstanceQuery(); q.queue = "other"; return q }()).instances.map(\.instanceID) == ["elsewhere"])
        var order: [String] = []
        for _ in 0..<6 {
            order += try await claim(store, owner: "worker-a", limit: 1, queues: ["q"]).map(\.instance.instanceID)
        }
        #expect(order == ["p5", "p2", "p4", "p1", "p3"])
        #expect(try await store.queuePosition(of: "p5") == nil, "an admitted instance has no place in the queue")
        let summaries = try await store.queues()
        #expect(summaries.map(\.name) == ["other", "q"])
        #expect(summaries.map(\.queued) == [1, 0] && summaries.map(\.running) == [0, 5])
        #expect(summaries.last?.concurrency == 10 && summaries.last?.workerConcurrency == 10 && summaries.last?.rateLimit == nil)
        #expect(try await store.instance("elsewhere")?.status == .queued, "a claim admits only from the queues it names")
    }

    static func queueDeduplication(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q", concurrency: 10), Queue("other", concurrency: 10)])
        guard case .created = try await store.createInstance(queued("first", on: "q", deduplicationID: "order-1"), leasedTo: nil) else {
            Issue.record("the first start was refused")
            return
        }
        func expectRefused(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let outcome = try await store.createInstance(queued(id, on: "q", deduplicationID: "order-1"), leasedTo: nil)
            guard case .deduplicated(let holder) = outcome else {
                Issue.record("a second start with the ID was not refused: \(outcome)", sourceLocation: sourceLocation)
                return
            }
            #expect(holder.instanceID == "first", sourceLocation: sourceLocation)
            #expect(try await store.instance(id) == nil, "nothing is written", sourceLocation: sourceLocation)
        }
        try await expectRefused("second")
        // The same ID on another queue, or no ID, is another matter.
        guard case .created = try await store.createInstance(queued("there", on: "other", deduplicationID: "order-1"), leasedTo: nil),
              case .created = try await store.createInstance(queued("plain", on: "q"), leasedTo: nil)
        else {
            Issue.record("a start on another queue or without an ID was refused")
            return
        }
        // Starting the holder's own ID again finds it, as any start does.
        guard case .existing = try await store.createInstance(queued("first", on: "q", deduplicationID: "order-1"), leasedTo: nil) else {
            Issue.record("a start with the holder's instance ID did not find it")
            return
        }
        let admitted = try await claim(store, owner: "worker-a", queues: ["q"])
        let holder = try #require(admitted.first { $0.instance.instanceID == "first" })
        try await expectRefused("third")
        try await store.finishInstance(lease: holder.lease, with: .completed(JSONPayload(json: "1")))
        guard case .created = try await store.createInstance(queued("fourth", on: "q", deduplicationID: "order-1"), leasedTo: nil) else {
            Issue.record("the ID was not free once its holder finished")
            return
        }
    }

    static func queueRateLimit(_ store: any Store) async throws {
        // Two admissions per hour, no concurrency limit: the rate limit alone holds the rest back,
        // even once the first two have finished.
        try await store.declareQueues([Queue("q", rateLimit: .init(2, per: .seconds(3600))), Queue("free")])
        for index in 1...4 { _ = try await store.createInstance(queued("r\(index)", on: "q"), leasedTo: nil) }
        _ = try await store.createInstance(queued("unlimited", on: "free"), leasedTo: nil)
        let first = try await claim(store, owner: "worker-a", limit: 1, queues: ["free", "q"])
        let second = try await claim(store, owner: "worker-b", queues: ["free", "q"])
        #expect(Set((first + second).map(\.instance.instanceID)) == ["unlimited", "r1", "r2"])
        for admitted in first + second {
            try await store.finishInstance(lease: admitted.lease, with: .completed(JSONPayload(json: "1")))
        }
        #expect(try await claim(store, owner: "worker-c", queues: ["free", "q"]).isEmpty, "the period's two admissions are spent")
        #expect(try await store.instance("r3")?.status == .queued)
        // A limit declared anew is read by the next claim.
        try await store.declareQueues([Queue("q", rateLimit: .init(3, per: .seconds(3600)))])
        #expect(try await claim(store, owner: "worker-c", queues: ["q"]).map(\.instance.instanceID) == ["r3"])
        #expect(try await store.instance("r3")?.queue == "q")
        let summary = try #require(try await store.queues().first { $0.name == "q" })
        #expect(summary.rateLimit == Queue.RateLimit(3, per: .seconds(3600)) && summary.concurrency == nil && summary.workerConcurrency == nil)
        #expect(summary.queued == 1 && summary.running == 1)
    }

    static func queuePartitions(_ store: any Store) async throws {
        // One at a time per customer, two per period per customer.
        try await store.declareQueues([Queue("per_customer", concurrency: 1, rateLimit: .init(2, per: .seconds(3600)), partitioned: true)])
        for (id, key) in [("a1", "acme"), ("a2", "acme"), ("a3", "acme"), ("b1", "bolt"), ("c1", "core"), ("c2", "core")] {
            _ = try await store.createInstance(queued(id, on: "per_customer", partitionKey: key), leasedTo: nil)
        }
        #expect(try await store.instance("a2")?.partitionKey == "acme")
        #expect(try await store.queuePosition(of: "a3") == 3, "the place within its own partition")
        #expect(try await store.queuePosition(of: "c2") == 2)
        #expect(try await store.queuePosition(of: "b1") == 1)
        // The first of each customer, however many the claim could take.
        let first = try await claim(store, owner: "worker-a", queues: ["per_customer"])
        #expect(first.map(\.instance.instanceID).sorted() == ["a1", "b1", "c1"])
        #expect(try await claim(store, owner: "worker-b", queues: ["per_customer"]).isEmpty, "each customer's one place is taken")
        // acme's first finishes: its next is admitted, and no other.
        let a1 = try #require(first.first { $0.instance.instanceID == "a1" })
        try await store.finishInstance(lease: a1.lease, with: .completed(JSONPayload(json: "1")))
        let second = try await claim(store, owner: "worker-b", queues: ["per_customer"])
        #expect(second.map(\.instance.instanceID) == ["a2"])
        // acme has had its two admissions of the period: a3 waits although its place is free.
        try await store.finishInstance(lease: try #require(second.first).lease, with: .completed(JSONPayload(json: "1")))
        #expect(try await claim(store, owner: "worker-b", queues: ["per_customer"]).isEmpty, "acme's rate limit is spent")
        #expect(try await store.instance("a3")?.status == .queued)
        let summary = try #require(try await store.queues().first)
        #expect(summary.partitioned && summary.queued == 2 && summary.running == 2)
    }
}
