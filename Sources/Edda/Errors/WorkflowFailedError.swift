/// The workflow instance ended in failure; thrown by ``WorkflowHandle/result()``.
public struct WorkflowFailedError: EddaError {
    public var instanceID: String
    public var workflowName: String
    /// The error that failed the workflow, as recorded.
    public var error: ErrorRecord
    /// The recorded error as an error value (a ``RecordedError``: its type name and message), for
    /// code that walks causes.
    public var cause: (any Error)?

    public var message: String {
        "Workflow '\(workflowName)' instance \(instanceID) failed: \(error)"
    }

    /// The failure without what the recorded error says (it may hold input data): its type only.
    public var description: String {
        "WorkflowFailedError: Workflow '\(workflowName)' instance \(instanceID) failed with \(error.type) (its message is in `error`)."
    }
}
