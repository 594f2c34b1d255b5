@_spi(EddaStores) public import Edda

extension Store {
    /// Writes an instance as a worker that died mid-run leaves it: running (or compensating) with
    /// `history` recorded, and no lease, so the next claim resumes it. For tests of replay and recovery.
    ///
    /// ```swift
    /// try await store.seedInstance("order-1", workflowName: "process_order", history: [
    ///     HistoryEvent(instanceID: "order-1", stepID: "reserve:1", position: 1, name: "reserve",
    ///                     kind: .activityCompleted, payload: try JSONPayload.encode(true)),
    /// ])
    /// ```
    public func seedInstance(
        _ instanceID: String,
        workflowName: String,
        input: JSONPayload = JSONPayload(json: "[]"),
        serviceName: String = "test",
        history: [HistoryEvent] = [],
        compensating: Bool = false
    ) async throws {
        let lease = try await createLeasedInstance(instanceID, workflowName: workflowName, input: input, serviceName: serviceName, owner: "seed")
        for event in history {
            try await append(event, lease: lease)
        }
        if compensating {
            try await markCompensating(lease: lease)
        }
        try await release(lease, readyAt: nil)
    }

    /// Creates a running instance leased to `owner`, and returns the lease to write under.
    public func createLeasedInstance(
        _ instanceID: String,
        workflowName: String = "w",
        input: JSONPayload = JSONPayload(json: "[]"),
        serviceName: String = "test",
        owner: String = "test-worker"
    ) async throws -> Lease {
        let outcome = try await createInstance(
            NewInstance(instanceID: instanceID, workflowName: workflowName, serviceName: serviceName, input: input),
            leasedTo: LeaseRequest(owner: owner, duration: .seconds(60))
        )
        guard case .created(_, let lease?) = outcome else {
            throw EngineError(.instanceAlreadyExists, "Instance \(instanceID) already exists; a test seeds each instance once.", instanceID: instanceID)
        }
        return lease
    }
}
