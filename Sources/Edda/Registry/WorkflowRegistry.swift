import Synchronization

/// The workflows an app knows by name: the code that resumes their instances, their input shapes,
/// and the event types that start them.
///
/// A worker claims only instances of registered workflows; a client needs the registry to start a
/// workflow by name (the HTTP API, the CLI through a running app) and to generate its start form.
/// ``EddaApp`` owns one and shares it with its client and its worker.
public final class WorkflowRegistry: Sendable {
    private struct State: Sendable {
        var workflows: [String: RegisteredWorkflow] = [:]
        /// Workflows started by events of a type (``EddaClient/startOnEvent(_:_:)``), by type.
        var eventHandlers: [String: [String]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Registers `workflow`. Registering the same workflow value again does nothing.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/workflowNameTaken`` when
    ///   another workflow is registered under the same name.
    public func register<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) throws {
        try register(workflow.registration)
    }

    func register(_ registration: RegisteredWorkflow) throws {
        try state.withLock { state in
            if let existing = state.workflows[registration.name] {
                guard existing.identity == registration.identity else {
                    throw EngineError(
                        .workflowNameTaken,
                        "Another workflow is already registered as '\(registration.name)'. Workflow names identify the "
                            + "code that resumes an instance, so each must be unique: rename one of them."
                    )
                }
                return
            }
            state.workflows[registration.name] = registration
        }
    }

    /// The names of the registered workflows, sorted.
    public var names: [String] {
        state.withLock { $0.workflows.keys.sorted() }
    }

    /// The shape of each argument of the registered workflow `name` (see ``InputShape``), or `nil`
    /// when no workflow has that name: what the viewer's start form is generated from.
    public func inputShapes(ofWorkflowNamed name: String) -> [InputShape]? {
        registration(named: name)?.inputShapes.value
    }

    func registration(named name: String) -> RegisteredWorkflow? {
        state.withLock { $0.workflows[name] }
    }

    /// Adds `name` to the workflows an event of `type` starts.
    func addEventHandler(_ name: String, for type: String) {
        state.withLock { state in
            if !(state.eventHandlers[type] ?? []).contains(name) { state.eventHandlers[type, default: []].append(name) }
        }
    }

    /// The workflows an event of `type` starts.
    func eventHandlers(for type: String) -> [String] {
        state.withLock { $0.eventHandlers[type] ?? [] }
    }
}
