/// Patching: changing a workflow's code while instances started under the old code are still in flight.
///
/// Instances replay their history against whatever code the worker runs now. A changed path would
/// make an old instance's replay diverge (``NonDeterminismError``); a patch lets both paths live in
/// the code for as long as old instances do:
///
/// ```swift
/// let checkout = Workflow("checkout") { (ctx, order: Order) -> Receipt in
///     let total = try await priceOrder(ctx, order)
///     let tax: Decimal
///     if try await ctx.patched("new-tax-rule") {
///         tax = try await computeTaxV2(ctx, order, total)     // instances that reach this point now
///     } else {
///         tax = try await computeTax(ctx, order, total)       // instances that passed it before the patch
///     }
///     return try await charge(ctx, order, total + tax)
/// }
/// ```
///
/// Once no instance that took the old path is left, remove the old branch and keep a
/// ``deprecatePatch(_:)`` call where `patched` was; once no instance that recorded the marker is
/// left running either, remove that call too. See <doc:ChangingWorkflowCode>.
extension WorkflowContext {
    /// Whether this instance runs the patched code at this point: `true` for a run that reaches it
    /// with nothing recorded beyond (a new instance, or one whose replay has reached the end of its
    /// history), `false` for an instance whose history, recorded before the patch existed, holds a
    /// step at or after this point.
    ///
    /// The first `true` records a marker step (``HistoryEventKind/patchMarker``, step ID
    /// `edda.patch:<patchID>`), so the answer stays `true` on every replay and after any crash; a
    /// crash before the marker is written leaves nothing recorded beyond this point, so the next run
    /// answers `true` again. `false` records nothing: the old steps already recorded after this point
    /// keep the answer `false`. The same patch asked again in one run gives the same answer.
    ///
    /// A marker is not a step for the determinism check: inserting a `patched` block is no
    /// divergence, and a marker whose `patched` call has since been removed is skipped.
    ///
    /// Call it from the workflow's own code, not from a concurrent task (`async let`, a task
    /// group): only there is the order of steps fixed. Pass the answer into the tasks.
    ///
    /// - Parameter patchID: Names the change; never reuse one for another change in the same workflow.
    /// - Returns: `true` to run the new code, `false` to run the old.
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/concurrentPatch`` when called from a
    ///   concurrent task (the run fails); a ``StoreError`` when the marker could not be written (the run
    ///   stops and resumes later).
    public func patched(_ patchID: String) async throws -> Bool {
        precondition(!patchID.isEmpty, "ctx.patched needs a non-empty patch ID that names the change, such as \"new-tax-rule\".")
        let topLevel = isTopLevel
        let decision = try run.withMachine { try $0.patch(patchID, topLevel: topLevel, now: .now) }
        switch decision {
        case .decided(let patched):
            return patched
        case .recordMarker(let stepID, let position):
            let marker = HistoryEvent(
                instanceID: instanceID, stepID: stepID, position: position, name: patchID, kind: .patchMarker,
                payload: try JSONPayload.encode(PatchMarker(patch: patchID))
            )
            try await write { store in try await store.append(marker, lease: lease) }
            return true
        }
    }

    /// Marks where a removed ``patched(_:)`` call was, once every instance that took the old path has
    /// finished: the code keeps only the new branch, and histories with or without the patch's marker
    /// here replay alike. Records nothing.
    ///
    /// ```swift
    /// try ctx.deprecatePatch("new-tax-rule")
    /// let tax = try await computeTaxV2(ctx, order, total)
    /// ```
    ///
    /// A marker left where the code no longer asks is skipped anyway, so this call is the explicit,
    /// searchable form of that: remove it once no instance that recorded the marker is still running.
    ///
    /// - Parameter patchID: The ID that was given to ``patched(_:)``.
    /// - Throws: ``EngineError`` ``EngineError/Code-swift.struct/concurrentPatch`` when called from a
    ///   concurrent task (the run fails).
    public func deprecatePatch(_ patchID: String) throws {
        let topLevel = isTopLevel
        try run.withMachine { try $0.deprecatePatch(patchID, topLevel: topLevel) }
    }
}

/// The payload of a ``HistoryEventKind/patchMarker`` record: `{"patch": "<patch ID>"}`.
struct PatchMarker: Codable, Sendable {
    var patch: String
}
