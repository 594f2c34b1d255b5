import Foundation

/// What replaying a recorded history against the registered code found: the engine side of the
/// test kit's `Replayer`.
package enum ReplayVerdict: Sendable {
    /// Every step the code asked for matched the history, up to the history's end.
    case clean
    /// The code asked for another step than history recorded, skipped a recorded one, or (for a
    /// finished instance, or before the history's end) asked for a step the history lacks.
    case divergence(NonDeterminismError)
    /// The replay failed otherwise: a recorded result the code cannot decode, a reused step ID, a
    /// patch asked for from a concurrent task.
    case failed(any Error)
}

extension EddaApp {
    /// Replays `export` against the workflow registered under its name, on this app's store (a
    /// scratch store: the instance is written there first), in replay-only mode: no activity runs,
    /// nothing is recorded, no compensation runs. The app need not be running.
    ///
    /// A step the history lacks stops the replay. It is a divergence when the history holds steps
    /// beyond it or the instance had finished; at the end of an unfinished history it is where the
    /// instance would go on, and the replay is clean.
    ///
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/unknownWorkflow`` when no workflow is
    ///   registered under the export's name; a store error from the scratch store.
    package func replayOnly(_ export: HistoryExport) async throws -> ReplayVerdict {
        guard let workflow = registry.registration(named: export.workflowName) else {
            throw EngineError(
                .unknownWorkflow,
                "The history of instance \(export.instanceID) was recorded by workflow '\(export.workflowName)', which is not registered "
                    + "with the replayer. Pass that workflow to it (the name must match).",
                instanceID: export.instanceID
            )
        }
        // The instance as a worker that died mid-run would leave it, leased to the replay.
        let outcome = try await store.createInstance(
            NewInstance(instanceID: export.instanceID, workflowName: export.workflowName, serviceName: serviceName, input: export.input),
            leasedTo: LeaseRequest(owner: "edda-replayer", duration: .seconds(3600))
        )
        guard case .created(var instance, let lease?) = outcome else {
            throw EngineError(
                .instanceAlreadyExists, "Instance \(export.instanceID) is already in the replay's store; replay each history on a fresh store.",
                instanceID: export.instanceID
            )
        }
        // An operator's retry is no step; the rest goes in as recorded, in order.
        for event in export.history where event.kind != .retried {
            try await store.append(event, lease: lease)
        }
        // A cancelled instance met its cancellation at its first fresh step: so does its replay.
        instance.cancelRequested = export.status == .cancelled
        let environment = EngineEnvironment(
            store: store, clock: configuration.clock, defaultRetryPolicy: configuration.defaultRetryPolicy, maxInMemoryWait: .zero,
            serviceName: serviceName, register: { _ in }, declareQueue: { _ in }, observer: observer, replayOnly: true
        )
        let run = ActiveRun(instanceID: export.instanceID, leaseValidUntil: nil)
        let result = await InstanceRun(
            instance: instance, lease: lease, isNew: false, statusIsCurrent: true, workflow: workflow, environment: environment,
            activeRun: run, logger: logger
        ).run()
        if case .released(.storeFailure(let error)) = result { throw error }

        let (fatal, unrecorded) = run.withMachine { ($0.fatal, $0.unrecordedStep) }
        if let divergence = fatal as? NonDeterminismError { return .divergence(divergence) }
        if let fatal { return .failed(fatal) }
        guard let unrecorded, unrecorded.historyGoesOn || export.status.isTerminal else { return .clean }
        let recordedThere = unrecorded.position.flatMap { position in export.history.first { $0.position == position && $0.kind.isOutcome } }
        return .divergence(
            NonDeterminismError(
                instanceID: export.instanceID, position: unrecorded.position,
                recordedStepID: recordedThere?.stepID, recordedName: recordedThere?.name,
                requestedStepID: unrecorded.stepID, requestedName: unrecorded.name
            )
        )
    }
}
