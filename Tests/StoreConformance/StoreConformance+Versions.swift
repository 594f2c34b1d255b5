@_spi(EddaStores) public import Edda
import Foundation
import Testing

/// Application versions: recorded at creation, kept, counted, and honoured by claims.
extension StoreConformance {
    static func versioned(_ id: String, _ version: String?, queue: String? = nil) -> NewInstance {
        var instance = new(id)
        instance.applicationVersion = version
        instance.placement = queue.map { QueuePlacement(queue: $0, priority: 0, deduplicationID: nil, partitionKey: nil) }
        return instance
    }

    static func claim(_ store: any Store, owner: String, versions: Set<String>?, queues: [String] = []) async throws -> Set<String> {
        let claimed = try await store.claim(
            ClaimRequest(
                lease: LeaseRequest(owner: owner, duration: .seconds(30)), limit: 10, workflowNames: ["w"], queues: queues,
                applicationVersions: versions
            )
        )
        return Set(claimed.map(\.instance.instanceID))
    }

    static func applicationVersions(_ store: any Store) async throws {
        try await store.declareQueues([Queue("q")])
        for (id, version, queue) in [("u", nil, nil), ("a", "1", nil), ("b", "2", nil), ("qa", "1", "q"), ("qb", "2", "q")] as [(String, String?, String?)] {
            let created = try await store.createInstance(versioned(id, version, queue: queue), leasedTo: nil)
            guard case .created(let instance, _) = created else {
                Issue.record("\(id) was not created")
                return
            }
            #expect(instance.applicationVersion == version, "the creation returns the version")
        }
        #expect(try await store.instance("a")?.applicationVersion == "1")
        #expect(try await store.instance("u")?.applicationVersion == nil)
        #expect(try await store.instance("qb")?.applicationVersion == "2")

        // Counted per version, unversioned first; listed by version.
        let summaries = try await store.applicationVersions()
        #expect(summaries.map(\.version) == [nil, "1", "2"])
        #expect(summaries.map(\.unfinished) == [1, 2, 2])
        #expect(summaries.map(\.queued) == [0, 1, 1])
        func listed(_ versions: Set<String?>) async throws -> Set<String> {
            Set(try await store.instances(matching: InstanceQuery(applicationVersions: versions)).instances.map(\.instanceID))
        }
        #expect(try await listed(["1"]) == ["a", "qa"])
        #expect(try await listed([nil]) == ["u"])
        #expect(try await listed([nil, "2"]) == ["u", "b", "qb"])
        #expect(try await store.statusCounts(matching: InstanceQuery(applicationVersions: ["2"]))[.queued] == 1)

        // A versioned worker takes its versions' instances and unversioned ones, queued ones included;
        // another version's are left where they are.
        #expect(try await claim(store, owner: "worker-2", versions: ["2"], queues: ["q"]) == ["u", "b", "qb"])
        #expect(try await store.instance("a")?.leaseOwner == nil)
        #expect(try await store.instance("qa")?.status == .queued)
        #expect(try await claim(store, owner: "worker-2", versions: ["2"], queues: ["q"]).isEmpty)
        #expect(try await claim(store, owner: "worker-1", versions: ["1"], queues: ["q"]) == ["a", "qa"])

        // Compatible versions count as the worker's own; an unversioned worker takes any version.
        _ = try await store.createInstance(versioned("c", "3"), leasedTo: nil)
        _ = try await store.createInstance(versioned("d", "4"), leasedTo: nil)
        #expect(try await claim(store, owner: "worker-5", versions: ["5"]).isEmpty)
        #expect(try await claim(store, owner: "worker-5", versions: ["5", "3"]) == ["c"])
        #expect(try await claim(store, owner: "worker-any", versions: nil) == ["d"])

        // A released instance whose time has come is claimed by its version's workers only.
        guard case .created(_, let leased?) = try await store.createInstance(versioned("t", "2"), leasedTo: leaseRequest) else {
            Issue.record("t was not created leased")
            return
        }
        try await store.release(leased, readyAt: Date().addingTimeInterval(-1))
        #expect(try await claim(store, owner: "worker-1", versions: ["1"]).isEmpty)
        let retaken = try await store.claim(
            ClaimRequest(lease: LeaseRequest(owner: "worker-2", duration: .seconds(30)), limit: 10, workflowNames: ["w"], applicationVersions: ["2"])
        )
        let lease = try #require(retaken.first { $0.instance.instanceID == "t" }?.lease)

        // Continue-as-new and a retry keep the version.
        let next = try await store.continueAsNew(lease: lease, input: JSONPayload(json: "[1]"))
        #expect(try await store.instance("t")?.applicationVersion == "2")
        try await store.finishInstance(lease: next, with: .failed(ErrorRecord(type: "Boom", message: "boom")))
        guard case .retried(let retried, _) = try await store.retry("t", requestedBy: "conformance") else {
            Issue.record("t was not retried")
            return
        }
        #expect(retried.applicationVersion == "2")

        // A fork is recorded with the version it is given (the forking app's).
        guard case .created(let fork, _) = try await store.createFork(versioned("f", "9"), of: "t", fromStep: "x", before: .max) else {
            Issue.record("the fork was not created")
            return
        }
        #expect(fork.applicationVersion == "9")
        #expect(try await store.instance("f")?.applicationVersion == "9")
    }
}
