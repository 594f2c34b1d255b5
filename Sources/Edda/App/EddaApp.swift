import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The entry point: holds the store, the registered workflows, and runs instances.
///
/// ```swift
/// let app = EddaApp(store: try SQLiteStore(path: "orders.sqlite"), serviceName: "order-service")
/// app.register(processOrder)
///
/// try await app.run { app in
///     let handle = try await app.start(processOrder, OrderInput(orderID: "ORD-1", amount: 20))
///     print(try await handle.result())
/// }
/// ```
///
/// `EddaApp` is a `Service`: in a server, put it in a `ServiceGroup` next to your HTTP server;
/// in a script or a test, ``run(_:)`` runs it for the duration of a closure. When it starts, it
/// resumes every instance left running by a previous process, replaying each from its history.
public final class EddaApp: Service, Sendable {
    /// The name of the service this app belongs to, stored with every instance it creates.
    public let serviceName: String
    /// The store.
    public let store: any Store
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger
    private let state = Mutex(State())

    private struct State: Sendable {
        var workflows: [String: RegisteredWorkflow] = [:]
        var phase: Phase = .idle
        /// Instances executing in this process; an instance never runs twice at once.
        var executing: Set<String> = []
        var waiters: [String: [UUID: AsyncStream<Result<InstanceOutcome, any Error>>.Continuation]] = [:]
        var unresumable: [String: EngineError] = [:]
    }

    private enum Phase: Sendable {
        case idle
        case running(AsyncStream<Job>.Continuation)
        case stopping
        case stopped
    }

    struct Job: Sendable {
        var instance: WorkflowInstance
        /// A new instance has no history to read.
        var isNew: Bool
    }

    /// Creates an app.
    ///
    /// - Parameters:
    ///   - store: Where instances and history live: `SQLiteStore` for an embedded file.
    ///   - serviceName: Your service's name, stored with each instance (`"order-service"`).
    ///   - configuration: Retry defaults, clock, worker ID.
    ///   - logger: The logger for the app and the workflows it runs.
    public init(store: some Store, serviceName: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "edda")) {
        self.store = store
        self.serviceName = serviceName
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "edda.worker.id"] = "\(configuration.workerID)"
        self.logger = logger
    }

    // MARK: - Registration

    /// Registers a workflow so the app can resume its instances after a restart.
    ///
    /// Register every workflow before ``run()``: an instance whose workflow is not registered is
    /// kept as it is and reported, not resumed. ``start(_:_:instanceID:)`` registers the workflow
    /// it starts.
    public func register<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) {
        let registration = workflow.registration
        state.withLock { state in
            state.workflows[workflow.name] = registration
        }
    }

    /// The names of the registered workflows.
    public var registeredWorkflowNames: [String] {
        state.withLock { $0.workflows.keys.sorted() }
    }

    // MARK: - Starting instances

    /// Validates the arguments, creates an instance and schedules it.
    ///
    /// The instance is durable when this returns: if the process dies now, the next start of the
    /// app runs it. It starts executing as soon as the app runs (at once if it already does).
    ///
    /// Starting with an `instanceID` that exists never creates a second instance: if the existing
    /// instance has the same workflow and the same input, you get a handle to it (whatever its
    /// status); otherwise the call throws ``EngineError/Code-swift.struct/instanceAlreadyExists``.
    ///
    /// - Parameters:
    ///   - workflow: The workflow to run; registered if it was not.
    ///   - arguments: Its arguments.
    ///   - instanceID: The instance's ID. Defaults to a new UUID.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/invalidInput`` when
    ///   validation fails (nothing is written), ``EngineError/Code-swift.struct/instanceAlreadyExists``,
    ///   or a ``StoreError``.
    @discardableResult
    public func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        instanceID: String? = nil
    ) async throws -> WorkflowHandle<Output> {
        do {
            try workflow.validate(repeat each arguments)
        } catch {
            throw EngineError(
                .invalidInput,
                "Input for workflow '\(workflow.name)' is invalid: \(error). No instance was created.",
                instanceID: instanceID, cause: error
            )
        }
        if let instanceID {
            try Self.checkInstanceID(instanceID)
        }
        let input: JSONPayload
        do {
            input = try JSONPayload.encode(ArgumentList(repeat each arguments))
        } catch {
            throw EngineError(.encodingFailed, "The input of workflow '\(workflow.name)' could not be encoded as JSON.", cause: error)
        }
        state.withLock { state in
            if state.workflows[workflow.name] == nil {
                state.workflows[workflow.name] = workflow.registration
            }
        }
        let id = instanceID ?? UUID().uuidString.lowercased()
        let outcome = try await store.createInstance(
            NewInstance(instanceID: id, workflowName: workflow.name, serviceName: serviceName, input: input, workerID: configuration.workerID)
        )
        switch outcome {
        case .created(let instance):
            logger.debug("instance created", metadata: ["edda.instance.id": "\(id)", "edda.workflow.name": "\(workflow.name)"])
            schedule(Job(instance: instance, isNew: true))
        case .existing(let existing):
            guard existing.workflowName == workflow.name, existing.input == input else {
                throw EngineError(
                    .instanceAlreadyExists,
                    "Instance \(id) already exists as workflow '\(existing.workflowName)' with "
                        + (existing.workflowName == workflow.name ? "a different input" : "another workflow")
                        + ". Nothing was changed; choose another instance ID, or omit it to get a new one.",
                    instanceID: id
                )
            }
        }
        return WorkflowHandle(instanceID: id, workflowName: workflow.name, app: self)
    }

    /// A handle to an existing instance of `workflow`.
    public func handle<each Argument, Output>(
        for workflow: Workflow<repeat each Argument, Output>,
        instanceID: String
    ) -> WorkflowHandle<Output> {
        WorkflowHandle(instanceID: instanceID, workflowName: workflow.name, app: self)
    }

    static func checkInstanceID(_ id: String) throws {
        guard !id.isEmpty, id.utf8.count <= 255, !id.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw EngineError(
                .invalidInput, "Instance IDs must be 1 to 255 bytes with no line breaks. No instance was created.",
                instanceID: id
            )
        }
    }

    // MARK: - Looking things up

    /// One instance: status, input, output, error.
    public func instance(_ instanceID: String) async throws -> WorkflowInstance? {
        try await store.instance(instanceID)
    }

    /// An instance's history, in the order it was recorded.
    public func history(of instanceID: String) async throws -> [HistoryEvent] {
        try await store.history(of: instanceID)
    }

    /// Instances, newest first, optionally filtered by status and workflow name.
    public func instances(status: InstanceStatus? = nil, workflowName: String? = nil, limit: Int = 100) async throws -> [WorkflowInstance] {
        try await store.instances(matching: InstanceQuery(status: status, workflowName: workflowName, limit: limit))
    }

    /// Instances left running that this app could not resume, with the reason (today: their
    /// workflow is not registered). They stay in the store untouched.
    public var unresumableInstances: [String: EngineError] {
        state.withLock { $0.unresumable }
    }

    // MARK: - Running

    /// Runs the app until graceful shutdown or cancellation: resumes the instances a previous
    /// process left running, then executes every instance started.
    ///
    /// On graceful shutdown no new step starts; running activities finish and record their
    /// outcome; instances that did not finish stay `running` and resume on the next start.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/databaseInUse`` when
    ///   another process runs workers on the same SQLite file.
    public func run() async throws {
        let (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
        state.withLock { state in
            guard case .idle = state.phase else {
                preconditionFailure("EddaApp.run() was called twice; an app runs once. Create a new EddaApp to run again.")
            }
            state.phase = .running(continuation)
        }
        defer { finishRun() }
        try await store.attachWorker(configuration.workerID)
        logger.info("edda app running", metadata: ["edda.service": "\(serviceName)"])

        let environment = EngineEnvironment(
            store: store, clock: configuration.clock, defaultRetryPolicy: configuration.defaultRetryPolicy,
            isStopping: { [weak self] in self?.isStopping ?? true }
        )
        let resumable = try await store.claimResumableInstances(workerID: configuration.workerID)
        if !resumable.isEmpty {
            logger.info("resuming instances", metadata: ["edda.count": "\(resumable.count)"])
        }
        for instance in resumable {
            continuation.yield(Job(instance: instance, isNew: false))
        }

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await job in jobs {
                    guard claimExecution(of: job) else { continue }
                    group.addTask {
                        await self.execute(job, environment: environment)
                    }
                }
            }
        } onGracefulShutdown: {
            self.beginStopping()
        }
        try? await store.detachWorker(configuration.workerID)
        logger.info("edda app stopped")
    }

    /// Runs the app while `body` runs, then shuts it down gracefully and returns `body`'s result.
    ///
    /// For scripts, demos and tests; a server puts the app in its `ServiceGroup` instead. If the app
    /// fails to run (another process owns the SQLite file, say), `body` is cancelled and the app's
    /// error is thrown.
    public func run<Result: Sendable>(_ body: @escaping @Sendable (EddaApp) async throws -> Result) async throws -> Result {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger
            )
        )
        return try await withThrowingTaskGroup(of: Result?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask {
                do {
                    let result = try await body(self)
                    await group.triggerGracefulShutdown()
                    return result
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
            }
            var result: Result?
            do {
                for try await value in tasks {
                    if let value { result = value }
                }
            } catch {
                tasks.cancelAll()
                throw error
            }
            guard let result else {
                throw EngineError(.stopped, "The app stopped before the body passed to run(_:) returned.")
            }
            return result
        }
    }

    private var isStopping: Bool {
        state.withLock { state in
            switch state.phase {
            case .running: return false
            default: return true
            }
        }
    }

    private func beginStopping() {
        state.withLock { state in
            if case .running(let continuation) = state.phase {
                continuation.finish()
                state.phase = .stopping
            }
        }
        logger.info("edda app stopping: no new steps start")
    }

    private func finishRun() {
        let waiters = state.withLock { state in
            if case .running(let continuation) = state.phase {
                continuation.finish()
            }
            state.phase = .stopped
            let waiters = state.waiters
            state.waiters = [:]
            return waiters
        }
        let stopped = EngineError(.stopped, "The app stopped before the instance finished; it resumes on the next start.")
        for (_, continuations) in waiters {
            for continuation in continuations.values {
                continuation.yield(.failure(stopped))
                continuation.finish()
            }
        }
    }

    /// Hands a new instance to the run loop, marking it as executing here at once, so that
    /// `result()` called right after `start` waits in memory instead of reading the store.
    private func schedule(_ job: Job) {
        state.withLock { state in
            if case .running(let continuation) = state.phase, state.executing.insert(job.instance.instanceID).inserted {
                continuation.yield(job)
            }
        }
    }

    private func claimExecution(of job: Job) -> Bool {
        // New instances were claimed when scheduled; resumed ones are claimed here.
        job.isNew || state.withLock { $0.executing.insert(job.instance.instanceID).inserted }
    }

    // MARK: - Outcomes

    func outcome(of instanceID: String) async throws -> InstanceOutcome {
        let (stream, continuation) = AsyncStream.makeStream(of: Result<InstanceOutcome, any Error>.self)
        let token = UUID()
        let (registered, executingHere) = state.withLock { state -> (Bool, Bool) in
            if case .stopped = state.phase { return (false, false) }
            state.waiters[instanceID, default: [:]][token] = continuation
            return (true, state.executing.contains(instanceID))
        }
        defer {
            state.withLock { state in
                state.waiters[instanceID]?[token] = nil
                if state.waiters[instanceID]?.isEmpty == true {
                    state.waiters[instanceID] = nil
                }
            }
        }
        if executingHere {
            // Running in this process: its end is published to the waiter just registered.
            for await result in stream {
                return try result.get()
            }
            try Task.checkCancellation()
            throw EngineError(.stopped, "The app stopped before instance \(instanceID) finished.", instanceID: instanceID)
        }
        // Registered first, then read: an outcome published in between is not missed.
        guard let instance = try await store.instance(instanceID) else {
            throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID).", instanceID: instanceID)
        }
        if instance.status == .completed {
            return .completed(instance.output ?? JSONPayload(json: "null"))
        }
        if instance.status == .failed {
            return .failed(instance.error ?? ErrorRecord(type: "Error", message: "unknown failure"))
        }
        if let problem = unresumableInstances[instanceID] {
            throw problem
        }
        guard registered else {
            throw EngineError(.stopped, "The app has stopped; instance \(instanceID) resumes on the next start.", instanceID: instanceID)
        }
        for await result in stream {
            return try result.get()
        }
        try Task.checkCancellation()
        throw EngineError(.stopped, "The app stopped before instance \(instanceID) finished.", instanceID: instanceID)
    }

    func publish(_ instanceID: String, _ result: Result<InstanceOutcome, any Error>) {
        let waiters = state.withLock { state in
            state.executing.remove(instanceID)
            return state.waiters.removeValue(forKey: instanceID) ?? [:]
        }
        for continuation in waiters.values {
            continuation.yield(result)
            continuation.finish()
        }
    }

    func releaseExecution(of instanceID: String) {
        _ = state.withLock { $0.executing.remove(instanceID) }
    }

    func registration(named name: String) -> RegisteredWorkflow? {
        state.withLock { $0.workflows[name] }
    }

    func markUnresumable(_ instanceID: String, _ error: EngineError) {
        state.withLock { $0.unresumable[instanceID] = error }
        publish(instanceID, .failure(error))
    }
}

extension EddaApp: CustomStringConvertible {
    public var description: String { "EddaApp(\(serviceName))" }
}
