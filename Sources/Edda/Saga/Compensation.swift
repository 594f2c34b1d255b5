/// Undoes what an activity did, when the workflow that called it fails (the Saga pattern).
///
/// A compensation receives the activity's recorded result followed by the activity's arguments.
/// Link it to the activity with ``Activity/onFailure(_:)``:
///
/// ```swift
/// let cancelReservation = Compensation("cancel_reservation") { (ctx, reservation: Reservation, itemID: String) in
///     try await inventory.release(reservation.id)
/// }
/// let reserveInventory = Activity("reserve_inventory") { (ctx, itemID: String) -> Reservation in
///     try await inventory.reserve(itemID)
/// }.onFailure(cancelReservation)
/// ```
///
/// When the workflow fails, Edda runs the compensations of the activities that completed, in
/// reverse order of completion. Activities that failed or never ran are not compensated. Each
/// compensation is a step: retried by its policy, recorded in history, and run once even across a
/// crash during the rollback. One that fails for good is recorded and the rest still run. The
/// workflow ends `failed` with its original error.
public struct Compensation<each Argument: Codable & Sendable, Output: Codable & Sendable>: Sendable {
    /// The name recorded in history.
    public let name: String
    /// The retry policy, or `nil` for the app's default.
    public var retryPolicy: RetryPolicy?
    let body: @Sendable (ActivityContext, Output, repeat each Argument) async throws -> Void

    /// Creates a compensation.
    ///
    /// - Parameters:
    ///   - name: The name recorded in history.
    ///   - retry: The retry policy; `nil` (the default) uses the app's default policy.
    ///   - body: The undo. Receives the activity's result, then the activity's arguments.
    public init(
        _ name: String,
        retry: RetryPolicy? = nil,
        _ body: @escaping @Sendable (ActivityContext, Output, repeat each Argument) async throws -> Void
    ) {
        precondition(!name.isEmpty, "A compensation needs a non-empty name")
        self.name = name
        self.retryPolicy = retry
        self.body = body
    }
}

extension Activity {
    /// A copy of this activity that registers `compensation` each time a call completes.
    public func onFailure(_ compensation: Compensation<repeat each Argument, Output>) -> Self {
        var copy = self
        copy.compensation = compensation
        return copy
    }

    /// A copy of this activity that registers an undo needing neither the activity's result nor
    /// its arguments (the seed's `undo_a(ctx)`) each time a call completes:
    ///
    /// ```swift
    /// let reserveA = Activity("reserve_a") { (ctx) -> Bool in … }
    ///     .onFailure("undo_a") { ctx in try await releaseA() }
    /// ```
    public func onFailure(
        _ name: String, retry: RetryPolicy? = nil, _ body: @escaping @Sendable (ActivityContext) async throws -> Void
    ) -> Self {
        onFailure(Compensation(name, retry: retry) { (context: ActivityContext, _: Output, _: repeat each Argument) in try await body(context) })
    }
}

/// A compensation registered by a completed step, waiting in case the workflow fails.
struct PendingCompensation: Sendable {
    /// The compensation's own step ID: `compensate:<activity step ID>` or `compensate:<id>`.
    let stepID: String
    let name: String
    let retryPolicy: RetryPolicy?
    let run: @Sendable (ActivityContext) async throws -> Void
}
