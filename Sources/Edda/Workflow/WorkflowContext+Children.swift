import CoreMetrics
import Foundation

/// Child workflows: a workflow starts another and awaits its typed result, durably.
///
/// ```swift
/// let fulfilOrder = Workflow("fulfil_order") { (ctx, order: Order) -> Receipt in
///     let shipping = try await ctx.startChild(shipParcel, order.parcel)       // runs on any worker
///     let invoice = try await ctx.runChild(issueInvoice, order.billing)      // start and await
///     return Receipt(invoice: invoice, tracking: try await shipping.result())
/// }
/// ```
///
/// - The child's instance ID is the parent's ID and the start's step ID (`order-1/edda.child:1`, or
///   `order-1/<childID>`; after a continue-as-new, `order-1/run2/edda.child:1`): a replay finds the
///   recorded start and never starts a second child.
/// - The child is an instance of its own, claimed by any worker that registered its workflow
///   (``startChild(_:_:childID:on:priority:partitionKey:)`` registers it with the parent's app, on a replay too: a parent
///   resumed after a restart brings its unfinished children with it). It finishes on its own
///   schedule; its outcome is kept for the parent, which waits for it holding no lease.
/// - Cancelling the parent (``EddaApp/cancel(_:)``) cancels its unfinished children, and theirs,
///   in the same statement (the store follows the children's parent links, whichever run started
///   them). A parent that completes or fails leaves its children running.
extension WorkflowContext {
    /// Starts `workflow` as a child of this instance, once: a replay returns the recorded child.
    ///
    /// - Parameters:
    ///   - childID: A stable step ID for the start, for children started in loops. Defaults to
    ///     `edda.child:N`. The child's instance ID is `<parent ID>/<step ID>`.
    ///   - queue: A ``Queue`` to start the child on: it is ``InstanceStatus/queued`` until a worker
    ///     admits it within the queue's limits. `nil` (the default) starts it at once.
    ///   - priority: On `queue`: lower numbers are admitted first.
    ///   - partitionKey: On a partitioned `queue` (required there): the partition it counts against.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/invalidInput`` when the
    ///   arguments fail the workflow's validation (nothing is started, nothing recorded),
    ///   ``EngineError/Code-swift.struct/invalidQueueOptions`` when the queue options do not fit
    ///   (the same), ``EngineError/Code-swift.struct/instanceAlreadyExists`` when that ID holds
    ///   another instance (the run fails), or an error that stops the run (a store failure: it is run again).
    public func startChild<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>, _ arguments: repeat each Argument, childID: String? = nil,
        on queue: Queue? = nil, priority: Int = 0, partitionKey: String? = nil
    ) async throws -> ChildWorkflow<Output> {
        let reservation = try reserveStep(name: "edda.child", explicitID: childID)
        // A run after a continue-as-new counts its steps from 1 again: its children get IDs of their own.
        let id = runNumber == 1 ? "\(instanceID)/\(reservation.stepID)" : "\(instanceID)/run\(runNumber)/\(reservation.stepID)"
        if try recordedStep(reservation, kind: .childStarted) != nil {
            // Resumed after a restart, in an app that may not have registered the child: it registers
            // it here too, so that a worker of this app can run the child if it has not finished.
            try registerChild(workflow)
            return ChildWorkflow(instanceID: id, workflowName: workflow.name, stepID: reservation.stepID, parent: self)
        }
        do {
            try workflow.validate(repeat each arguments)
        } catch {
            throw EngineError(
                .invalidInput, "Input for child workflow '\(workflow.name)' is invalid: \(error). No child was started.",
                instanceID: instanceID, stepID: reservation.stepID, cause: error
            )
        }
        let input: JSONPayload
        do {
            input = try JSONPayload.encode(ArgumentList(repeat each arguments))
        } catch {
            fail(with: error)
            throw error
        }
        let placement = try queue.map { queue in
            try EddaClient.placement(on: queue, priority: priority, deduplicationID: nil, partitionKey: partitionKey, instanceID: instanceID)
        }
        try registerChild(workflow)
        if let queue { try await write { _ in try await environment.declareQueue(queue) } }
        let child = NewInstance(
            instanceID: id, workflowName: workflow.name, serviceName: environment.serviceName, input: input, parentInstanceID: instanceID,
            // The child's runs join the parent's trace: its step span is the current context.
            traceContext: environment.observer.currentTraceContext(), placement: placement,
            // Its own timeouts; the store gives it the parent's deadline instead when that is earlier.
            timeouts: workflow.timeouts,
            // The parent's version, not this app's: the child is part of the instance the parent's code started.
            applicationVersion: applicationVersion
        )
        let created = try await write { store in try await store.createInstance(child, leasedTo: nil) }
        if case .created = created {
            environment.observer.metrics?.workflow(workflow.name).started.increment()
            environment.observer.hooks?.post(
                .workflowStarted(WorkflowHookEvent(instanceID: id, workflowName: workflow.name, time: environment.clock.now()))
            )
        }
        // Created by an earlier run that crashed before recording the start: the same child.
        if case .existing(let existing) = created, existing.workflowName != workflow.name || existing.parentInstanceID != instanceID {
            let clash = EngineError(
                .instanceAlreadyExists,
                "Child instance \(id) already exists as workflow '\(existing.workflowName)', not as a child '\(workflow.name)' of \(instanceID). "
                    + "Nothing was changed; give the child another childID.",
                instanceID: instanceID, stepID: reservation.stepID
            )
            fail(with: clash)
            throw clash
        }
        try await appendRecord(reservation, kind: .childStarted, payload: try JSONPayload.encode(["child_instance_id": id]))
        return ChildWorkflow(instanceID: id, workflowName: workflow.name, stepID: reservation.stepID, parent: self)
    }

    /// Registers a child's workflow with the parent's app; a name taken by another workflow fails the run.
    private func registerChild<each Argument, Output>(_ workflow: Workflow<repeat each Argument, Output>) throws {
        do {
            try environment.register(workflow.registration)
        } catch {
            fail(with: error)
            throw error
        }
    }

    /// Starts `workflow` as a child and waits for its result: ``startChild(_:_:childID:on:priority:partitionKey:)``
    /// then ``ChildWorkflow/result()``.
    public func runChild<each Argument, Output>(
        _ workflow: Workflow<repeat each Argument, Output>, _ arguments: repeat each Argument, childID: String? = nil,
        on queue: Queue? = nil, priority: Int = 0, partitionKey: String? = nil
    ) async throws -> Output {
        try await startChild(workflow, repeat each arguments, childID: childID, on: queue, priority: priority, partitionKey: partitionKey)
            .result()
    }
}

/// A child workflow started by ``WorkflowContext/startChild(_:_:childID:on:priority:partitionKey:)``.
public struct ChildWorkflow<Output: Codable & Sendable>: Sendable {
    /// The child's instance ID: `<parent ID>/<step ID>`.
    public let instanceID: String
    public let workflowName: String
    let stepID: String
    let parent: WorkflowContext

    /// Waits for the child to finish and returns its result. A step of the parent (`<step ID>/result`):
    /// the parent is released while it waits, and the outcome is recorded in its history, so a
    /// replay returns it at once. Await it once per child.
    ///
    /// - Throws: ``WorkflowFailedError`` when the child failed, ``WorkflowCancelledError`` (with the
    ///   child's ID) when it was cancelled — both recorded, so a replay throws them again.
    public func result() async throws -> Output {
        let delivered = try await parent.awaitMessage(
            name: "edda.child.result", channel: ChildReport.channel(of: instanceID), kind: .event, timeout: nil, explicitID: "\(stepID)/result"
        )
        let report = try parent.decodeData(of: delivered.message, as: ChildReport.self, from: instanceID)
        switch report.status {
        case InstanceStatus.completed.rawValue:
            do {
                return try JSONPayload(json: report.output ?? "null").decode(Output.self)
            } catch {
                let failure = EngineError(
                    .corruptHistory, "The result of child instance \(instanceID) cannot be decoded as \(Output.self).",
                    instanceID: parent.instanceID, cause: error
                )
                parent.fail(with: failure)
                throw failure
            }
        case InstanceStatus.cancelled.rawValue:
            throw WorkflowCancelledError(instanceID: instanceID)
        default:
            let record = report.error ?? ErrorRecord(type: "Error", message: "child failed")
            throw WorkflowFailedError(instanceID: instanceID, workflowName: workflowName, error: record, cause: RecordedError(record))
        }
    }
}
