/// A misuse or a condition the engine cannot continue from: an invalid input, an unknown workflow,
/// a conflicting instance ID, history that cannot be read.
///
/// Match on ``code``:
///
/// ```swift
/// do {
///     _ = try await app.start(processOrder, input)
/// } catch let error as EngineError where error.code == .invalidInput {
///     print(error.message) // "Input for workflow 'process_order' is invalid: amount must be greater than 0. …"
/// }
/// ```
public struct EngineError: EddaError {
    /// What kind of error this is. New codes may be added; match the ones you handle.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case invalidInput, unknownWorkflow, instanceAlreadyExists, duplicateStepID
            case corruptHistory, corruptInput, instanceNotFound, stopped, encodingFailed
            case noTransaction, transactionClosed, workflowNameTaken, alreadyFinished, undecodableMessage, notFailed
            case reservedStepID, concurrentStepWithoutID, concurrentPatch, deduplicationIDInUse, unknownQueue, invalidQueueOptions
            case scheduleNotFound, scheduleAlreadyExists, invalidSchedule
            case stepNotFound, forkRefused
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The workflow's input failed validation. Nothing was written.
        public static let invalidInput = Code(.invalidInput)
        /// No workflow with this name is registered with the app.
        public static let unknownWorkflow = Code(.unknownWorkflow)
        /// An instance with this ID exists with another workflow or another input.
        public static let instanceAlreadyExists = Code(.instanceAlreadyExists)
        /// Two steps in one run used the same step ID.
        public static let duplicateStepID = Code(.duplicateStepID)
        /// A history record could not be decoded as the type the code expects.
        public static let corruptHistory = Code(.corruptHistory)
        /// A stored workflow input could not be decoded as the workflow's arguments.
        public static let corruptInput = Code(.corruptInput)
        /// No instance with this ID exists.
        public static let instanceNotFound = Code(.instanceNotFound)
        /// The app stopped (graceful shutdown) before the instance finished; it resumes on the next claim, here or on another worker.
        public static let stopped = Code(.stopped)
        /// A value could not be encoded as JSON.
        public static let encodingFailed = Code(.encodingFailed)
        /// `ctx.session` was used outside a `ctx.transaction { }` body.
        public static let noTransaction = Code(.noTransaction)
        /// `ctx.transaction`, `ctx.enqueue` or `ctx.afterCommit` was called after the step's body returned.
        public static let transactionClosed = Code(.transactionClosed)
        /// Another workflow is already registered under this name with the app.
        public static let workflowNameTaken = Code(.workflowNameTaken)
        /// The instance has already finished (completed, failed or cancelled): there is nothing to
        /// cancel. Nothing was changed.
        public static let alreadyFinished = Code(.alreadyFinished)
        /// A received event's or channel message's data cannot be decoded as the type the workflow
        /// asked for. The message was consumed and recorded; the error is thrown on every replay too.
        public static let undecodableMessage = Code(.undecodableMessage)
        /// ``EddaApp/retry(_:requestedBy:)`` was asked for an instance that has not failed. Nothing was changed.
        public static let notFailed = Code(.notFailed)
        /// An explicit step ID (`activityID:` and the like) starts with `compensate:`, which Edda
        /// keeps for compensations' records. The run fails, as for a duplicate step ID.
        public static let reservedStepID = Code(.reservedStepID)
        /// A step was asked for from a concurrent task (`async let`, a task group) without an
        /// explicit ID. Default IDs follow arrival order, which a replay may change; the run fails
        /// rather than risk giving each call another's recorded result.
        public static let concurrentStepWithoutID = Code(.concurrentStepWithoutID)
        /// ``WorkflowContext/patched(_:)`` or ``WorkflowContext/deprecatePatch(_:)`` was called from a
        /// concurrent task (`async let`, a task group). Whether a run is past its recorded history is
        /// known only in the workflow's own code, in order; call it there and pass the result into the tasks.
        public static let concurrentPatch = Code(.concurrentPatch)

        /// A start on a ``Queue`` gave a deduplication ID that an instance on that queue holds while it
        /// is queued or running; ``EngineError/instanceID`` names that instance. Nothing was written.
        /// Once that instance finishes, the ID is free again.
        public static let deduplicationIDInUse = Code(.deduplicationIDInUse)
        /// A start by name asked for a queue that is not registered with the app. Nothing was written.
        public static let unknownQueue = Code(.unknownQueue)
        /// A start's queue options do not fit: a priority, deduplication ID or partition key without
        /// a queue, a partition key on a queue that is not partitioned, or none on one that is.
        /// Nothing was written.
        public static let invalidQueueOptions = Code(.invalidQueueOptions)

        /// No schedule has this name. Nothing was changed.
        public static let scheduleNotFound = Code(.scheduleNotFound)
        /// A schedule with this name exists already. Nothing was changed.
        public static let scheduleAlreadyExists = Code(.scheduleAlreadyExists)
        /// A schedule's spec, input or range cannot be used (the message says why). Nothing was changed.
        public static let invalidSchedule = Code(.invalidSchedule)

        /// The instance's history has no step with this ID (the message lists some that it has).
        /// Nothing was written.
        public static let stepNotFound = Code(.stepNotFound)
        /// A fork from this step could not replay what it copies (the message says why, and which
        /// steps would do). Nothing was written.
        public static let forkRefused = Code(.forkRefused)

        /// Whether the error is a misuse of the API inside an activity: retrying cannot fix it, so
        /// the step fails at once instead of using up its retries.
        var isMisuse: Bool { self == .noTransaction || self == .transactionClosed }

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?
    /// The instance concerned, when there is one.
    public var instanceID: String?
    /// The step concerned, when there is one.
    public var stepID: String?

    public init(_ code: Code, _ message: String, instanceID: String? = nil, stepID: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.instanceID = instanceID
        self.stepID = stepID
        self.cause = cause
    }
}
