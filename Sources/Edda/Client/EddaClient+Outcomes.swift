import Foundation

/// Waiting for instances to finish: in memory while they run here, by the store's announcements
/// or reads while they run elsewhere.
extension EddaClient {
    /// Waits for an instance of any workflow to finish — completed, failed or cancelled — and
    /// returns it as stored then: for code that holds an instance ID but not its workflow's type (a
    /// ``WorkflowHandle`` decodes the output as the workflow's). It wakes as ``WorkflowHandle/result()`` does.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound``, or
    ///   ``EngineError/Code-swift.struct/stopped`` when this app's run stopped first;
    ///   `CancellationError` when the waiting task is cancelled.
    public func waitUntilFinished(_ instanceID: String) async throws -> WorkflowInstance {
        _ = try await outcome(of: instanceID)
        guard let instance = try await store.instance(instanceID) else {
            throw EngineError(.instanceNotFound, "Instance \(instanceID) finished and is gone (pruned).", instanceID: instanceID)
        }
        return instance
    }

    /// Waits for the instance's outcome: in memory while it runs in this process, otherwise by
    /// reading the store again with a backoff (10 ms doubling to ``EddaApp/Configuration-swift.struct/resultPollInterval``).
    func outcome(of instanceID: String) async throws -> InstanceOutcome {
        let local = outcomes.watch(instanceID)
        defer { outcomes.end(local) }
        let (continuation, registered) = (local.continuation, local.registered)
        // Watched before the first read: a finish announced in between is not missed.
        let watch = store.outcomes.watch(instanceID)
        defer { watch.end() }
        var pollDelay = Duration.milliseconds(10)
        var iterator = local.stream.makeAsyncIterator()
        while true {
            // Registered first, then read: an outcome published in between is not missed.
            if runningWorker?.isRunningHere(instanceID) != true {
                guard let instance = try await store.instance(instanceID) else {
                    throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID).", instanceID: instanceID)
                }
                if instance.status == .completed {
                    return .completed(instance.output ?? JSONPayload(json: "null"))
                }
                if instance.status == .failed {
                    return .failed(instance.error ?? ErrorRecord(type: "Error", message: "unknown failure"))
                }
                if instance.status == .cancelled {
                    return .cancelled(instance.error ?? ErrorRecord(WorkflowCancelledError(instanceID: instanceID)))
                }
                guard registered else {
                    throw EngineError(.stopped, "The app has stopped; instance \(instanceID) resumes on the next claim.", instanceID: instanceID)
                }
                // Running elsewhere (or waiting to be claimed): look again when the store announces an
                // outcome, or after a while.
                let delay = pollDelay
                pollDelay = min(pollDelay * 2, configuration.resultPollInterval)
                Task {
                    await watch.wait(upTo: delay)
                    continuation.yield(.recheck)
                }
            }
            switch await iterator.next() {
            case .outcome(let result):
                return try result.get()
            case .recheck:
                continue
            case nil:
                try Task.checkCancellation()
                throw EngineError(.stopped, "The app stopped before instance \(instanceID) finished.", instanceID: instanceID)
            }
        }
    }
}

extension EddaClient: CustomStringConvertible {
    public var description: String { "EddaClient(\(serviceName))" }
}
