import Tracing
import CoreMetrics
import Foundation
import Logging

/// Runs one fresh step — an activity or a compensation: its attempts, the backoff between them,
/// a durable record of each failed attempt, and the single record of its outcome.
struct StepExecutor: Sendable {
    /// The history kinds a step records.
    struct Kinds: Sendable {
        var completed: HistoryEventKind
        var failed: HistoryEventKind

        static let activity = Kinds(completed: .activityCompleted, failed: .activityFailed)
        static let compensation = Kinds(completed: .compensationCompleted, failed: .compensationFailed)
    }

    let context: WorkflowContext
    let reservation: ReplayState.Reservation
    let policy: RetryPolicy
    var kinds: Kinds = .activity
    var transactionMode: TransactionMode = .atCommit
    var limits = AttemptLimits()

    func run<Output: Codable & Sendable>(_ body: @escaping @Sendable (ActivityContext) async throws -> Output) async throws -> Output {
        do {
            return try await runAttempts(body)
        } catch let failure as StepRecordingFailure {
            throw failure.error
        }
    }

    private func runAttempts<Output: Codable & Sendable>(_ body: @escaping @Sendable (ActivityContext) async throws -> Output) async throws -> Output {
        let clock = context.environment.clock
        let prior = reservation.priorAttempts
        let firstAttemptAt = prior?.firstAttemptAt ?? clock.now()
        var errors = prior?.errors ?? []
        var attempt = (prior?.attempts ?? 0) + 1
        let logger = context.baseLogger

        if let prior {
            // An earlier run scheduled this attempt; wait only what is left of its backoff.
            logger.debug("continuing retries", metadata: stepMetadata().merging(["edda.attempt": "\(attempt)"]) { $1 })
            try await sleep(until: prior.nextAttemptAt, clock: clock)
        }

        let observer = context.environment.observer
        let isActivity = kinds.completed == .activityCompleted
        let heartbeats = limits.heartbeatTimeout == nil ? nil : Heartbeat()
        if isActivity { context.metrics?.stepsExecuted.increment() } else { context.metrics?.compensationsRun.increment() }
        while true {
            // Shutdown, a lost lease or a lease that may have lapsed (this process was paused past it),
            // a cancellation: the state machine says whether this attempt may start.
            try context.run.withMachine { try $0.beforeAttempt(isCompensation: kinds.completed == .compensationCompleted, now: .now) }
            let transaction = StepTransaction()
            let activityContext = ActivityContext(
                instanceID: context.instanceID, workflowName: context.workflowName, activityName: reservation.name,
                stepID: reservation.stepID, currentStep: reservation.stepNumber, attempt: attempt, baseLogger: logger,
                stepTransaction: transaction, observer: observer, heartbeats: heartbeats, run: context.run
            )
            heartbeats?.startAttempt()
            if isActivity { observer.hooks?.post(.activityStarted(hookEvent(attempt: attempt))) }
            let started = ContinuousClock.now
            // One span per attempt, its commit included; a replayed step has none.
            let outcome = try await observer.withSpan(
                "\(isActivity ? "edda.activity" : "edda.compensation") \(reservation.name)",
                attributes: { attributes in
                    attributes["edda.instance.id"] = context.instanceID
                    attributes["edda.workflow.name"] = context.workflowName
                    attributes["edda.step.id"] = reservation.stepID
                    attributes["edda.attempt"] = attempt
                }
            ) { span -> Result<Output, any Error> in
                do {
                    let output: Output
                    switch transactionMode {
                    case .atCommit:
                        if limits.isEmpty {
                            // In place: no task, no closure (the hot path).
                            output = try await body(activityContext)
                        } else {
                            output = try await limits.run(heartbeat: heartbeats, expired: expired(attempt: attempt)) {
                                try await body(activityContext)
                            }
                        }
                        transaction.seal()
                        try await attemptFailure(of: transaction) {
                            let event = try completionEvent(output, attempt: attempt, errors: errors, firstAttemptAt: firstAttemptAt)
                            try await record(event, transaction: transaction)
                        }
                    case .wholeBody:
                        output = try await attemptFailure(of: transaction) {
                            try await runWholeBody(body, activityContext, attempt: attempt, errors: errors, firstAttemptAt: firstAttemptAt)
                        }
                    }
                    return .success(output)
                } catch let failure where !(failure is StepRecordingFailure) {
                    span.recordError(failure)
                    return .failure(failure)
                }
            }
            context.metrics?.stepDuration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
            let error: any Error
            switch outcome {
            case .success(let output):
                for callback in transaction.afterCommitCallbacks {
                    await callback()
                }
                if isActivity { observer.hooks?.post(.activityCompleted(hookEvent(attempt: attempt), fromHistory: false)) }
                return output
            case .failure(let failure):
                error = failure
            }
            // Only the engine's own cancellation suspends the run; a CancellationError the activity
            // throws by itself (a timeout in its HTTP client, say) is a failure like any other.
            if Task.isCancelled {
                context.stop(.shutdown)
                throw error
            }
            let now = clock.now()
            let elapsed = now.duration(since: firstAttemptAt)
            if let terminal = Self.terminalError(error) {
                let terminalRecord = ErrorRecord(type: "TerminalError", message: terminal.message)
                let metadata = RetryMetadata(
                    totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: false,
                    lastError: terminalRecord, errors: errors + [terminalRecord]
                )
                try await record(kind: kinds.failed, payload: nil, error: terminalRecord, retry: metadata)
                if isActivity { observer.hooks?.post(.activityFailed(hookEvent(attempt: attempt), terminalRecord)) }
                throw terminal
            }
            errors.append(ErrorRecord(error))
            let delay = policy.delay(afterAttempt: attempt)
            let outOfTime = policy.maxDuration.map { elapsed + delay > $0 } ?? false
            if attempt >= policy.maxAttempts || outOfTime {
                let metadata = RetryMetadata(
                    totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: true,
                    lastError: errors.last, errors: errors
                )
                try await record(kind: kinds.failed, payload: nil, error: errors.last, retry: metadata)
                if isActivity, let last = errors.last { observer.hooks?.post(.activityFailed(hookEvent(attempt: attempt), last)) }
                throw RetryExhaustedError(
                    activityName: reservation.name, stepID: reservation.stepID, attempts: attempt,
                    totalDuration: elapsed, errors: errors, cause: error
                )
            }
            let nextAttemptAt = now.adding(delay)
            let schedule = AttemptRecord(
                attempt: attempt, firstAttemptAtMilliseconds: firstAttemptAt.millisecondsSince1970,
                nextAttemptAtMilliseconds: nextAttemptAt.millisecondsSince1970
            )
            let metadata = RetryMetadata(
                totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: false,
                lastError: errors.last, errors: errors
            )
            try await record(kind: .attemptFailed, payload: try JSONPayload.encode(schedule), error: errors.last, retry: metadata)
            context.metrics?.attemptsRetried.increment()
            if isActivity, let last = errors.last { observer.hooks?.post(.activityRetrying(hookEvent(attempt: attempt), last, delay)) }
            logger.debug(
                "attempt failed; retrying",
                metadata: stepMetadata().merging(["edda.attempt": "\(attempt)", "edda.retry.delay_ms": "\(delay.milliseconds)"]) { $1 }
            )
            try await sleep(until: nextAttemptAt, clock: clock)
            attempt += 1
        }
    }

    /// Runs `operation`; when the attempt's own transaction work failed (a body threw while the store
    /// ran it), throws that error — the attempt failed, nothing of it was written.
    private func attemptFailure<T>(of transaction: StepTransaction, _ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch where transaction.bodyFailure != nil {
            throw transaction.bodyFailure!
        }
    }

    /// A ``TransactionMode/wholeBody`` attempt: the store opens the step's transaction, the body runs
    /// inside it, and its record commits with it.
    private func runWholeBody<Output: Codable & Sendable>(
        _ body: @escaping @Sendable (ActivityContext) async throws -> Output, _ activityContext: ActivityContext,
        attempt: Int, errors: [ErrorRecord], firstAttemptAt: Date
    ) async throws -> Output {
        let transaction = activityContext.stepTransaction
        try context.checkMayRecord()
        do {
            return try await context.environment.store.appendRunningAttempt(transaction, lease: context.lease) {
                let output = try await body(activityContext)
                return (try completionEvent(output, attempt: attempt, errors: errors, firstAttemptAt: firstAttemptAt), output)
            }
        } catch {
            if transaction.bodyFailure != nil { throw error }
            context.writeFailed(error)
            throw StepRecordingFailure(error: error)
        }
    }

    /// The record of a successful attempt. A result that cannot be encoded fails the step for good.
    private func completionEvent<Output: Codable & Sendable>(
        _ output: Output, attempt: Int, errors: [ErrorRecord], firstAttemptAt: Date
    ) throws -> HistoryEvent {
        let elapsed = context.environment.clock.now().duration(since: firstAttemptAt)
        let payload: JSONPayload
        do {
            payload = try JSONPayload.encode(output)
        } catch {
            let failure = EngineError(
                .encodingFailed, "The result of step '\(reservation.stepID)' could not be encoded as JSON.",
                instanceID: context.instanceID, stepID: reservation.stepID, cause: error
            )
            throw TerminalError(failure.message)
        }
        // A first-attempt success needs no retry metadata: absent means one attempt, no error.
        let metadata = attempt == 1 ? nil : RetryMetadata(
            totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: false,
            lastError: errors.last, errors: errors
        )
        return event(kind: kinds.completed, payload: payload, error: nil, retry: metadata)
    }

    /// What the hooks are told about this step.
    /// What fails attempt `attempt` when one of its limits passes.
    private func expired(attempt: Int) -> @Sendable (ActivityTimeoutError.Limit, Duration) -> any Error {
        { [name = reservation.name, stepID = reservation.stepID] limit, duration in
            ActivityTimeoutError(limit: limit, duration: duration, activityName: name, stepID: stepID, attempt: attempt)
        }
    }

    private func hookEvent(attempt: Int) -> ActivityHookEvent {
        ActivityHookEvent(
            instanceID: context.instanceID, workflowName: context.workflowName, activityName: reservation.name,
            stepID: reservation.stepID, attempt: attempt, time: context.environment.clock.now()
        )
    }

    /// Log metadata of this step, built only when a line is logged.
    private func stepMetadata() -> Logger.Metadata {
        ["edda.instance.id": "\(context.instanceID)", "edda.step.id": "\(reservation.stepID)"]
    }

    /// Waits out a backoff; shutdown or a lost lease ends the wait at once (the attempt count is
    /// durable, so the next run continues it). An activity's backoff longer than
    /// ``EddaApp/Configuration-swift.struct/maxInMemoryWait`` is a durable timer: the run ends and
    /// the instance is released until the next attempt is due, holding nothing meanwhile; the next
    /// run reads the schedule from the recorded failed attempt. (Compensations wait in place: a
    /// rollback is not left half done.)
    private func sleep(until deadline: Date, clock: any WorkflowClock) async throws {
        // A cancellation ends an activity's backoff (its step has no outcome); compensations run on.
        let cancellable = kinds.completed != .compensationCompleted
        if kinds.completed == .activityCompleted, deadline.timeIntervalSince(clock.now()) > context.environment.maxInMemoryWait.seconds {
            try context.run.withMachine { try $0.beforeSleep(cancellable: cancellable) }
            context.stop(.waiting(until: deadline))
            throw RunWaiting(until: deadline, instanceID: context.instanceID)
        }
        do {
            try await context.run.sleep(until: deadline, clock: clock, cancellable: cancellable)
        } catch is CancellationError {
            // The engine's own task was cancelled: the app stops.
            context.stop(.shutdown)
            throw RunStopped(reason: .shutdown, instanceID: context.instanceID)
        }
    }

    /// The error as a ``TerminalError`` when no retry can help: thrown as one, or a misuse of the API.
    private static func terminalError(_ error: any Error) -> TerminalError? {
        if let terminal = error as? TerminalError { return terminal }
        if let misuse = error as? EngineError, misuse.code.isMisuse { return TerminalError(wrapping: misuse) }
        return nil
    }

    private func event(kind: HistoryEventKind, payload: JSONPayload?, error: ErrorRecord?, retry: RetryMetadata?) -> HistoryEvent {
        HistoryEvent(
            instanceID: context.instanceID, stepID: reservation.stepID, position: kind.isOutcome ? reservation.position : nil,
            name: reservation.name, kind: kind, payload: payload, error: error, retry: retry
        )
    }

    private func record(kind: HistoryEventKind, payload: JSONPayload?, error: ErrorRecord?, retry: RetryMetadata?) async throws {
        try await record(event(kind: kind, payload: payload, error: error, retry: retry), transaction: nil)
    }

    /// Appends a record; a store failure suspends the instance and is thrown as a
    /// ``StepRecordingFailure``, which no retry may swallow.
    private func record(_ event: HistoryEvent, transaction: StepTransaction?) async throws {
        do {
            // A run that ended (this step's task outlived it) or lost its lease writes nothing.
            try context.checkMayRecord()
            if let transaction, !transaction.isEmpty {
                try await context.environment.store.append(event, with: transaction, lease: context.lease)
            } else {
                try await context.environment.store.append(event, lease: context.lease)
            }
        } catch {
            // The step's own transaction body failed: an attempt failure, for the caller to handle.
            if transaction?.bodyFailure != nil { throw error }
            // Not durable (or refused: the lease is lost): stop without an outcome; the step runs
            // again in the next run, here or on the instance's next owner.
            if !(error is RunStopped) { context.writeFailed(error) }
            throw StepRecordingFailure(error: error)
        }
    }
}

/// A failure to record a step, or a step whose failure is already recorded: thrown through the
/// retry loop unchanged.
struct StepRecordingFailure: Error {
    let error: any Error
}

extension Date {
    /// Wall-clock milliseconds, as the stores keep times.
    package var millisecondsSince1970: Int64 {
        Int64((timeIntervalSince1970 * 1000).rounded())
    }
}
