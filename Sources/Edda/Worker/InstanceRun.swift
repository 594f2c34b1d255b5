import CoreMetrics
import Foundation
import Tracing
import Logging

/// One run of one instance under a lease: reads its history (once), replays the recorded steps,
/// runs the rest, and records the outcome — every write fenced by the lease.
struct InstanceRun: Sendable {
    let instance: WorkflowInstance
    let lease: Lease
    /// A new instance has no history to read.
    let isNew: Bool
    /// Whether ``instance``'s status is as stored now — true for an instance just claimed, whose
    /// row came back with the claim — or must be read again (a run retried after a store failure).
    let statusIsCurrent: Bool
    let workflow: RegisteredWorkflow
    let environment: EngineEnvironment
    let control: RunControl
    let logger: Logger

    /// Runs in a span of its own, a child of the trace the instance was started in (its stored
    /// trace context), however many runs, crashes and workers later.
    func run() async -> RunResult {
        let observer = environment.observer
        return await observer.withSpan(
            "edda.workflow \(instance.workflowName)", context: observer.context(from: instance.traceContext),
            attributes: { attributes in
                attributes["edda.instance.id"] = instance.instanceID
                attributes["edda.workflow.name"] = instance.workflowName
                attributes["edda.run"] = instance.runNumber
            }
        ) { _ in
            let result = await runUntraced()
            report(result)
            return result
        }
    }

    /// Counts the outcome and tells the hooks.
    private func report(_ result: RunResult) {
        let observer = environment.observer
        let metrics = observer.metrics?.workflow(instance.workflowName)
        let now = observer.clock.now()
        let event = WorkflowHookEvent(instanceID: instance.instanceID, workflowName: instance.workflowName, time: now)
        let duration = Int64(max(now.timeIntervalSince(instance.createdAt), 0) * 1e9)
        switch result {
        case .completed:
            metrics?.completed.increment()
            metrics?.workflowDuration.recordNanoseconds(duration)
            observer.hooks?.post(.workflowCompleted(event))
        case .failed(let record):
            metrics?.failed.increment()
            metrics?.workflowDuration.recordNanoseconds(duration)
            observer.hooks?.post(.workflowFailed(event, record))
        case .cancelled:
            metrics?.cancelled.increment()
            metrics?.workflowDuration.recordNanoseconds(duration)
            observer.hooks?.post(.workflowCancelled(event))
        case .leaseLost:
            observer.metrics?.leasesLost.increment()
        case .continuedAsNew, .waiting, .released:
            break
        }
    }

    private func runUntraced() async -> RunResult {
        defer { control.stop(.ended) }
        // Metadata goes with each call: setting it on the logger costs more than a whole step.
        let logger = InstanceLogger(logger: self.logger, instanceID: instance.instanceID, workflowName: instance.workflowName)
        let store = environment.store

        let history: [HistoryEvent]
        var resumedStatus = InstanceStatus.running
        if isNew {
            history = []
        } else {
            do {
                if statusIsCurrent {
                    resumedStatus = instance.status
                } else {
                    guard let current = try await store.instance(instance.instanceID), !current.status.isTerminal else {
                        // Finished by the failed run after all (its commit landed, its report did not).
                        return .leaseLost
                    }
                    resumedStatus = current.status
                    if current.cancelRequested { control.requestCancellation() }
                }
                history = try await store.history(of: instance.instanceID)
            } catch let error as StoreError where error.code == .corruptRecord {
                // Reading again will not help: fail the instance, and leave its history as it is.
                return await failUnreadable(error, logger: logger)
            } catch {
                logger.warning("cannot read history; the run is retried", metadata: ["edda.error": "\(error)"])
                return .released(.storeFailure(error))
            }
            logger.debug("replaying", metadata: ["edda.history.count": "\(history.count)"])
        }

        // The first run of a new instance (created leased here, or claimed with nothing recorded).
        if history.isEmpty, instance.runNumber == 1, let metrics = environment.observer.metrics {
            metrics.workflow(instance.workflowName).startToFirstStep.recordNanoseconds(
                Int64(max(environment.observer.clock.now().timeIntervalSince(instance.createdAt), 0) * 1e9)
            )
        }
        // Cancelled while it waited, or before this worker claimed it.
        if instance.cancelRequested { control.requestCancellation() }
        let context = WorkflowContext(
            instanceID: instance.instanceID, workflowName: instance.workflowName, runNumber: instance.runNumber, history: history,
            lease: lease, control: control, environment: environment, logger: self.logger
        )
        let outcome: InstanceOutcome
        do {
            let output = try await workflow.run(context, instance.input)
            // A workflow that caught its cancellation and returned is cancelled all the same.
            if context.wasCancelled { throw WorkflowCancelledError(instanceID: instance.instanceID) }
            let (fatal, suspension) = context.pendingTermination()
            if let fatal {
                // Undo what the steps replayed so far did, then fail (see the README's Saga section).
                if context.hasCompensations, let stop = await compensate(context, resumedStatus: resumedStatus, logger: logger) { return stop }
                outcome = .failed(ErrorRecord(fatal))
            } else if let suspension {
                throw suspension
            } else if resumedStatus == .compensating {
                // It failed before and was rolling back; now the same history leads to success (the
                // code changed). The rollback it started still finishes.
                if context.hasCompensations, let stop = await compensate(context, resumedStatus: resumedStatus, logger: logger) { return stop }
                let error = NonDeterminismError(instanceID: instance.instanceID)
                outcome = .failed(ErrorRecord(error))
            } else {
                try context.verifyHistoryConsumed()
                outcome = .completed(output)
            }
        } catch {
            let (fatal, suspension) = context.pendingTermination()
            if let fatal {
                // Divergent code, a reused step ID, unreadable history: the run cannot go on, but
                // the steps replayed before that point did happen, so their compensations run (a
                // run stopped meanwhile leaves them to the next, which meets the same error).
                if context.hasCompensations, let stop = await compensate(context, resumedStatus: resumedStatus, logger: logger) { return stop }
                outcome = .failed(ErrorRecord(fatal))
            } else if let next = suspension as? ContinueAsNew, control.stopReason == nil {
                return await continueAsNew(with: next.input, logger: logger)
            } else if let suspension {
                return stopped(by: suspension, logger: logger)
            } else if Task.isCancelled {
                // The engine's own cancellation (the app's task was cancelled): stop without an outcome.
                return stopped(by: error, logger: logger)
            } else if context.wasCancelled {
                // Cancelled at a step boundary (its children were marked with it, by the store): undo
                // what was done, then record the cancellation.
                if context.hasCompensations {
                    if let stop = await compensate(context, resumedStatus: resumedStatus, logger: logger) { return stop }
                }
                outcome = .cancelled(ErrorRecord(WorkflowCancelledError(instanceID: instance.instanceID)))
            } else {
                if context.hasCompensations {
                    if let stop = await compensate(context, resumedStatus: resumedStatus, logger: logger) { return stop }
                }
                outcome = .failed(ErrorRecord(error))
            }
        }

        do {
            try await store.finishInstance(lease: lease, with: outcome, reportingTo: instance.parentInstanceID)
        } catch {
            return stopped(by: error, logger: logger)
        }
        switch outcome {
        case .completed(let output):
            logger.debug("instance completed")
            return .completed(output)
        case .failed(let record):
            logger.debug("instance failed", metadata: ["edda.error.type": "\(record.type)"])
            return .failed(record)
        case .cancelled(let record):
            logger.debug("instance cancelled")
            return .cancelled(record)
        }
    }

    /// Fails the instance because a record of its history cannot be read (a kind this version does
    /// not know, malformed metadata); nothing in its history is changed.
    private func failUnreadable(_ error: StoreError, logger: InstanceLogger) async -> RunResult {
        let failure = EngineError(
            .corruptHistory,
            "The history of instance \(instance.instanceID) holds a record this version of Edda cannot read, so it cannot be "
                + "replayed. It was failed and its history left as it is; run the version of Edda that wrote it, or repair the record.",
            instanceID: instance.instanceID, cause: error
        )
        let record = ErrorRecord(failure)
        do {
            try await environment.store.finishInstance(lease: lease, with: .failed(record), reportingTo: instance.parentInstanceID)
        } catch {
            return stopped(by: error, logger: logger)
        }
        logger.debug("instance failed: unreadable history", metadata: ["edda.error": "\(error)"])
        return .failed(record)
    }

    /// Moves the instance to `compensating` and runs its compensations.
    ///
    /// - Returns: `nil` when every compensation has an outcome; otherwise how the run stopped.
    private func compensate(_ context: WorkflowContext, resumedStatus: InstanceStatus, logger: InstanceLogger) async -> RunResult? {
        if resumedStatus != .compensating {
            do {
                try await environment.store.markCompensating(lease: lease)
            } catch {
                return stopped(by: error, logger: logger)
            }
        }
        logger.debug("compensating")
        guard await context.runCompensations() else {
            let reason = context.pendingTermination().suspension ?? RunStopped(reason: .shutdown, instanceID: instance.instanceID)
            return stopped(by: reason, logger: logger)
        }
        return nil
    }

    /// Records the start of the next run, once this one asked to continue as new.
    private func continueAsNew(with input: JSONPayload, logger: InstanceLogger) async -> RunResult {
        do {
            try workflow.checkInput(input)
        } catch {
            let failure = EngineError(
                .invalidInput, "continueAsNew in instance \(instance.instanceID) was given arguments that are not those of workflow "
                    + "'\(instance.workflowName)'; the instance fails and its history is kept.",
                instanceID: instance.instanceID, cause: error
            )
            do {
                try await environment.store.finishInstance(lease: lease, with: .failed(ErrorRecord(failure)), reportingTo: instance.parentInstanceID)
            } catch {
                return stopped(by: error, logger: logger)
            }
            return .failed(ErrorRecord(failure))
        }
        do {
            try await environment.store.continueAsNew(lease: lease, input: input)
        } catch {
            return stopped(by: error, logger: logger)
        }
        logger.debug("continued as new")
        return .continuedAsNew(input)
    }

    /// What a run that stopped without an outcome tells the worker.
    private func stopped(by error: any Error, logger: InstanceLogger) -> RunResult {
        if control.stopReason == .leaseLost || (error as? StoreError)?.code == .leaseLost
            || (error as? RunStopped)?.reason == .leaseLost
        {
            logger.debug("lease lost; the run stops and writes nothing more")
            return .leaseLost
        }
        if let waiting = error as? RunWaiting, control.stopReason == nil {
            logger.debug("waiting; the instance is released", metadata: ["edda.ready_at": "\(waiting.until)"])
            return .waiting(until: waiting.until)
        }
        if error is RunStopped || control.stopReason == .shutdown || error is CancellationError {
            logger.debug("run stopped; the instance is released", metadata: ["edda.reason": "\(error)"])
            return .released(.shutdown)
        }
        logger.warning("store failure; the run is retried", metadata: ["edda.error": "\(error)"])
        return .released(.storeFailure(error))
    }
}

/// The app's logger plus one instance's metadata, added at each call.
struct InstanceLogger {
    let logger: Logger
    let instanceID: String
    let workflowName: String

    private func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["edda.instance.id": "\(instanceID)", "edda.workflow.name": "\(workflowName)"]
        metadata.merge(extra) { $1 }
        return metadata
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata extra: @autoclosure () -> Logger.Metadata = [:]) {
        logger.debug(message(), metadata: metadata(extra()))
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata extra: @autoclosure () -> Logger.Metadata = [:]) {
        logger.info(message(), metadata: metadata(extra()))
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata extra: @autoclosure () -> Logger.Metadata = [:]) {
        logger.warning(message(), metadata: metadata(extra()))
    }

    func error(_ message: @autoclosure () -> Logger.Message, metadata extra: @autoclosure () -> Logger.Metadata = [:]) {
        logger.error(message(), metadata: metadata(extra()))
    }
}
