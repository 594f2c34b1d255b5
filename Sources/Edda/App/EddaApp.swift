import CoreMetrics
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The entry point: holds the store, the registered workflows, and runs instances.
///
/// ```swift
/// let app = EddaApp(store: try SQLiteStore(path: "orders.sqlite"), serviceName: "order-service")
/// try app.register(processOrder)
///
/// try await app.run { app in
///     let handle = try await app.start(processOrder, OrderInput(orderID: "ORD-1", amount: 20))
///     print(try await handle.result())
/// }
/// ```
///
/// `EddaApp` is a `Service`: in a server, put it in a `ServiceGroup` next to your HTTP server;
/// in a script or a test, ``run(_:)`` runs it for the duration of a closure. Running, it is a
/// worker: it claims the instances that are ready — left running by a previous process, say — and
/// runs each under a fenced lease, replaying it from its history (<doc:WorkersAndLeases>).
///
/// An app that does not run can still start instances, read them and wait for their results: a
/// running worker on the same store claims what it starts.
public final class EddaApp: Service, Sendable {
    /// The name of the service this app belongs to, stored with every instance it creates.
    public let serviceName: String
    /// The store.
    public let store: any Store
    /// The configuration.
    public let configuration: Configuration
    let logger: Logger
    /// Metrics, spans and hooks, set up once from the configuration.
    let observer: Observer
    private let state = Mutex(State())

    private struct State: Sendable {
        var workflows: [String: RegisteredWorkflow] = [:]
        var phase: Phase = .idle
        var waiters: [String: [UUID: AsyncStream<WaiterMessage>.Continuation]] = [:]
        /// Instances of unregistered workflows found at start, by ID: their workflow's name and the error.
        var unresumable: [String: (workflowName: String, error: EngineError)] = [:]
        /// Workflows started by events of a type (``startOnEvent(_:_:)``), by type.
        var eventHandlers: [String: [String]] = [:]
    }

    private enum Phase: Sendable {
        case idle
        /// `run()` was called; the worker is attaching to the store.
        case starting
        /// The worker is attached: instances started now are leased to it.
        case running(Worker)
        case stopped
    }

    /// What a `result()` waiter hears.
    private enum WaiterMessage: Sendable {
        /// The instance ended here.
        case outcome(Result<InstanceOutcome, any Error>)
        /// Look at the store again: the run here stopped without an outcome, or a poll is due.
        case recheck
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
        self.observer = Observer(configuration: configuration)
    }

    // MARK: - Registration

    /// Registers a workflow so the app's worker claims and resumes its instances.
    ///
    /// Register every workflow before ``run()``: a worker claims only instances of registered
    /// workflows, and reports the others (``unresumableInstances``) without touching them.
    /// ``start(_:_:instanceID:)`` registers the workflow it starts. Registering the same workflow
    /// value again does nothing.
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
            // Its instances are claimable now.
            state.unresumable = state.unresumable.filter { $0.value.workflowName != registration.name }
        }
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

    /// The names of the registered workflows.
    public var registeredWorkflowNames: [String] {
        state.withLock { $0.workflows.keys.sorted() }
    }

    /// The shape of each argument of the registered workflow `name` (see ``InputShape``), or `nil`
    /// when no workflow has that name: what the viewer's start form is generated from.
    public func inputShapes(ofWorkflowNamed name: String) -> [InputShape]? {
        registration(named: name)?.inputShapes.value
    }

    // MARK: - Starting instances

    /// Validates the arguments, creates an instance and runs it.
    ///
    /// The instance is durable when this returns: if the process dies now, the next worker to claim
    /// it runs it. While the app runs and has room (``Configuration-swift.struct/maxConcurrentInstances``),
    /// the instance is created already leased to this app's worker and starts at once, with no
    /// claim. Otherwise it is created ready, and the next claim takes it: this app's once it has
    /// room, or another worker's — an app that does not run can hand work to one that does.
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
    ///   ``EngineError/Code-swift.struct/workflowNameTaken``, or a ``StoreError``.
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
        try register(workflow.registration)
        let id = try await create(workflow.name, input: input, instanceID: instanceID)
        return WorkflowHandle(instanceID: id, workflowName: workflow.name, app: self)
    }

    /// Starts an instance of the registered workflow `name` from its arguments as JSON (an array,
    /// one element per argument: what ``WorkflowInstance/input`` holds): for the HTTP API, the CLI,
    /// and other callers that cannot name the Swift type.
    ///
    /// The input is decoded and validated as in ``start(_:_:instanceID:)`` before anything is written.
    ///
    /// - Returns: The instance's ID.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/unknownWorkflow``,
    ///   ``EngineError/Code-swift.struct/invalidInput`` (the cause says which field),
    ///   ``EngineError/Code-swift.struct/instanceAlreadyExists``, or a ``StoreError``.
    @discardableResult
    public func start(workflowNamed name: String, input: JSONPayload, instanceID: String? = nil) async throws -> String {
        guard let registration = registration(named: name) else {
            throw EngineError(
                .unknownWorkflow, "No workflow named '\(name)' is registered with this app. Registered: \(registeredWorkflowNames.joined(separator: ", ")).",
                instanceID: instanceID
            )
        }
        do {
            try registration.checkInput(input)
        } catch {
            throw EngineError(
                .invalidInput, "Input for workflow '\(name)' is invalid: \(error). No instance was created.", instanceID: instanceID, cause: error
            )
        }
        if let instanceID { try Self.checkInstanceID(instanceID) }
        return try await create(name, input: input, instanceID: instanceID)
    }

    /// Creates the instance (leased to this app's worker when it has room) or checks that an existing
    /// one with that ID has the same workflow and input.
    func create(_ name: String, input: JSONPayload, instanceID: String?, traceContext: [String: String]? = nil) async throws -> String {
        let id = instanceID ?? UUID().uuidString.lowercased()
        // Reserve room in this app's worker first, so the instance is created leased to it.
        let worker = runningWorker
        let reserved = worker?.reserve(id) ?? false
        let outcome: CreateInstanceOutcome
        do {
            outcome = try await store.createInstance(
                NewInstance(
                    instanceID: id, workflowName: name, serviceName: serviceName, input: input,
                    traceContext: traceContext ?? observer.currentTraceContext()
                ),
                leasedTo: reserved ? worker?.leaseRequest : nil
            )
        } catch {
            if reserved { worker?.unreserve(id) }
            throw error
        }
        switch outcome {
        case .created(let instance, let lease):
            logger.debug("instance created", metadata: ["edda.instance.id": "\(id)", "edda.workflow.name": "\(name)"])
            observer.metrics?.workflow(name).started.increment()
            observer.hooks?.post(.workflowStarted(WorkflowHookEvent(instanceID: id, workflowName: name, time: observer.clock.now())))
            if let worker, reserved {
                if let lease {
                    worker.launch(instance, lease: lease)
                } else {
                    // The store did not lease it: it is ready, and the next claim takes it.
                    worker.unreserve(id)
                }
            }
        case .existing(let existing):
            if reserved { worker?.unreserve(id) }
            guard existing.workflowName == name, existing.input == input else {
                throw EngineError(
                    .instanceAlreadyExists,
                    "Instance \(id) already exists as workflow '\(existing.workflowName)' with "
                        + (existing.workflowName == name ? "a different input" : "another workflow")
                        + ". Nothing was changed; choose another instance ID, or omit it to get a new one.",
                    instanceID: id
                )
            }
        }
        return id
    }

    /// Cancels an instance: it stops at its next step boundary (a step already running finishes and
    /// is recorded; a wait — a timer, a retry backoff — ends at once), its compensations run, and it
    /// ends with status ``InstanceStatus/cancelled``; its `result()` throws ``WorkflowCancelledError``.
    ///
    /// Works from any process on the store: a run in this app stops at once; a run on another worker
    /// learns it with that worker's next lease renewal (``Configuration-swift.struct/leaseRenewalInterval``);
    /// an instance waiting on a timer is woken to run its cancellation.
    ///
    /// ```swift
    /// try await app.cancel("order-1042")
    /// ```
    ///
    /// A request that races the instance's last step may lose: the instance completes (or fails),
    /// keeps that outcome, and no cancellation stays pending on it.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/alreadyFinished`` when the
    ///   instance has completed, failed or been cancelled (nothing is changed), or
    ///   ``EngineError/Code-swift.struct/instanceNotFound``. ``requestCancellation(of:)`` reports
    ///   these instead of throwing.
    public func cancel(_ instanceID: String) async throws {
        switch try await requestCancellation(of: instanceID) {
        case .requested:
            return
        case .finished(let instance):
            throw EngineError(
                .alreadyFinished, "Instance \(instanceID) has already \(instance.status); there is nothing to cancel, and nothing was changed.",
                instanceID: instanceID
            )
        case .notFound:
            throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID); nothing was cancelled.", instanceID: instanceID)
        }
    }

    /// Cancels an instance like ``cancel(_:)``, and reports whether the request took effect instead
    /// of throwing when it did not: for an API or a command that says what happened.
    ///
    /// ```swift
    /// switch try await app.requestCancellation(of: "order-1042") {
    /// case .requested: print("order-1042 stops at its next step")
    /// case .finished(let instance): print("order-1042 already \(instance.status); nothing to cancel")
    /// case .notFound: print("no instance order-1042")
    /// }
    /// ```
    ///
    /// - Returns: ``CancellationRequest/requested(_:)`` with the instance as marked (still running
    ///   or compensating: it stops at its next step boundary, unless its last step finishes first);
    ///   ``CancellationRequest/finished(_:)`` with the instance as it ended — completed, failed or
    ///   cancelled — and nothing changed; or ``CancellationRequest/notFound``.
    /// - Throws: A ``StoreError`` when the store cannot be reached.
    @discardableResult
    public func requestCancellation(of instanceID: String) async throws -> CancellationRequest {
        let outcome = try await store.requestCancellation(of: instanceID)
        if case .requested = outcome {
            logger.debug("cancellation requested", metadata: ["edda.instance.id": "\(instanceID)"])
            runningWorker?.cancelHere(instanceID)
        }
        return outcome
    }

    /// Runs a failed instance again from its failed step: the next run replays every step recorded
    /// as completed (their results, not their code) and runs the step that failed afresh, with a
    /// fresh retry budget. The failure's records move to the history archive under the run's number:
    /// nothing is deleted. A workflow that failed in its own code after its last step (not in a step)
    /// runs again from history as it is: it fails the same way unless its code changed.
    ///
    /// Compensations that already ran are **not** undone and do not run again, even if the retried
    /// run fails too (their records stay): retry an instance whose failure was compensated only if
    /// running its remaining steps after those compensations is what you want.
    ///
    /// - Returns: The step ID whose failure was moved aside, or `nil` when the workflow failed
    ///   outside a step (its code throws again unless it changed).
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound``, or
    ///   ``EngineError/Code-swift.struct/notFailed`` when the instance has not failed (nothing is changed).
    @discardableResult
    public func retry(_ instanceID: String) async throws -> String? {
        switch try await store.retry(instanceID) {
        case .retried(_, let step):
            logger.debug("instance retried", metadata: ["edda.instance.id": "\(instanceID)", "edda.step.id": "\(step ?? "-")"])
            return step
        case .notFailed(let instance):
            throw EngineError(
                .notFailed, "Instance \(instanceID) is \(instance.status), not failed: there is nothing to retry, and nothing was changed.",
                instanceID: instanceID
            )
        case .notFound:
            throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID); nothing was retried.", instanceID: instanceID)
        }
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

    /// A page of an instance's history (read in the database: for long histories).
    public func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent] {
        try await store.history(of: instanceID, matching: query)
    }

    /// Instances, newest first, optionally filtered by status and workflow name. For more than one
    /// page, use ``instances(matching:)``.
    public func instances(status: InstanceStatus? = nil, workflowName: String? = nil, limit: Int = 100) async throws -> [WorkflowInstance] {
        try await store.instances(matching: InstanceQuery(status: status, workflowName: workflowName, limit: limit)).instances
    }

    /// A page of instances; pass ``InstancePage/nextCursor`` as ``InstanceQuery/after`` for the next.
    public func instances(matching query: InstanceQuery) async throws -> InstancePage {
        try await store.instances(matching: query)
    }

    /// Instances left running that this app's worker does not claim, with the reason (their
    /// workflow is not registered), as found when the app started. They stay in the store untouched.
    public var unresumableInstances: [String: EngineError] {
        state.withLock { $0.unresumable.mapValues(\.error) }
    }

    // MARK: - Running

    /// Runs the app's worker until graceful shutdown or cancellation: claims the instances that are
    /// ready — left running by a previous process, released, or created by an app that does not
    /// run — and runs every instance started here.
    ///
    /// At most ``Configuration-swift.struct/maxConcurrentInstances`` run at once. On graceful
    /// shutdown no new claim or step starts; running activities finish and record their outcome;
    /// retry backoffs end at once; every lease is released, so the instances resume on the next
    /// claim, here or on another worker.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code-swift.struct/databaseInUse`` when
    ///   another process runs workers on the same SQLite file.
    public func run() async throws {
        let worker = Worker(app: self, logger: logger)
        state.withLock { state in
            guard case .idle = state.phase else {
                preconditionFailure("EddaApp.run() was called twice; an app runs once. Create a new EddaApp to run again.")
            }
            state.phase = .starting
        }
        defer { finishRun() }
        // Hooks are called from a task of their own, off the engine's path; what is queued when the
        // worker stops is still delivered before run() returns.
        let delivery = observer.hooks.map { hooks in
            let events = hooks.currentEvents()
            return Task { await hooks.deliver(events) }
        }
        do {
            try await worker.run()
        } catch {
            observer.hooks?.finish()
            await delivery?.value
            throw error
        }
        observer.hooks?.finish()
        await delivery?.value
    }

    /// The worker holds the store: from now on, instances started here are leased to it. Before
    /// (and if attaching fails, ever), they are created ready for whichever worker claims them.
    func workerAttached(_ worker: Worker) {
        state.withLock { state in
            if case .starting = state.phase { state.phase = .running(worker) }
        }
    }

    /// Runs the app while `body` runs, then shuts it down gracefully and returns `body`'s result.
    ///
    /// For scripts, demos and tests; a server puts the app in its `ServiceGroup` instead. A store that
    /// is itself a `Service` (`PostgresStore`) runs alongside. If the app fails to run (another
    /// process owns the SQLite file, say), `body` is cancelled and the app's error is thrown.
    /// Instances `body` started before that stay, ready: starting from a process that runs no worker
    /// is how work is handed to the one that does, which claims them at its next poll
    /// (``Configuration-swift.struct/pollInterval``, or at once on PostgreSQL through NOTIFY).
    public func run<Result: Sendable>(_ body: @escaping @Sendable (EddaApp) async throws -> Result) async throws -> Result {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // A store with a run loop of its own (PostgreSQL's connection pool) runs first and stops last.
        if let storeService = store as? any Service {
            services.append(.init(service: storeService))
        }
        services.append(.init(service: self, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
        return try await withThrowingTaskGroup(of: Result?.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                } catch {
                    throw AppRunFailure(error: error)
                }
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
            var bodyError: (any Error)?
            while let next = await tasks.nextResult() {
                switch next {
                case .success(let value):
                    if let value { result = value }
                case .failure(let failure as AppRunFailure):
                    // The app's own failure explains the body's (a waiter told "stopped", say): it wins.
                    tasks.cancelAll()
                    throw failure.error
                case .failure(let error):
                    tasks.cancelAll()
                    bodyError = bodyError ?? error
                }
            }
            if let bodyError { throw bodyError }
            guard let result else {
                throw EngineError(.stopped, "The app stopped before the body passed to run(_:) returned.")
            }
            return result
        }
    }

    /// The instances this app's worker runs now (or has reserved room for). For tests and diagnostics.
    package var instancesRunningHere: Set<String> {
        runningWorker?.inFlight ?? []
    }

    private var runningWorker: Worker? {
        state.withLock { state in
            if case .running(let worker) = state.phase { return worker }
            return nil
        }
    }

    private func finishRun() {
        let waiters = state.withLock { state in
            state.phase = .stopped
            let waiters = state.waiters
            state.waiters = [:]
            return waiters
        }
        let stopped = EngineError(.stopped, "The app stopped before the instance finished; it resumes on the next claim.")
        for (_, continuations) in waiters {
            for continuation in continuations.values {
                continuation.yield(.outcome(.failure(stopped)))
                continuation.finish()
            }
        }
    }

    // MARK: - Outcomes

    /// Waits for the instance's outcome: in memory while it runs in this process, otherwise by
    /// reading the store again with a backoff (10 ms doubling to ``Configuration-swift.struct/resultPollInterval``).
    func outcome(of instanceID: String) async throws -> InstanceOutcome {
        let (stream, continuation) = AsyncStream.makeStream(of: WaiterMessage.self)
        let token = UUID()
        let registered = state.withLock { state -> Bool in
            if case .stopped = state.phase { return false }
            state.waiters[instanceID, default: [:]][token] = continuation
            return true
        }
        defer {
            state.withLock { state in
                state.waiters[instanceID]?[token] = nil
                if state.waiters[instanceID]?.isEmpty == true {
                    state.waiters[instanceID] = nil
                }
            }
        }
        // Watched before the first read: a finish announced in between is not missed.
        let watch = store.outcomes.watch(instanceID)
        defer { watch.end() }
        var pollDelay = Duration.milliseconds(10)
        var iterator = stream.makeAsyncIterator()
        while true {
            // Registered first, then read: an outcome published in between is not missed.
            if runningWorker?.isRunningHere(instanceID) != true {
                guard let instance = try await store.instance(instanceID) else {
                    throw EngineError(.instanceNotFound, "No workflow instance has ID \(instanceID).", instanceID: instanceID)
                }
                if instance.status == .completed {
                    return .completed(instance.output ?? JSONPayload(json: "null"))
                }
                if instance.status == .failed {
                    return .failed(instance.error ?? ErrorRecord(type: "Error", message: "unknown failure"))
                }
                if instance.status == .cancelled {
                    return .cancelled(instance.error ?? ErrorRecord(WorkflowCancelledError(instanceID: instanceID)))
                }
                if let problem = state.withLock({ $0.unresumable[instanceID]?.error }) {
                    throw problem
                }
                guard registered else {
                    throw EngineError(.stopped, "The app has stopped; instance \(instanceID) resumes on the next claim.", instanceID: instanceID)
                }
                // Running elsewhere (or waiting to be claimed): look again when the store announces an
                // outcome, or after a while.
                let delay = pollDelay
                pollDelay = min(pollDelay * 2, configuration.resultPollInterval)
                Task {
                    await watch.wait(upTo: delay)
                    continuation.yield(.recheck)
                }
            }
            switch await iterator.next() {
            case .outcome(let result):
                return try result.get()
            case .recheck:
                continue
            case nil:
                try Task.checkCancellation()
                throw EngineError(.stopped, "The app stopped before instance \(instanceID) finished.", instanceID: instanceID)
            }
        }
    }

    /// Tells the instance's waiters how it ended here, or (`nil`) that it stopped here without an
    /// outcome and they should look at the store again.
    func publish(_ instanceID: String, _ result: Result<InstanceOutcome, any Error>?) {
        let waiters = state.withLock { state in
            result == nil ? state.waiters[instanceID] ?? [:] : state.waiters.removeValue(forKey: instanceID) ?? [:]
        }
        for continuation in waiters.values {
            if let result {
                continuation.yield(.outcome(result))
                continuation.finish()
            } else {
                continuation.yield(.recheck)
            }
        }
    }

    func registration(named name: String) -> RegisteredWorkflow? {
        state.withLock { $0.workflows[name] }
    }

    func markUnresumable(_ instance: WorkflowInstance) {
        let error = EngineError(
            .unknownWorkflow,
            "Instance \(instance.instanceID) belongs to workflow '\(instance.workflowName)', which this app has not "
                + "registered, so its worker does not claim it. The instance was kept as it is; register the workflow "
                + "(app.register(…)) to resume it.",
            instanceID: instance.instanceID
        )
        logger.debug(
            "instance left running by a workflow this app has not registered",
            metadata: ["edda.instance.id": "\(instance.instanceID)", "edda.workflow.name": "\(instance.workflowName)"]
        )
        let stillUnknown = state.withLock { state -> Bool in
            guard state.workflows[instance.workflowName] == nil else { return false }
            state.unresumable[instance.instanceID] = (instance.workflowName, error)
            return true
        }
        if stillUnknown { publish(instance.instanceID, .failure(error)) }
    }
}

/// Carries the app's own error out of ``EddaApp/run(_:)``'s task group, to tell it from the body's.
private struct AppRunFailure: Error {
    let error: any Error
}

extension EddaApp: CustomStringConvertible {
    public var description: String { "EddaApp(\(serviceName))" }
}
