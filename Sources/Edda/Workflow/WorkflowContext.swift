public import Logging
import CoreMetrics

/// A workflow instance's view of itself while it runs; the first argument of every workflow body.
///
/// Pass it to each activity call. It assigns step IDs, answers from history on replay and records
/// fresh results.
///
/// ```swift
/// let signup = Workflow("user_signup") { (ctx, email: String, name: String) -> SignupResult in
///     ctx.logger.info("signing up", metadata: ["replaying": "\(ctx.isReplaying)"])
///     let user = try await createAccount(ctx, email, name)
///     …
/// }
/// ```
public final class WorkflowContext: Sendable {
    /// The instance's ID.
    public let instanceID: String
    /// The workflow's registered name.
    public let workflowName: String
    /// Which run of the instance this is: 1, then one more with each ``continueAsNew(with:)``.
    public let runNumber: Int
    /// The application version the instance was started with (``WorkflowInstance/applicationVersion``),
    /// or `nil` when unversioned: the child workflows it starts are recorded with it.
    public let applicationVersion: String?
    /// The app's logger, without per-instance metadata: setting metadata costs more than a step.
    let baseLogger: Logger

    /// Logger with `edda.instance.id` and `edda.workflow.name` metadata, built when you ask for it.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "edda.instance.id"] = "\(instanceID)"
        logger[metadataKey: "edda.workflow.name"] = "\(workflowName)"
        return logger
    }

    let environment: EngineEnvironment
    /// This workflow's metrics, looked up once per run (`nil` without instrumentation).
    let metrics: EngineMetrics.Workflow?
    /// The lease this run writes under: every record it appends is fenced by it.
    let lease: Lease
    /// This run's state: every step boundary asks it what to do.
    let run: ActiveRun
    private let topLevelTask: Int?

    init(
        instanceID: String, workflowName: String, runNumber: Int, applicationVersion: String? = nil, lease: Lease, run: ActiveRun,
        environment: EngineEnvironment, logger: Logger
    ) {
        self.applicationVersion = applicationVersion
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.runNumber = runNumber
        self.lease = lease
        self.run = run
        self.environment = environment
        self.metrics = environment.observer.metrics?.workflow(workflowName)
        self.baseLogger = logger
        self.topLevelTask = withUnsafeCurrentTask { $0?.hashValue }
    }

    /// `true` while recorded steps lie ahead: the workflow is re-running code whose results are
    /// already in history. Use it to keep logs and metrics from counting replayed work twice.
    public var isReplaying: Bool {
        run.withMachine { $0.replay.isReplaying }
    }

    /// How many steps this run has requested so far.
    public var currentStep: Int {
        run.withMachine { $0.replay.stepCount }
    }

    /// A key unique to this instance and the given name, stable across replays: for calls to
    /// external APIs that deduplicate.
    public func idempotencyKey(_ name: String) -> String {
        "\(instanceID)/\(name)"
    }

    /// Registers a compensation by hand: it runs if the workflow fails, in reverse order with the
    /// compensations of completed activities, and is recorded like them.
    ///
    /// Register at the same point on every run (after the step it undoes), as workflow code is replayed.
    ///
    /// ```swift
    /// let booking = try await bookFlight(ctx, trip)
    /// try ctx.addCompensation("cancel_flight") { actx in try await airline.cancel(booking.id) }
    /// ```
    ///
    /// - Parameters:
    ///   - name: The name recorded in history.
    ///   - id: A stable ID; defaults to `name#N`, N counting this name's registrations.
    ///   - retry: The retry policy; `nil` uses the app's default.
    public func addCompensation(
        _ name: String,
        id: String? = nil,
        retry: RetryPolicy? = nil,
        _ body: @escaping @Sendable (ActivityContext) async throws -> Void
    ) throws {
        let key = id ?? run.withMachine { $0.manualCompensationKey(name) }
        try pushCompensation(PendingCompensation(stepID: "compensate:\(key)", name: name, retryPolicy: retry, run: body))
    }

    // MARK: - Engine side

    func pushCompensation(_ compensation: PendingCompensation) throws {
        try run.withMachine { try $0.pushCompensation(compensation) }
    }

    /// Runs the registered compensations in reverse order, skipping those history has an outcome for.
    /// Stops early when the run must stop (shutdown, a lost lease, a store failure).
    func runCompensations() async {
        let (pending, replay) = run.withMachine { ($0.compensations, $0.replay) }
        for compensation in pending.reversed() {
            if replay.compensationOutcome(compensation.stepID) != nil { continue }
            if mustStop { return }
            // An unreadable attempt record fails the step, as it does an activity's: the compensation
            // is recorded as failed with the reason, not run again, and the others still run.
            let prior: ReplayState.PriorAttempts?
            let unreadable: (any Error)?
            do {
                prior = try replay.priorAttempts(for: compensation.stepID)
                unreadable = nil
            } catch {
                prior = nil
                unreadable = error
            }
            let reservation = ReplayState.Reservation(
                stepID: compensation.stepID, name: compensation.name, position: nil, stepNumber: currentStep,
                decision: .execute, priorAttempts: prior
            )
            let executor = StepExecutor(
                context: self, reservation: reservation,
                policy: unreadable == nil ? compensation.retryPolicy ?? environment.defaultRetryPolicy : .noRetry, kinds: .compensation
            )
            do {
                _ = try await executor.run { activityContext -> Bool in
                    if let unreadable { throw TerminalError("The compensation's attempt record cannot be read: \(unreadable)") }
                    try await compensation.run(activityContext)
                    return true
                }
            } catch {
                if mustStop { return }
                baseLogger.debug(
                    "compensation failed; continuing with the others",
                    metadata: ["edda.instance.id": "\(instanceID)", "edda.step.id": "\(compensation.stepID)"]
                )
            }
        }
    }

    /// Whether the run must stop without an outcome.
    private var mustStop: Bool {
        run.withMachine { $0.stop != nil }
    }

    /// Whether the caller runs in the workflow's own task, whose order of requests is deterministic.
    var isTopLevel: Bool {
        topLevelTask != nil && withUnsafeCurrentTask { $0?.hashValue } == topLevelTask
    }

    func reserveStep(name: String, explicitID: String?) throws -> ReplayState.Reservation {
        let topLevel = isTopLevel
        let reservation = try run.withMachine { try $0.reserveStep(name: name, explicitID: explicitID, topLevel: topLevel, now: .now) }
        if case .replay(let recorded) = reservation.decision { replayed(recorded) }
        return reservation
    }

    /// Counts a step answered from history; an activity's result is told to the hooks (`fromHistory`).
    private func replayed(_ recorded: HistoryEvent) {
        metrics?.stepsReplayed.increment()
        if recorded.kind == .activityCompleted, let hooks = environment.observer.hooks {
            let event = ActivityHookEvent(
                instanceID: instanceID, workflowName: workflowName, activityName: recorded.name, stepID: recorded.stepID,
                attempt: recorded.retry?.totalAttempts ?? 1, time: environment.clock.now()
            )
            hooks.post(.activityCompleted(event, fromHistory: true))
        }
    }

    /// Whether an earlier run recorded a top-level step after `position`.
    func hasRecordedStep(afterPosition position: Int) -> Bool {
        run.withMachine { $0.replay.hasRecordedStep(afterPosition: position) }
    }

    /// Where this run stands on a broadcast channel, or `nil` before it subscribed.
    func channelCursor(_ channel: String) -> Int64? {
        run.withMachine { $0.channelCursor(channel) }
    }

    /// Moves this run's position on a broadcast channel forward to `sequence`.
    func advanceChannelCursor(_ channel: String, to sequence: Int64) {
        run.withMachine { $0.advanceChannelCursor(channel, to: sequence) }
    }

    /// Records that the run met its cancellation (a wait ended by it, say).
    func noteCancelled() {
        run.withMachine { $0.noteCancelled() }
    }

    /// Marks the run as ending with `error` no matter what the workflow does next.
    func fail(with error: any Error) {
        run.withMachine { $0.fail(with: error) }
    }

    /// Marks the run as stopping without an outcome.
    func stop(_ reason: RunStateMachine.Stop) {
        run.withMachine { $0.stop(reason) }
    }

    /// Throws when this run may no longer write: it is over (the context escaped in a task the
    /// workflow left running) or its lease is lost.
    func checkMayRecord() throws {
        let refusal = run.withMachine { machine -> RunStopped.Reason? in
            guard !machine.mayRecord() else { return nil }
            return machine.phase == .ended ? .ended : .leaseLost
        }
        if let refusal { throw RunStopped(reason: refusal, instanceID: instanceID) }
    }

    /// A write of this run failed: the run stops without an outcome (a refused fence: the lease is lost).
    func writeFailed(_ error: any Error) {
        run.withMachine { $0.writeFailed(error) }
    }

    /// Runs one write of this run's through the store: refused once the run may no longer write,
    /// and a failure stops the run (the step is asked for again by the next run).
    func write<Result>(_ operation: (any Store) async throws -> Result) async throws -> Result {
        try checkMayRecord()
        do {
            return try await operation(environment.store)
        } catch {
            writeFailed(error)
            throw error
        }
    }

    func runStep<Output: Codable & Sendable>(
        _ reservation: ReplayState.Reservation,
        retryPolicy: RetryPolicy?,
        transactionMode: TransactionMode,
        limits: AttemptLimits = AttemptLimits(),
        _ body: @escaping @Sendable (ActivityContext) async throws -> Output
    ) async throws -> Output {
        switch reservation.decision {
        case .replay(let event):
            return try replayed(event, as: Output.self)
        case .execute:
            let executor = StepExecutor(
                context: self, reservation: reservation, policy: retryPolicy ?? environment.defaultRetryPolicy,
                transactionMode: transactionMode, limits: limits
            )
            return try await executor.run(body)
        }
    }

    /// The payload a step recorded, as `Value`; an unreadable one fails the run (history is left as it is).
    func decodeRecorded<Value: Decodable>(_ event: HistoryEvent, as: Value.Type) throws -> Value {
        do {
            guard let payload = event.payload else {
                throw DecodingError.valueNotFound(Value.self, .init(codingPath: [], debugDescription: "Nothing recorded"))
            }
            return try payload.decode(Value.self)
        } catch {
            let failure = EngineError(
                .corruptHistory,
                "The recorded result of step '\(event.stepID)' of instance \(instanceID) cannot be decoded as "
                    + "\(Value.self). The history was left as it is; if the result type changed, run new instances "
                    + "under a new workflow name.",
                instanceID: instanceID, stepID: event.stepID, cause: error
            )
            fail(with: failure)
            throw failure
        }
    }

    private func replayed<Output: Decodable>(_ event: HistoryEvent, as: Output.Type) throws -> Output {
        switch event.kind {
        case .activityCompleted:
            return try decodeRecorded(event, as: Output.self)
        default:
            let record = event.error ?? ErrorRecord(type: "Error", message: "unknown failure")
            if let retry = event.retry, retry.exhausted {
                throw RetryExhaustedError(
                    activityName: event.name, stepID: event.stepID, attempts: retry.totalAttempts,
                    totalDuration: .milliseconds(retry.totalDurationMilliseconds), errors: retry.errors,
                    cause: RecordedError(retry.lastError ?? record)
                )
            }
            throw TerminalError(record: record)
        }
    }
}

/// What the engine gives every running instance: the store, the clock and the defaults.
struct EngineEnvironment: Sendable {
    let store: any Store
    let clock: any WorkflowClock
    let defaultRetryPolicy: RetryPolicy
    /// Waits shorter than this stay in memory; longer ones end the run as waiting.
    let maxInMemoryWait: Duration
    /// The app's service name, given to child instances.
    let serviceName: String
    /// Registers a child's workflow with the app, so that its worker claims the child.
    let register: @Sendable (RegisteredWorkflow) throws -> Void
    /// Registers a child's queue with the app and writes its limits to the store, once per process.
    let declareQueue: @Sendable (Queue) async throws -> Void
    /// Metrics, spans and hooks.
    let observer: Observer
    /// Replay only (the test kit's `Replayer`): a step history lacks is not run; the run stops there.
    var replayOnly = false
}
