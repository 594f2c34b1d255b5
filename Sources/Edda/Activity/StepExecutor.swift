import Logging

/// Runs one fresh step: attempts, backoff, and the single history record of its outcome.
struct StepExecutor: Sendable {
    let context: WorkflowContext
    let reservation: ReplayState.Reservation
    let policy: RetryPolicy

    func run<Output: Codable & Sendable>(_ body: @Sendable (ActivityContext) async throws -> Output) async throws -> Output {
        try await run(body, clock: context.environment.clock)
    }

    private func run<Output: Codable & Sendable, C: Clock<Duration>>(
        _ body: @Sendable (ActivityContext) async throws -> Output,
        clock: C
    ) async throws -> Output {
        let start = clock.now
        var errors: [ErrorRecord] = []
        var attempt = 1
        var logger = context.logger
        logger[metadataKey: "edda.step.id"] = "\(reservation.stepID)"

        while true {
            try checkNotStopping()
            let activityContext = ActivityContext(
                instanceID: context.instanceID, workflowName: context.workflowName, activityName: reservation.name,
                stepID: reservation.stepID, currentStep: reservation.stepNumber, attempt: attempt, logger: logger
            )
            let output: Output
            do {
                output = try await body(activityContext)
            } catch {
                if Task.isCancelled || error is CancellationError {
                    context.suspend(because: error)
                    throw error
                }
                let elapsed = start.duration(to: clock.now)
                if let terminal = error as? TerminalError {
                    let terminalRecord = ErrorRecord(type: "TerminalError", message: terminal.message)
                    let metadata = RetryMetadata(
                        totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: false,
                        lastError: terminalRecord, errors: errors + [terminalRecord]
                    )
                    try await record(kind: .activityFailed, payload: nil, error: terminalRecord, retry: metadata)
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
                    try await record(kind: .activityFailed, payload: nil, error: errors.last, retry: metadata)
                    throw RetryExhaustedError(
                        activityName: reservation.name, stepID: reservation.stepID, attempts: attempt,
                        totalDuration: elapsed, errors: errors, cause: error
                    )
                }
                logger.debug(
                    "activity attempt failed; retrying",
                    metadata: ["edda.attempt": "\(attempt)", "edda.retry.delay_ms": "\(delay.milliseconds)"]
                )
                do {
                    try await clock.sleep(for: delay)
                } catch {
                    context.suspend(because: error)
                    throw error
                }
                attempt += 1
                continue
            }

            let elapsed = start.duration(to: clock.now)
            let payload: JSONPayload
            do {
                payload = try JSONPayload.encode(output)
            } catch {
                let failure = EngineError(
                    .encodingFailed, "The result of step '\(reservation.stepID)' could not be encoded as JSON.",
                    instanceID: context.instanceID, stepID: reservation.stepID, cause: error
                )
                let failureRecord = ErrorRecord(type: "TerminalError", message: failure.message)
                try await record(kind: .activityFailed, payload: nil, error: failureRecord, retry: nil)
                throw TerminalError(failure.message)
            }
            let metadata = RetryMetadata(
                totalAttempts: attempt, totalDurationMilliseconds: elapsed.milliseconds, exhausted: false,
                lastError: errors.last, errors: errors
            )
            try await record(kind: .activityCompleted, payload: payload, error: nil, retry: metadata)
            return output
        }
    }

    private func checkNotStopping() throws {
        if context.environment.isStopping() {
            let error = EngineError(
                .stopped, "The app is shutting down; instance \(context.instanceID) resumes on the next start.",
                instanceID: context.instanceID, stepID: reservation.stepID
            )
            context.suspend(because: error)
            throw error
        }
    }

    private func record(kind: HistoryEventKind, payload: JSONPayload?, error: ErrorRecord?, retry: RetryMetadata?) async throws {
        let event = NewHistoryEvent(
            instanceID: context.instanceID, stepID: reservation.stepID, position: reservation.position,
            name: reservation.name, kind: kind, payload: payload, error: error, retry: retry
        )
        do {
            try await context.environment.store.append(event)
        } catch {
            // The outcome is not durable: stop without an outcome, so the step runs again on resume.
            context.suspend(because: error)
            throw error
        }
    }
}
