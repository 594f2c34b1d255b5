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
    /// This run's state, fresh for this run.
    let activeRun: ActiveRun
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
            let result: RunResult
            if activeRun.deadlines == nil {
                result = await runUntraced()
            } else {
                // The deadline's timer lives as long as the run.
                activeRun.checkDeadline()
                let timer = Task { [activeRun] in await activeRun.watchDeadline() }
                result = await runUntraced()
                timer.cancel()
            }
            count(result)
            return result
        }
    }

    /// Counts the outcome and tells the hooks.
    private func count(_ result: RunResult) {
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
        // Whatever happens, nothing of this run acts after it: a task it left running can neither
        // start a step nor write.
        defer { activeRun.end() }
        // Metadata goes with each call: setting it on the logger costs more than a whole step.
        let logger = InstanceLogger(logger: self.logger, instanceID: instance.instanceID, workflowName: instance.workflowName)
        let store = environment.store

        let history: [HistoryEvent]
        var resumedStatus = InstanceStatus.running
        var cancelRequested = instance.cancelRequested
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
                    cancelRequested = cancelRequested || current.cancelRequested
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
        activeRun.withMachine {
            $0.begin(
                history: history, resumedCompensating: resumedStatus == .compensating, cancelRequested: cancelRequested,
                replayOnly: environment.replayOnly
            )
        }
        let context = WorkflowContext(
            instanceID: instance.instanceID, workflowName: instance.workflowName, runNumber: instance.runNumber,
            applicationVersion: instance.applicationVersion, lease: lease, run: activeRun, environment: environment, logger: self.logger
        )
        let result: Result<JSONPayload, any Error>
        do {
            result = .success(try await workflow.run(context, instance.input))
        } catch {
            result = .failure(error)
        }
        let taskCancelled = Task.isCancelled
        // A workflow that failed with a cancellation (its child's, say) while its own cancellation may
        // be asked for elsewhere and not heard here yet: ask the store, so that it ends cancelled.
        if case .failure(let error) = result, error is WorkflowCancelledError, !activeRun.withMachine({ $0.cancellationRequested }),
            (try? await store.cancellationRequests(among: [instance.instanceID]))?.contains(instance.instanceID) == true
        {
            activeRun.requestCancellation()
        }

        let outcome: InstanceOutcome
        switch activeRun.withMachine({ $0.workflowEnded(result, taskCancelled: taskCancelled) }) {
        case .finish(let ending):
            outcome = ending
        case .compensate(let ending):
            // Undo what the steps replayed or run so far did, then record the outcome (see the
            // README's Saga section). A run stopped meanwhile leaves the rest to the next run.
            if resumedStatus != .compensating {
                do {
                    try await store.markCompensating(lease: lease)
                } catch {
                    return stopped(by: error, logger: logger)
                }
            }
            logger.debug("compensating")
            activeRun.withMachine { $0.beginCompensation() }
            await context.runCompensations()
            if let stop = activeRun.withMachine({ $0.compensationsEnded() }) { return report(stop, logger: logger) }
            outcome = ending
        case .continueAsNew(let input):
            return await continueAsNew(with: input, logger: logger)
        case .stop(let result):
            return report(result, logger: logger)
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
        return await fail(ErrorRecord(failure), logger: logger)
    }

    /// Records that the instance failed with `record`.
    private func fail(_ record: ErrorRecord, logger: InstanceLogger) async -> RunResult {
        do {
            try await environment.store.finishInstance(lease: lease, with: .failed(record), reportingTo: instance.parentInstanceID)
        } catch {
            return stopped(by: error, logger: logger)
        }
        logger.debug("instance failed", metadata: ["edda.error.type": "\(record.type)"])
        return .failed(record)
    }

    /// Records the start of the next run, once this one asked to continue as new. The instance stays
    /// leased here: the next run starts at once, under the lease the store moved on.
    private func continueAsNew(with input: JSONPayload, logger: InstanceLogger) async -> RunResult {
        do {
            try workflow.checkInput(input)
        } catch {
            let failure = EngineError(
                .invalidInput, "continueAsNew in instance \(instance.instanceID) was given arguments that are not those of workflow "
                    + "'\(instance.workflowName)'; the instance fails and its history is kept.",
                instanceID: instance.instanceID, cause: error
            )
            return await fail(ErrorRecord(failure), logger: logger)
        }
        let next: Lease
        do {
            next = try await environment.store.continueAsNew(lease: lease, input: input)
        } catch {
            return stopped(by: error, logger: logger)
        }
        logger.debug("continued as new")
        return .continuedAsNew(input, lease: next)
    }

    /// A run that stopped on a failed write of its own: nothing more is recorded.
    private func stopped(by error: any Error, logger: InstanceLogger) -> RunResult {
        report(activeRun.withMachine { $0.stopped(by: error) }, logger: logger)
    }

    /// Logs how a run stopped without an outcome.
    private func report(_ result: RunResult, logger: InstanceLogger) -> RunResult {
        switch result {
        case .leaseLost:
            logger.debug("lease lost; the run stops and writes nothing more")
        case .waiting(let until):
            logger.debug("waiting; the instance is released", metadata: ["edda.ready_at": "\(String(describing: until))"])
        case .released(.shutdown):
            logger.debug("run stopped; the instance is released")
        case .released(.storeFailure(let error)):
            logger.warning("store failure; the run is retried", metadata: ["edda.error": "\(error)"])
        default:
            break
        }
        return result
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
