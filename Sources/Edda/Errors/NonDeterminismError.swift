/// The workflow's code asked for a different step than its history recorded at that point.
///
/// Replay relies on the workflow taking the same path it took before. When it does not — a step
/// was renamed, removed, inserted or reordered since the instance started, or a decision was made
/// on something other than a recorded result — continuing would mix two executions. Edda stops
/// instead: the instance is marked failed with this error and its history is left as it is.
///
/// To change a workflow with instances in flight, patch it (``WorkflowContext/patched(_:)``: old
/// instances keep the old path, new ones take the new), give the new logic a new workflow name, or
/// branch on a recorded value (an activity's result) so old instances keep their path.
public struct NonDeterminismError: EddaError {
    /// The instance being replayed.
    public var instanceID: String
    /// The position (1-based, in the order the workflow's top-level code requests steps) where the
    /// code and the history disagree.
    public var position: Int?
    /// The step ID and name history recorded there, if any.
    public var recordedStepID: String?
    public var recordedName: String?
    /// The step ID and name the code asked for, if any.
    public var requestedStepID: String?
    public var requestedName: String?

    public var cause: (any Error)? { nil }

    public var message: String {
        let at = position.map { "at position \($0)" } ?? "in a concurrent branch"
        switch (recordedName, requestedName) {
        case let (recorded?, requested?):
            return "Instance \(instanceID) \(at): history recorded '\(recorded)' (\(recordedStepID ?? "?")) "
                + "but the workflow asked for '\(requested)' (\(requestedStepID ?? "?")). The workflow's code changed "
                + "or made a decision on unrecorded state; guard the change with ctx.patched(\"<change>\") so this instance keeps its path, "
                + "or start new instances under a new workflow name."
        case let (recorded?, nil):
            return "Instance \(instanceID) \(at): history recorded '\(recorded)' (\(recordedStepID ?? "?")) "
                + "but the workflow finished without asking for it. A step was removed or skipped since this instance ran."
        case let (nil, requested?):
            return "Instance \(instanceID) \(at): the workflow asked for '\(requested)' (\(requestedStepID ?? "?")), "
                + "which its history does not hold there: the instance went on with other steps, or finished, without it. "
                + "A step was inserted since this instance ran; guard it with ctx.patched(\"<change>\")."
        case (nil, nil):
            return "Instance \(instanceID) \(at): the workflow diverged from its history."
        }
    }
}
