public import Logging
import CoreMetrics
import Synchronization

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
    /// How the worker stops this run (shutdown, lost lease).
    let control: RunControl
    private let topLevelTask: Int?
    private let state: Mutex<State>

    private struct State: Sendable {
        var replay: ReplayState
        /// An error that ends the run whatever the workflow does with it (non-determinism,
        /// unreadable history). Kept here so a workflow that catches it cannot carry on.
        var fatalError: (any Error)?
        /// Set when the run must stop without an outcome (shutdown, store failure): the instance
        /// stays running and is resumed later.
        var suspension: (any Error)?
        /// Compensations of completed steps, in completion order.
        var compensations: [PendingCompensation] = []
        var compensationIDs: Set<String> = []
        var manualCompensationCounts: [String: Int] = [:]
        /// The run threw ``WorkflowCancelledError`` at a step boundary: it ends cancelled.
        var cancelled = false
        /// Broadcast channels: the sequence number of the last message seen (or of the
        /// subscription), as history says; the next receive takes the first message after it.
        var channelCursors: [String: Int64] = [:]
    }

    init(
        instanceID: String, workflowName: String, runNumber: Int, history: [HistoryEvent], lease: Lease, control: RunControl,
        environment: EngineEnvironment, logger: Logger
    ) {
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.runNumber = runNumber
        self.lease = lease
        self.control = control
        self.environment = environment
        self.metrics = environment.observer.metrics?.workflow(workflowName)
        self.baseLogger = logger
        self.topLevelTask = withUnsafeCurrentTask { $0?.hashValue }
        self.state = Mutex(State(replay: ReplayState(instanceID: instanceID, history: history)))
    }

    /// `true` while recorded steps lie ahead: the workflow is re-running code whose results are
    /// already in history. Use it to keep logs and metrics from counting replayed work twice.
    public var isReplaying: Bool {
        state.withLock { $0.replay.isReplaying }
    }

    /// How many steps this run has requested so far.
    public var currentStep: Int {
        state.withLock { $0.replay.stepCount }
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
        let key = state.withLock { state -> String in
            if let id { return id }
            state.manualCompensationCounts[name, default: 0] += 1
            return "\(name)#\(state.manualCompensationCounts[name]!)"
        }
        try pushCompensation(PendingCompensation(stepID: "compensate:\(key)", name: name, retryPolicy: retry, run: body))
    }

    // MARK: - Engine side

    func pushCompensation(_ compensation: PendingCompensation) throws {
        try state.withLock { state in
            guard state.compensationIDs.insert(compensation.stepID).inserted else {
                let error = EngineError(
                    .duplicateStepID,
                    "Compensation ID '\(compensation.stepID)' was registered twice in one run of instance \(instanceID); give each a distinct id:.",
                    instanceID: instanceID, stepID: compensation.stepID
                )
                state.fatalError = error
                throw error
            }
            state.compensations.append(compensation)
        }
    }

    var hasCompensations: Bool {
        state.withLock { !$0.compensations.isEmpty }
    }

    /// Runs the registered compensations in reverse order, skipping those history has an outcome for.
    ///
    /// - Returns: `false` when the run was suspended (shutdown, store failure) before all had an outcome.
    func runCompensations() async -> Bool {
        let (pending, replay) = state.withLock { ($0.compensations, $0.replay) }
        for compensation in pending.reversed() {
            if replay.compensationOutcome(compensation.stepID) != nil { continue }
            if pendingTermination().suspension != nil { return false }
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
                if pendingTermination().suspension != nil { return false }
                baseLogger.debug(
                    "compensation failed; continuing with the others",
                    metadata: ["edda.instance.id": "\(instanceID)", "edda.step.id": "\(compensation.stepID)"]
                )
            }
        }
        return pendingTermination().suspension == nil
    }

    func reserveStep(name: String, explicitID: String?) throws -> ReplayState.Reservation {
        let topLevel = topLevelTask != nil && withUnsafeCurrentTask { $0?.hashValue } == topLevelTask
        if let reason = control.stopReason {
            // Shutdown, a lost lease, or a context used after its run ended (from an escaped Task).
            let stop = RunStopped(reason: reason, instanceID: instanceID)
            suspend(because: stop)
            throw stop
        }
        let cancelling = control.cancellationRequested
        return try state.withLock { state in
            if let fatal = state.fatalError { throw fatal }
            if let suspension = state.suspension { throw suspension }
            let reservation: ReplayState.Reservation
            do {
                reservation = try state.replay.reserve(name: name, explicitID: explicitID, topLevel: topLevel)
            } catch {
                // Divergence, a reused ID, unreadable history: the run cannot go on.
                state.fatalError = error
                throw error
            }
            // Cancelled: recorded steps still replay (the compensations need their results); the
            // first fresh one is where the workflow stops.
            if cancelling, case .execute = reservation.decision {
                state.cancelled = true
                throw WorkflowCancelledError(instanceID: instanceID)
            }
            if case .replay(let recorded) = reservation.decision { replayed(recorded) }
            return reservation
        }
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
        state.withLock { $0.replay.hasRecordedStep(afterPosition: position) }
    }

    /// Where this run stands on a broadcast channel, or `nil` before it subscribed.
    func channelCursor(_ channel: String) -> Int64? {
        state.withLock { $0.channelCursors[channel] }
    }

    /// Moves this run's position on a broadcast channel forward to `sequence`.
    func advanceChannelCursor(_ channel: String, to sequence: Int64) {
        state.withLock { state in
            state.channelCursors[channel] = max(state.channelCursors[channel] ?? sequence, sequence)
        }
    }

    /// Records that the run met its cancellation (a wait ended by it, say).
    func noteCancelled() {
        state.withLock { $0.cancelled = true }
    }

    /// Whether the run stopped at a step boundary because the instance was cancelled.
    var wasCancelled: Bool {
        state.withLock { $0.cancelled }
    }

    /// Marks the run as ending with `error` no matter what the workflow does next.
    func fail(with error: any Error) {
        state.withLock { if $0.fatalError == nil { $0.fatalError = error } }
    }

    /// Marks the run as stopping without an outcome.
    func suspend(because error: any Error) {
        state.withLock { state in
            // Waits in parallel branches: the run resumes at the earliest of them.
            if let waiting = state.suspension as? RunWaiting, let sooner = error as? RunWaiting, sooner.until < waiting.until {
                state.suspension = sooner
            }
            if state.suspension == nil { state.suspension = error }
        }
    }

    /// The error that must end the run, if any, taking precedence over what the workflow returned.
    func pendingTermination() -> (fatal: (any Error)?, suspension: (any Error)?) {
        state.withLock { ($0.fatalError, $0.suspension) }
    }

    func verifyHistoryConsumed() throws {
        let replay = state.withLock { $0.replay }
        do {
            try replay.verifyAllConsumed()
        } catch {
            fail(with: error)
            throw error
        }
    }

    func runStep<Output: Codable & Sendable>(
        _ reservation: ReplayState.Reservation,
        retryPolicy: RetryPolicy?,
        transactionMode: TransactionMode,
        _ body: @Sendable (ActivityContext) async throws -> Output
    ) async throws -> Output {
        switch reservation.decision {
        case .replay(let event):
            return try replayed(event, as: Output.self)
        case .execute:
            let executor = StepExecutor(
                context: self, reservation: reservation, policy: retryPolicy ?? environment.defaultRetryPolicy,
                transactionMode: transactionMode
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
    /// Metrics, spans and hooks.
    let observer: Observer
}
