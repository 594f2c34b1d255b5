/// The workflow instance was cancelled (``EddaApp/cancel(_:)``): it stopped at a step boundary and
/// its compensations ran. Thrown by ``WorkflowHandle/result()``, and inside the run at the step
/// where the cancellation took effect (a workflow may catch it to clean up, but cannot start new
/// steps: each throws it again).
public struct WorkflowCancelledError: EddaError {
    public var instanceID: String
    public var cause: (any Error)? { nil }

    public init(instanceID: String) {
        self.instanceID = instanceID
    }

    public var message: String {
        "Workflow instance \(instanceID) was cancelled; the compensations of its completed steps have run."
    }
}
