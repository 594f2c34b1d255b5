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
        /// Queues whose queued instances the worker admits, by name.
        var queues: [String: Queue] = [:]
        /// The queues whose limits, as registered, this process wrote to the store.
        var declared: Set<String> = []
        /// Schedules declared in code, by name.
        var schedules: [String: Schedule] = [:]
    }

    private let state = Mutex(State())
    /// Whether any queue is registered: read without the lock on the worker's path (a run's end, a claim).
    private let queuesRegistered = Atomic<Bool>(false)

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

    /// Registers `queue`, so that the app's worker admits its queued instances. A queue of the same
    /// name registered again replaces the earlier limits (written to the store again before use).
    public func register(_ queue: Queue) {
        state.withLock { state in
            if state.queues[queue.name] != queue { state.declared.remove(queue.name) }
            state.queues[queue.name] = queue
        }
        queuesRegistered.store(true, ordering: .releasing)
    }

    /// Whether any queue is registered.
    var hasQueues: Bool { queuesRegistered.load(ordering: .acquiring) }

    /// Whether `queue`'s limits, as registered, were written to the store by this process.
    func isDeclared(_ queue: Queue) -> Bool {
        state.withLock { $0.queues[queue.name] == queue && $0.declared.contains(queue.name) }
    }

    /// Notes that these queues' limits were written to the store.
    func markDeclared(_ queues: [Queue]) {
        state.withLock { state in
            for queue in queues where state.queues[queue.name] == queue { state.declared.insert(queue.name) }
        }
    }

    /// The registered queue named `name`, if any.
    public func queue(named name: String) -> Queue? {
        state.withLock { $0.queues[name] }
    }

    /// The registered queues, sorted by name.
    public var queues: [Queue] {
        state.withLock { $0.queues.values.sorted { $0.name < $1.name } }
    }

    /// Registers `schedule` and its workflow (and its queue, if any): the app's worker writes it to the store when it starts
    /// and starts its ticks. A schedule of the same name registered again replaces the earlier one.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/workflowNameTaken`` when
    ///   another workflow is registered under its workflow's name.
    public func register(_ schedule: Schedule) throws {
        try register(schedule.registration)
        if let queue = schedule.queue { register(queue) }
        state.withLock { $0.schedules[schedule.name] = schedule }
    }

    /// The schedules declared in code, sorted by name.
    public var schedules: [Schedule] {
        state.withLock { $0.schedules.values.sorted { $0.name < $1.name } }
    }

    func schedule(named name: String) -> Schedule? {
        state.withLock { $0.schedules[name] }
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
