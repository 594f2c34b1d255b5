/// A reference to one workflow instance, typed by the workflow's result.
///
/// ```swift
/// let handle = try await app.start(userSignup, "ada@example.com", "Ada")
/// print(handle.instanceID)
/// let result = try await handle.result()
/// ```
public struct WorkflowHandle<Output: Codable & Sendable>: Sendable {
    /// The instance's ID.
    public let instanceID: String
    /// The workflow's name.
    public let workflowName: String
    let client: EddaClient

    /// Waits for the instance to finish and returns its result.
    ///
    /// For an instance running in this app's worker, waiting costs no polling: the worker wakes the
    /// caller when the instance finishes. For one running elsewhere — another process, or any
    /// worker when this app does not run — it reads the store with a backoff from 10 ms up to
    /// ``EddaApp/Configuration-swift.struct/resultPollInterval``.
    ///
    /// - Throws: ``WorkflowFailedError`` when the instance failed; ``WorkflowCancelledError`` when it
    ///   was cancelled (its ``WorkflowCancelledError/deadlineExceeded`` says which deadline, when one
    ///   cancelled it); ``EngineError`` with code
    ///   ``EngineError/Code-swift.struct/stopped`` when this app's run stopped first, or
    ///   ``EngineError/Code-swift.struct/unknownWorkflow`` when the app cannot resume it;
    ///   `CancellationError` when the waiting task is cancelled.
    public func result() async throws -> Output {
        switch try await client.outcome(of: instanceID) {
        case .completed(let payload):
            do {
                return try payload.decode(Output.self)
            } catch {
                throw EngineError(
                    .corruptHistory, "The result of instance \(instanceID) cannot be decoded as \(Output.self).",
                    instanceID: instanceID, cause: error
                )
            }
        case .failed(let record):
            throw WorkflowFailedError(instanceID: instanceID, workflowName: workflowName, error: record, cause: RecordedError(record))
        case .cancelled(let record):
            throw WorkflowCancelledError(instanceID: instanceID, deadlineExceeded: record.deadlineExceeded)
        }
    }

    /// The instance as stored now.
    public func instance() async throws -> WorkflowInstance {
        guard let instance = try await client.instance(instanceID) else {
            throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID).", instanceID: instanceID)
        }
        return instance
    }

    /// The instance's current status.
    public func status() async throws -> InstanceStatus {
        try await instance().status
    }
}
