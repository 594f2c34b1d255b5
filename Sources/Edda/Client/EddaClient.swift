import CoreMetrics
import Foundation
public import Logging
import Synchronization

/// Starts, finds, cancels, retries and awaits workflow instances — without running a worker.
///
/// A client is all a process needs to hand work to the workers on a store and follow it: a request
/// handler that starts an order workflow, the viewer, the CLI, another service. ``EddaApp`` has one
/// (``EddaApp/client``) and offers its methods too; in an app that runs, the client leases what it
/// starts to the app's own worker, so it starts at once with no claim.
///
/// ```swift
/// let client = EddaClient(store: try SQLiteStore(path: "orders.sqlite"), serviceName: "order-api")
/// let handle = try await client.start(processOrder, OrderInput(orderID: "ORD-1", amount: 20))
/// print(try await handle.result())   // waits for whichever worker runs it
/// ```
public final class EddaClient: Sendable {
    /// The name of the service this client belongs to, stored with every instance it creates.
    public let serviceName: String
    /// The store.
    public let store: any Store
    /// The configuration (its clock, result polling; the worker settings matter to a worker only).
    public let configuration: EddaApp.Configuration
    /// The workflows known by name: for
    /// ``start(workflowNamed:input:instanceID:queue:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)``
    /// and events that start workflows.
    public let registry: WorkflowRegistry
    let logger: Logger
    /// Metrics, spans and hooks, set up once from the configuration.
    let observer: Observer
    /// Outcomes of runs in this process, for the waiters here.
    let outcomes = LocalOutcomes()
    /// The worker of the app this client belongs to, while it runs: instances started here are leased to it.
    private let localWorker = Mutex<Worker?>(nil)

    /// Creates a client on `store`.
    ///
    /// - Parameters:
    ///   - store: Where instances and history live.
    ///   - serviceName: Your service's name, stored with each instance (`"order-api"`).
    ///   - configuration: The clock and how often ``WorkflowHandle/result()`` reads the store.
    ///   - registry: The workflows known by name; a client that starts workflows by value needs none.
    ///   - logger: The logger.
    public convenience init(
        store: some Store, serviceName: String, configuration: EddaApp.Configuration = .init(), registry: WorkflowRegistry = WorkflowRegistry(),
        logger: Logger = Logger(label: "edda")
    ) {
        self.init(store: store, serviceName: serviceName, configuration: configuration, registry: registry, observer: Observer(configuration: configuration), logger: logger)
    }

    init(store: any Store, serviceName: String, configuration: EddaApp.Configuration, registry: WorkflowRegistry, observer: Observer, logger: Logger) {
        self.store = store
        self.serviceName = serviceName
        self.configuration = configuration
        self.registry = registry
        self.observer = observer
        self.logger = logger
    }

    /// The app's worker attached to the store (or, `nil`, stopped): instances started from now on are leased to it.
    func attach(_ worker: Worker?) {
        localWorker.withLock { $0 = worker }
    }

    var runningWorker: Worker? {
        localWorker.withLock { $0 }
    }

    // MARK: - Starting instances

    /// Validates the arguments, creates an instance and runs it.
    ///
    /// The instance is durable when this returns: if the process dies now, the next worker to claim
    /// it runs it. While the app runs and has room (``EddaApp/Configuration-swift.struct/maxConcurrentInstances``),
    /// the instance is created already leased to this app's worker and starts at once, with no
    /// claim. Otherwise it is created ready, and the next claim takes it: this app's once it has
    /// room, or another worker's — an app that does not run can hand work to one that does.
    ///
    /// Starting with an `instanceID` that exists never creates a second instance: if the existing
    /// instance has the same workflow and the same input, you get a handle to it (whatever its
    /// status); otherwise the call throws ``EngineError/Code-swift.struct/instanceAlreadyExists``.
    ///
    /// A `timeout` cancels the instance if it has not finished that long after this start (see
    /// ``Workflow/init(_:timeout:runTimeout:validate:_:)``); it and `runTimeout` override the workflow's own.
    ///
    /// ```swift
    /// let handle = try await client.start(checkout, cart, timeout: .seconds(30))
    /// ```
    ///
    /// - Parameters:
    ///   - workflow: The workflow to run; registered (in ``registry``) if it was not.
    ///   - arguments: Its arguments.
    ///   - instanceID: The instance's ID. Defaults to a new UUID.
    ///   - timeout: The workflow timeout, from now to the instance's end across continue-as-new.
    ///     Defaults to the workflow's (`nil`: the workflow's, or none).
    ///   - runTimeout: The timeout of each run of a continue-as-new chain. Defaults to the workflow's.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/invalidInput`` when
    ///   validation fails or a timeout is not positive (nothing is written),
    ///   ``EngineError/Code-swift.struct/instanceAlreadyExists``,
    ///   ``EngineError/Code-swift.struct/workflowNameTaken``, or a ``StoreError``.
    @discardableResult
    public func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        instanceID: String? = nil,
        timeout: Duration? = nil,
        runTimeout: Duration? = nil
    ) async throws -> WorkflowHandle<Output> {
        try await start(
            workflow, repeat each arguments, instanceID: instanceID, placement: nil, timeouts: InstanceTimeouts(workflow: timeout, run: runTimeout)
        )
    }

    func start<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>,
        _ arguments: repeat each Argument,
        instanceID: String?,
        placement: QueuePlacement?,
        timeouts: InstanceTimeouts
    ) async throws -> WorkflowHandle<Output> {
        try Self.check(timeouts, workflowName: workflow.name, instanceID: instanceID)
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
        try registry.register(workflow.registration)
        let id = try await create(
            workflow.name, input: input, instanceID: instanceID, placement: placement, timeouts: workflow.timeouts.overridden(by: timeouts)
        )
        return WorkflowHandle(instanceID: id, workflowName: workflow.name, client: self)
    }

    /// Starts an instance of the registered workflow `name` from its arguments as JSON (an array,
    /// one element per argument: what ``WorkflowInstance/input`` holds): for the HTTP API, the CLI,
    /// and other callers that cannot name the Swift type.
    ///
    /// The input is decoded and validated as in ``start(_:_:instanceID:timeout:runTimeout:)`` before anything is written.
    /// With `queue`, the instance is started on the registered ``Queue`` of that name, as
    /// ``start(_:_:instanceID:on:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)`` does.
    ///
    /// - Parameters:
    ///   - name: The workflow's registered name.
    ///   - input: Its arguments as a JSON array.
    ///   - instanceID: The instance's ID. Defaults to a new UUID.
    ///   - queue: The name of a queue registered with this app (``register(_:)``), or `nil` for none.
    ///   - priority: On `queue`: lower numbers are admitted first; 0 by default.
    ///   - deduplicationID: On `queue`: refused while another instance holds it there.
    ///   - partitionKey: On a partitioned `queue`: the partition whose limits it counts against.
    ///   - queueTimeout: On `queue`: taken out of line and cancelled if still queued this long from now.
    ///   - timeout: The workflow timeout, counted from now (queued time included). Defaults to the workflow's.
    ///   - runTimeout: The timeout of each run. Defaults to the workflow's.
    /// - Returns: The instance's ID.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/unknownWorkflow``,
    ///   ``EngineError/Code-swift.struct/unknownQueue``, ``EngineError/Code-swift.struct/invalidInput``
    ///   (the cause says which field; or a timeout that is not positive), ``EngineError/Code-swift.struct/instanceAlreadyExists``,
    ///   ``EngineError/Code-swift.struct/deduplicationIDInUse``, ``EngineError/Code-swift.struct/invalidQueueOptions``,
    ///   or a ``StoreError``.
    @discardableResult
    public func start(
        workflowNamed name: String, input: JSONPayload, instanceID: String? = nil, queue: String? = nil, priority: Int = 0,
        deduplicationID: String? = nil, partitionKey: String? = nil, queueTimeout: Duration? = nil,
        timeout: Duration? = nil, runTimeout: Duration? = nil
    ) async throws -> String {
        guard let registration = registry.registration(named: name) else {
            throw EngineError(
                .unknownWorkflow, "No workflow named '\(name)' is registered with this app. Registered: \(registry.names.joined(separator: ", ")).",
                instanceID: instanceID
            )
        }
        var placement: QueuePlacement?
        if let queue {
            guard let registered = registry.queue(named: queue) else {
                let names = registry.queues.map(\.name)
                throw EngineError(
                    .unknownQueue,
                    "No queue named '\(queue)' is registered with this app, so nothing was started. "
                        + (names.isEmpty ? "It registers no queue: " : "Registered: \(names.joined(separator: ", ")). ")
                        + "Register it with app.register(Queue(\"\(queue)\", …)) in the app that starts on it.",
                    instanceID: instanceID
                )
            }
            placement = try Self.placement(
                on: registered, priority: priority, deduplicationID: deduplicationID, partitionKey: partitionKey, timeout: queueTimeout,
                instanceID: instanceID
            )
        } else if deduplicationID != nil || priority != 0 || partitionKey != nil || queueTimeout != nil {
            throw EngineError(
                .invalidQueueOptions,
                "A priority, a deduplication ID, a partition key or a queue timeout applies to a start on a queue; name the queue too. "
                    + "Nothing was started.",
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
        let timeouts = InstanceTimeouts(workflow: timeout, run: runTimeout)
        try Self.check(timeouts, workflowName: name, instanceID: instanceID)
        if let queue = placement.flatMap({ registry.queue(named: $0.queue) }) { try await declare(queue) }
        return try await create(
            name, input: input, instanceID: instanceID, placement: placement, timeouts: registration.timeouts.overridden(by: timeouts)
        )
    }

    /// Throws ``EngineError/Code-swift.struct/invalidInput`` for a timeout that is not positive.
    static func check(_ timeouts: InstanceTimeouts, workflowName: String, instanceID: String?) throws {
        guard let problem = timeouts.problem else { return }
        throw EngineError(
            .invalidInput, "Start of workflow '\(workflowName)': \(problem). No instance was created; pass nil for the workflow's own timeout.",
            instanceID: instanceID
        )
    }

    /// Creates the instance (leased to this app's worker when it has room) or checks that an existing
    /// one with that ID has the same workflow and input.
    func create(
        _ name: String, input: JSONPayload, instanceID: String?, traceContext: [String: String]? = nil, placement: QueuePlacement? = nil,
        timeouts: InstanceTimeouts = .none
    ) async throws -> String {
        let id = instanceID ?? UUID().uuidString.lowercased()
        // Reserve room in this app's worker first, so the instance is created leased to it; one on a
        // queue waits for a claim to admit it.
        let worker = runningWorker
        let reserved = placement == nil && (worker?.reserve(id) ?? false)
        let new = NewInstance(
            instanceID: id, workflowName: name, serviceName: serviceName, input: input, traceContext: traceContext ?? observer.currentTraceContext(),
            placement: placement, timeouts: timeouts, applicationVersion: configuration.applicationVersion
        )
        var failures = 0
        let outcome: CreateInstanceOutcome
        while true {
            do {
                outcome = try await store.createInstance(new, leasedTo: reserved ? worker?.leaseRequest : nil)
                break
            } catch let error as StoreError where error.code == .database && failures < 2 {
                // The store failed, or its answer was lost after the insert committed: try again with
                // the same ID, which finds the instance if it was created (a new ID would make a second).
                failures += 1
                logger.debug("creating an instance failed; trying again with its ID", metadata: ["edda.instance.id": "\(id)", "edda.error": "\(error)"])
                try? await Task.sleep(for: configuration.storeRetryPolicy.delay(afterAttempt: failures))
                if Task.isCancelled {
                    if reserved { worker?.unreserve(id) }
                    throw CancellationError()
                }
            } catch {
                if reserved { worker?.unreserve(id) }
                throw error
            }
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
        case .deduplicated(let holder):
            if reserved { worker?.unreserve(id) }
            throw EngineError(
                .deduplicationIDInUse,
                "Instance \(holder.instanceID) (\(holder.status)) on queue '\(placement?.queue ?? "")' holds deduplication ID "
                    + "'\(placement?.deduplicationID ?? "")'. Nothing was created; start again once it has finished, or use another ID.",
                instanceID: holder.instanceID
            )
        case .existing(let existing):
            if reserved { worker?.unreserve(id) }
            if failures > 0, let worker, existing.leaseOwner == worker.leaseRequest.owner {
                // Created by the try whose answer was lost, leased to this worker by a lease that may
                // have lapsed meanwhile: the worker's next claim takes it back under a lease of its own
                // (and reads its history), unless another worker claimed it since.
                worker.takeBackUnknownLeases()
            }
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
    /// learns it with that worker's next lease renewal (``EddaApp/Configuration-swift.struct/leaseRenewalInterval``);
    /// an instance waiting on a timer is woken to run its cancellation.
    ///
    /// ```swift
    /// try await client.cancel("order-1042")
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
    /// switch try await client.requestCancellation(of: "order-1042") {
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
    /// The retry is recorded in the instance's history, in the same transaction: a
    /// ``HistoryEventKind/retried`` record whose ``RetryRecord`` payload says who asked
    /// (`requestedBy`), which step runs again, and the failure moved to the archive — so that the
    /// failure stays in view (the viewer shows it, marked archived).
    ///
    /// The instance runs on a worker that registers its workflow: this app's, once it runs, or
    /// another app's on the same store. Until one does (`edda serve` and the `edda` CLI run none),
    /// the retry stays recorded and the instance waits, ready.
    ///
    /// ```swift
    /// let step = try await client.retry("order-1042", requestedBy: "support: ticket 311")
    /// ```
    ///
    /// - Parameters:
    ///   - instanceID: The failed instance.
    ///   - requestedBy: Who asks, as recorded in history. Defaults to `"app"`.
    /// - Returns: The step ID whose failure was moved aside, or `nil` when the workflow failed
    ///   outside a step (its code throws again unless it changed).
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/instanceNotFound``, or
    ///   ``EngineError/Code-swift.struct/notFailed`` when the instance has not failed (nothing is changed).
    @discardableResult
    public func retry(_ instanceID: String, requestedBy: String = "app") async throws -> String? {
        switch try await store.retry(instanceID, requestedBy: requestedBy) {
        case .retried(_, let step):
            logger.debug(
                "instance retried", metadata: ["edda.instance.id": "\(instanceID)", "edda.step.id": "\(step ?? "-")", "edda.retry.by": "\(requestedBy)"]
            )
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
        WorkflowHandle(instanceID: instanceID, workflowName: workflow.name, client: self)
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

    /// Workflows this service started instances of that the app's worker does not claim (they are
    /// not registered here), with how many were left running when the worker started. They stay
    /// in the store untouched; registering the workflow resumes them, and drops it from here.
    ///
    /// Only this service's instances (``WorkflowInstance/serviceName``) are counted: another
    /// service sharing the database runs its own. `result()` of such an instance waits, as for
    /// any instance running elsewhere.
    public var unresumableWorkflows: [String: Int] {
        outcomes.unresumable(registry: registry)
    }
}
