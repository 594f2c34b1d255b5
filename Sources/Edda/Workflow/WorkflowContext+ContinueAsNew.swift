/// Continue-as-new: a long-running loop starts a fresh run of the same instance, so that its
/// history does not grow without bound.
///
/// ```swift
/// let poller = Workflow("poll_feed") { (ctx, cursor: String) -> Int in
///     let page = try await fetchPage(ctx, cursor)
///     try await ctx.sleep(for: .seconds(60))
///     if let next = page.next { try ctx.continueAsNew(with: next) }   // ends this run here
///     return page.count
/// }
/// ```
///
/// The new run is the **same instance** (same ID; `result()` waits for the last run's outcome): its
/// input is replaced, its run number grows by one, and the previous run's history moves to an
/// archive (`workflow_history_archive`, with its run number), so replay starts from an empty
/// history. The previous run's compensations are not carried over: each run is its own saga.
extension WorkflowContext {
    /// Ends this run and starts the next one of the same instance with `arguments` as its input.
    /// The arguments must be the workflow's own (checked when the run ends: a mismatch fails the
    /// instance with ``EngineError`` `invalidInput`).
    ///
    /// - Throws: always — the error ends the run (do not catch it; if you do, the next step throws it again).
    public func continueAsNew<each Argument: Codable & Sendable>(with arguments: repeat each Argument) throws -> Never {
        let input: JSONPayload
        do {
            input = try JSONPayload.encode(ArgumentList(repeat each arguments))
        } catch {
            let failure = EngineError(
                .encodingFailed, "The arguments given to continueAsNew in instance \(instanceID) could not be encoded as JSON.",
                instanceID: instanceID, cause: error
            )
            fail(with: failure)
            throw failure
        }
        stop(.continueAsNew(input))
        throw ContinueAsNew(input: input, instanceID: instanceID)
    }
}

/// Thrown by ``WorkflowContext/continueAsNew(with:)``: the run ends and the next one starts with `input`.
struct ContinueAsNew: Error, CustomStringConvertible {
    let input: JSONPayload
    let instanceID: String

    var description: String { "Instance \(instanceID) continues as new." }
}
