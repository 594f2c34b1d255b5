import Logging

extension EddaApp {
    /// Runs one instance to its end, or until the app stops: reads its history (once), replays the
    /// recorded steps, runs the rest, and records the outcome.
    func execute(_ job: Job, environment: EngineEnvironment) async {
        let instance = job.instance
        // Metadata goes with each call: setting it on the logger costs more than a whole step.
        let logger = InstanceLogger(logger: self.logger, instanceID: instance.instanceID, workflowName: instance.workflowName)

        guard let workflow = registration(named: instance.workflowName) else {
            let error = EngineError(
                .unknownWorkflow,
                "Instance \(instance.instanceID) belongs to workflow '\(instance.workflowName)', which this app has not "
                    + "registered. The instance was kept as it is; register the workflow (app.register(…)) and restart to resume it.",
                instanceID: instance.instanceID
            )
            logger.warning("cannot resume instance: workflow not registered")
            markUnresumable(instance.instanceID, error)
            return
        }

        let history: [HistoryEvent]
        var resumedStatus = InstanceStatus.running
        if job.isNew {
            history = []
        } else {
            do {
                // The same instance can be queued twice at start-up (claimed and just started);
                // whichever job comes second finds it finished and stops here.
                guard let current = try await store.instance(instance.instanceID), !current.status.isTerminal else {
                    releaseExecution(of: instance.instanceID)
                    return
                }
                resumedStatus = current.status
                history = try await store.history(of: instance.instanceID)
            } catch {
                logger.error("cannot read history; instance left running", metadata: ["edda.error": "\(error)"])
                publish(instance.instanceID, .failure(error))
                return
            }
            logger.debug("replaying", metadata: ["edda.history.count": "\(history.count)"])
        }

        let context = WorkflowContext(
            instanceID: instance.instanceID, workflowName: instance.workflowName, history: history,
            environment: environment, logger: self.logger
        )
        let outcome: InstanceOutcome
        do {
            let output = try await workflow.run(context, instance.input)
            let (fatal, suspension) = context.pendingTermination()
            if let fatal {
                outcome = .failed(ErrorRecord(fatal))
            } else if let suspension {
                throw suspension
            } else if resumedStatus == .compensating {
                // It failed before and was rolling back; now the same history leads to success.
                let error = NonDeterminismError(instanceID: instance.instanceID)
                outcome = .failed(ErrorRecord(error))
            } else {
                try context.verifyHistoryConsumed()
                outcome = .completed(output)
            }
        } catch {
            let (fatal, suspension) = context.pendingTermination()
            if let fatal {
                outcome = .failed(ErrorRecord(fatal))
            } else if suspension != nil || (error is CancellationError && Task.isCancelled) {
                logger.debug("instance suspended; it resumes on the next start", metadata: ["edda.reason": "\(error)"])
                publish(instance.instanceID, .failure(suspension ?? error))
                return
            } else {
                if context.hasCompensations {
                    guard await compensate(context, instance: instance, resumedStatus: resumedStatus, logger: logger) else { return }
                }
                outcome = .failed(ErrorRecord(error))
            }
        }

        do {
            try await store.finishInstance(instance.instanceID, with: outcome)
        } catch {
            logger.error("cannot record outcome; instance left running", metadata: ["edda.error": "\(error)"])
            publish(instance.instanceID, .failure(error))
            return
        }
        switch outcome {
        case .completed:
            logger.debug("instance completed")
        case .failed(let record):
            logger.info("instance failed", metadata: ["edda.error.type": "\(record.type)"])
        }
        publish(instance.instanceID, .success(outcome))
    }

    /// Moves the instance to `compensating` and runs its compensations.
    ///
    /// - Returns: `false` when the instance must stay as it is (the app is stopping, or the store
    ///   failed); it resumes, and goes on compensating, on the next start.
    private func compensate(_ context: WorkflowContext, instance: WorkflowInstance, resumedStatus: InstanceStatus, logger: InstanceLogger) async -> Bool {
        if resumedStatus != .compensating {
            do {
                try await store.markCompensating(instance.instanceID)
            } catch {
                logger.error("cannot record the start of compensation; instance left running", metadata: ["edda.error": "\(error)"])
                publish(instance.instanceID, .failure(error))
                return false
            }
        }
        logger.debug("compensating")
        guard await context.runCompensations() else {
            let reason = context.pendingTermination().suspension
            logger.debug("compensation interrupted; it continues on the next start", metadata: ["edda.reason": "\(String(describing: reason))"])
            publish(instance.instanceID, .failure(reason ?? EngineError(.stopped, "The app stopped during compensation.")))
            return false
        }
        return true
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
