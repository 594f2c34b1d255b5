/// The workflow instance ended in failure; thrown by ``WorkflowHandle/result()``.
public struct WorkflowFailedError: EddaError {
    public var instanceID: String
    public var workflowName: String
    /// The error that failed the workflow, as recorded.
    public var error: ErrorRecord
    public var cause: (any Error)?

    public var message: String {
        "Workflow '\(workflowName)' instance \(instanceID) failed: \(error)"
    }
}
