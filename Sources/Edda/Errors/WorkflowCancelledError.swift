/// The workflow instance was cancelled — by ``EddaApp/cancel(_:)``, or because its deadline passed
/// (``deadlineExceeded``): it stopped at a step boundary and its compensations ran. Thrown by
/// ``WorkflowHandle/result()``, and inside the run at the step where the cancellation took effect
/// (a workflow may catch it to clean up, but cannot start new steps: each throws it again).
///
/// ```swift
/// do {
///     _ = try await handle.result()
/// } catch let error as WorkflowCancelledError where error.deadlineExceeded != nil {
///     print(error.reason!)   // deadline exceeded: workflow timeout 30 s passed at …
/// }
/// ```
public struct WorkflowCancelledError: EddaError {
    public var instanceID: String
    /// The deadline that cancelled the instance, or `nil` when somebody cancelled it (``EddaApp/cancel(_:)``).
    public var deadlineExceeded: DeadlineExceeded?
    public var cause: (any Error)? { nil }

    /// The cancellation of `instanceID`, by `deadlineExceeded` when a deadline cancelled it.
    public init(instanceID: String, deadlineExceeded: DeadlineExceeded? = nil) {
        self.instanceID = instanceID
        self.deadlineExceeded = deadlineExceeded
    }

    /// Why the instance was cancelled, when not by a request: `deadline exceeded: …`.
    public var reason: String? {
        deadlineExceeded?.description
    }

    public var message: String {
        "Workflow instance \(instanceID) was cancelled\(reason.map { " (\($0))" } ?? ""); the compensations of its completed steps have run."
    }
}
